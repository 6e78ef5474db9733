package catalog

import (
	"sort"
	"strconv"
	"strings"
)

// Field derivation from the record schema.

// facet is one schema object that contributes to a value's description: the
// schema itself, the target of its $ref, or a member of allOf/anyOf/oneOf.
type facet struct {
	ptr string
	obj map[string]any
	// parent is the index, in the same slice, of the facet whose $ref or
	// allOf/anyOf/oneOf led here, or -1.
	parent int
}

// definition is one place where a property of a given name is written: in
// the properties of facets[owner].
type definition struct {
	ptr   string
	node  any
	owner int
}

// deriver derives the fields of the record schema. A schema is recursive when
// deriving a property reaches again a schema that led to one of its ancestors:
// active counts those schemas (the lineages of the facets that hold the
// ancestors, and the schemas being expanded), so the check is a map lookup.
type deriver struct {
	w          *walker
	fields     []Field
	active     map[string]int
	budget     int  // schema expansions left
	overBudget bool // the budget ran out (reported once)
	recursions int  // recursive references found so far
}

// unsupportedInRecord are keywords whose properties have no fixed names, so
// their values could not be granted or filtered field by field.
var unsupportedInRecord = []string{"patternProperties", "dependentSchemas", "if", "then", "else",
	"prefixItems", "unevaluatedProperties", "additionalProperties"}

// trivial reports whether a keyword's value adds nothing to a schema's
// shape: a boolean, an empty object or an empty array.
func trivial(x any) bool {
	switch x := x.(type) {
	case bool:
		return true
	case map[string]any:
		return len(x) == 0
	case []any:
		return len(x) == 0
	}
	return false
}

// record derives the fields of the named record schema.
func (d *deriver) record(name string) []Field {
	d.active = map[string]int{}
	ptr := pointer("/components/schemas", name)
	node := object(object(object(d.w.root)["components"])["schemas"])[name]
	facets := d.expand(ptr, node, -1, 0, nil)
	typ, ok := d.typeOf(ptr, facets)
	if ok && typ != "object" {
		d.w.v.Add(ptr, "the record schema %q must be an object (type: object with properties), found type %q", name, typ)
		return nil
	}
	d.object("", facets, 1, false)
	if len(d.fields) == 0 && !d.overBudget && d.recursions == 0 {
		d.w.v.Add(ptr, "the record schema %q has no properties; expected at least one classified property", name)
	}
	return d.fields
}

func contains(list []string, s string) bool {
	for _, x := range list {
		if x == s {
			return true
		}
	}
	return false
}

// lineage adds delta to the active count of facets[i] and of the facets that
// led to it.
func (d *deriver) lineage(facets []facet, i, delta int) {
	for ; i >= 0; i = facets[i].parent {
		d.activate(facets[i].ptr, delta)
	}
}

func (d *deriver) activate(ptr string, delta int) {
	if d.active[ptr] += delta; d.active[ptr] <= 0 {
		delete(d.active, ptr)
	}
}

// spend uses one unit of the derivation budget and reports running out once.
func (d *deriver) spend(ptr string) bool {
	if d.budget--; d.budget >= 0 {
		return true
	}
	d.tooComplex(ptr)
	return false
}

// tooComplex reports, once, that deriving the fields costs too much.
func (d *deriver) tooComplex(ptr string) {
	d.budget = 0
	if !d.overBudget {
		d.overBudget = true
		d.w.v.Add(ptr, "the record schema is too complex: deriving its fields takes more than %d schema expansions or %d fields; simplify allOf/oneOf/anyOf", maxExpansions, maxFields)
	}
}

// expand appends the facets of the schema at ptr: the schema itself, what its
// $ref points to and the members of its allOf, anyOf and oneOf, each with the
// index of the facet that led to it (parent).
func (d *deriver) expand(ptr string, node any, parent, depth int, out []facet) []facet {
	obj := object(node)
	if obj == nil || !d.spend(ptr) {
		return out
	}
	if depth > maxNesting {
		d.w.v.Add(ptr, "references and allOf/anyOf/oneOf nest deeper than %d levels here; expected a simpler schema", maxNesting)
		return out
	}
	self := len(out)
	out = append(out, facet{ptr: ptr, obj: obj, parent: parent})
	for _, k := range unsupportedInRecord {
		if x, has := obj[k]; has && !trivial(x) {
			d.w.v.Add(pointer(ptr, k), "%s is not supported in the record schema: every field must be a named property so it can be granted and filtered on its own", k)
		}
	}
	d.activate(ptr, 1)
	defer d.activate(ptr, -1)
	if ref, has := obj["$ref"].(string); has {
		target, t, msg := d.w.resolve(ref)
		switch {
		case msg != "": // reported by the walker
		case d.active[target] > 0:
			d.recursions++
			d.w.v.Add(pointer(ptr, "$ref"), "recursive reference to %s: a record schema must be finite, or its field paths would never end; refer to the related record by its identifier instead", target)
		default:
			out = d.expand(target, t, self, depth+1, out)
		}
	}
	for _, k := range []string{"allOf", "anyOf", "oneOf"} {
		members, _ := obj[k].([]any)
		for i, m := range members {
			out = d.expand(pointer(pointer(ptr, k), strconv.Itoa(i)), m, self, depth+1, out)
		}
	}
	return out
}

// typeOf finds the one JSON type (besides null) that facets give a value.
func (d *deriver) typeOf(ptr string, facets []facet) (string, bool) {
	var types []string
	null := false
	add := func(t string) {
		switch {
		case t == "null":
			null = true
		case !contains(types, t):
			types = append(types, t)
		}
	}
	for _, f := range facets {
		switch t := f.obj["type"].(type) {
		case string:
			add(t)
		case []any:
			for _, x := range t {
				if s, ok := x.(string); ok {
					add(s)
				}
			}
		}
	}
	if len(types) == 0 {
		for _, f := range facets {
			if _, ok := f.obj["properties"]; ok {
				return "object", true
			}
			if _, ok := f.obj["items"]; ok {
				return "array", true
			}
		}
		if null {
			d.w.v.Add(ptr, "a field that can only be null carries no data; expected a type besides null (string, number, integer, boolean, object or array)")
		} else {
			d.w.v.Add(ptr, "missing type; expected one of string, number, integer, boolean, object or array")
		}
		return "", false
	}
	if len(types) > 1 {
		d.w.v.Add(ptr, "a field needs one type besides null, found %s; split it into separate properties", strings.Join(types, ", "))
		return "", false
	}
	return types[0], true
}

// object derives the fields for the properties of an object value whose
// facets are given, prefixing their names with prefix.
func (d *deriver) object(prefix string, facets []facet, depth int, inArray bool) {
	byName := map[string][]definition{}
	var names []string
	for i, f := range facets {
		props := object(f.obj["properties"])
		for _, name := range sortedKeys(props) {
			if _, seen := byName[name]; !seen {
				names = append(names, name)
			}
			byName[name] = append(byName[name], definition{ptr: pointer(pointer(f.ptr, "properties"), name), node: props[name], owner: i})
		}
	}
	sort.Strings(names)
	for _, name := range names {
		defs := byName[name]
		switch at := defs[0].ptr; {
		case name == "" || strings.Contains(name, "."):
			d.w.v.Add(at, "property name %q cannot name a field: field paths join names with dots, so expected a non-empty name without \".\"", name)
		case depth > maxFieldDepth:
			d.w.v.Add(at, "the record schema nests deeper than %d levels here; expected a flatter structure", maxFieldDepth)
		case len(d.fields) >= maxFields:
			d.tooComplex(at)
			return
		default:
			for _, def := range defs {
				d.lineage(facets, def.owner, 1)
			}
			d.property(prefix+name, defs, depth, inArray)
			for _, def := range defs {
				d.lineage(facets, def.owner, -1)
			}
		}
	}
}

// property derives the field at path, written at defs, and its children.
func (d *deriver) property(path string, defs []definition, depth int, inArray bool) {
	class, shared, marked := d.marksOf(path, defs)
	recursions := d.recursions
	var facets []facet
	for _, def := range defs {
		facets = d.expand(def.ptr, def.node, -1, 0, facets)
	}
	if d.recursions > recursions {
		return // reported; its type and children would only add noise
	}
	typ, typed := d.typeOf(defs[0].ptr, facets)
	if !typed {
		return
	}
	field := Field{
		Path:           path,
		Type:           typ,
		Classification: class,
		DefaultShared:  shared,
		Array:          inArray || typ == "array",
	}
	for _, f := range facets { // the first facet is the property's own schema
		if field.Format == "" {
			field.Format, _ = f.obj["format"].(string)
		}
		if field.Description == "" {
			field.Description, _ = f.obj["description"].(string)
		}
	}
	if marked {
		d.fields = append(d.fields, field)
	}
	// Children are derived also below an unclassified property, so that one
	// round reports every problem.
	switch typ {
	case "object":
		d.object(path+".", facets, depth+1, inArray)
	case "array":
		d.items(path+".", facets, depth+1)
	}
}

// items derives the fields of array elements; arrays are transparent, so
// the elements' properties continue the array field's path.
func (d *deriver) items(prefix string, facets []facet, depth int) {
	var held []func() // lineages kept active while the elements are derived
	defer func() {
		for _, release := range held {
			release()
		}
	}()
	for range maxNesting {
		var items []facet
		recursions := d.recursions
		for i, f := range facets {
			switch x := f.obj["items"].(type) {
			case map[string]any:
				fs := facets
				d.lineage(fs, i, 1)
				held = append(held, func() { d.lineage(fs, i, -1) })
				items = d.expand(pointer(f.ptr, "items"), x, -1, 0, items)
			case []any:
				d.w.v.Add(pointer(f.ptr, "items"), "expected items to be one schema, found an array; tuples are not supported in the record schema")
			}
		}
		if len(items) == 0 || d.recursions > recursions {
			return // an array of anything is granted whole
		}
		typ, ok := d.typeOf(items[0].ptr, items)
		switch {
		case !ok:
			return
		case typ == "object":
			d.object(prefix, items, depth, true)
			return
		case typ == "array":
			facets = items // an array of arrays: look through to the inner items
		default:
			return
		}
	}
}

// marksOf returns the classification and default sharing of a field written
// in one or more places, reporting definitions that disagree. A missing or
// invalid classification was reported by the walker; ok is then false.
func (d *deriver) marksOf(path string, defs []definition) (Classification, bool, bool) {
	var class Classification
	var shared bool
	for i, def := range defs {
		raw, _ := d.w.mark(object(def.node), "x-classification")
		s, _ := raw.(string)
		c := Classification(s)
		if !c.Valid() {
			return "", false, false
		}
		sharedRaw, _ := d.w.mark(object(def.node), "x-default-shared")
		sh, _ := sharedRaw.(bool)
		if i == 0 {
			class, shared = c, sh
			continue
		}
		if c != class {
			d.w.v.Add(def.ptr, "field %q is %s here but %s at %s; expected the same x-classification in every definition", path, c, class, defs[0].ptr)
			return "", false, false
		}
		if sh != shared {
			d.w.v.Add(def.ptr, "field %q has x-default-shared %t here but %t at %s; expected the same value in every definition", path, sh, shared, defs[0].ptr)
			return "", false, false
		}
	}
	if shared && class == Sensitive {
		at := defs[0].ptr
		if _, own := object(defs[0].node)["x-default-shared"]; own {
			at = pointer(at, "x-default-shared")
		}
		d.w.v.Add(at, "a sensitive field cannot be shared by default; expected x-default-shared false or absent")
		return "", false, false
	}
	return class, shared, true
}
