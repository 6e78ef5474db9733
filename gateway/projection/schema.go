package projection

import (
	"context"
	"errors"
	"fmt"
	"maps"
	"slices"
	"strings"

	"github.com/lienthong/lienthong/catalog"
)

// fieldType is the declared JSON type of a field. typeAny is what a plan
// without a schema (NewPlan) gives every node: nothing is type-checked.
type fieldType uint8

const (
	typeAny fieldType = iota
	typeString
	typeNumber
	typeInteger
	typeBoolean
	typeObject
	typeArray
)

var typeNames = map[string]fieldType{
	"string": typeString, "number": typeNumber, "integer": typeInteger,
	"boolean": typeBoolean, "object": typeObject, "array": typeArray,
}

func (t fieldType) String() string {
	for name, u := range typeNames {
		if u == t {
			return name
		}
	}
	return "any"
}

// ErrWrongType is wrapped (with ErrInvalidRecord) when a value the plan
// visits does not have the type its dataset declares: an object where a
// string is declared, a string where an object is. Such a record is refused
// whole rather than passed on in a shape no one granted.
var ErrWrongType = errors.New("projection: a value does not have its declared type")

// Schema is the declared shape of one version of a dataset: the tree of its
// fields (catalog.Field) with their types. It is compiled once per dataset
// version; plans are compiled against it (Schema.Plan) and admit only what
// it declares, at every depth. A Schema is immutable, except for its plan
// cache, and safe for concurrent use.
type Schema struct {
	root  *node
	plans planCache
}

// NewSchema compiles the fields of a dataset version (catalog.Document's or
// catalog.Dataset's Fields): dotted paths, arrays transparent, each with one
// of the types string, number, integer, boolean, object or array. Every
// field's parent must be declared too, as catalog derives them.
func NewSchema(fields []catalog.Field) (*Schema, error) {
	root := &node{typ: typeObject}
	sorted := slices.Clone(fields)
	// Parents sort before their children ("a" < "a.b"); the paths of one
	// parent's children are compared segment-wise by counting dots first.
	slices.SortFunc(sorted, func(a, b catalog.Field) int {
		if c := strings.Count(a.Path, ".") - strings.Count(b.Path, "."); c != 0 {
			return c
		}
		return strings.Compare(a.Path, b.Path)
	})
	for _, f := range sorted {
		segs, err := splitPath(f.Path)
		if err != nil {
			return nil, fmt.Errorf("projection: declared field %q: %w", f.Path, err)
		}
		typ, ok := typeNames[f.Type]
		if !ok {
			return nil, fmt.Errorf("projection: declared field %q has type %q; expected string, number, integer, boolean, object or array", f.Path, f.Type)
		}
		parent := root
		for _, s := range segs[:len(segs)-1] {
			if parent = parent.children[s]; parent == nil {
				return nil, fmt.Errorf("projection: declared field %q has no declared parent", f.Path)
			}
		}
		if parent.typ != typeObject && parent.typ != typeArray {
			return nil, fmt.Errorf("projection: declared field %q is below a %s", f.Path, parent.typ)
		}
		last := segs[len(segs)-1]
		if parent.children[last] != nil {
			return nil, fmt.Errorf("projection: field %q is declared twice", f.Path)
		}
		if parent.children == nil {
			parent.children = map[string]*node{}
		}
		parent.children[last] = &node{typ: typ, path: f.Path}
	}
	return &Schema{root: root}, nil
}

// LoadSchema derives the Schema of a dataset document (OpenAPI, as
// published) with catalog.LoadDocument, so the gateway reads the declared
// shape from the same parser as the catalog. recordSchema must be the
// document's record schema, as the signed configuration names it.
func LoadSchema(ctx context.Context, doc []byte, recordSchema string) (*Schema, error) {
	d, err := catalog.LoadDocument(ctx, doc)
	if err != nil {
		return nil, fmt.Errorf("projection: deriving the declared fields: %w", err)
	}
	if d.RecordSchema != recordSchema {
		return nil, fmt.Errorf("projection: the document's record schema is %q, not %q", d.RecordSchema, recordSchema)
	}
	return NewSchema(d.Fields)
}

// denied is the child, in a plan, of a declared key the decision does not
// allow: it tells an ungranted key (Stats.Dropped) from an undeclared one
// (also Stats.Undeclared) with the one map lookup the projector makes.
var denied = &node{}

// Plan compiles a decision's allowed paths and masks against the schema:
// as NewPlan, except that only declared properties are ever admitted, also
// inside subtrees granted whole and inside array items, and that visited
// values must have their declared types. A path or mask the schema does not
// declare is ignored: no value can ever be admitted there.
func (s *Schema) Plan(fields []string, masks map[string]catalog.Mask, m *Masker) (*Plan, error) {
	if err := checkDecision(fields, masks, m); err != nil {
		return nil, err
	}
	c := compiler{fresh: map[*node]bool{}}
	root := c.copyOf(s.root, false)
	root.children = map[string]*node{}
	for _, f := range fields {
		segs, _ := splitPath(f)
		if !s.declares(segs) {
			continue // nothing can ever be admitted there
		}
		decl, n := s.root, root
		for i, seg := range segs {
			if n.granted {
				break // an ancestor is granted already: it wins
			}
			decl = decl.children[seg]
			child := n.children[seg]
			if child == nil {
				child = c.copyOf(decl, false)
				child.children = map[string]*node{}
				n.children[seg] = child
			}
			if i == len(segs)-1 {
				// Granted whole: every declared property below, in a map
				// shared with the schema until a mask needs its own copy.
				child.granted = true
				child.children = decl.children
				c.fresh[child] = false
			}
			n = child
		}
	}
	c.deny(root, s.root)
	for _, p := range slices.Sorted(maps.Keys(masks)) {
		if masks[p] == catalog.MaskNone {
			continue
		}
		segs, _ := splitPath(p)
		n := root
		path := []*node{root}
		for _, seg := range segs {
			child := n.children[seg]
			if child == nil || child == denied {
				n = nil
				break
			}
			if !c.fresh[child] {
				// Shared with the schema: copy it, and its map of children,
				// before marking anything on it.
				child = c.copyOf(child, true)
				n.children[seg] = child
			}
			n = child
			path = append(path, n)
		}
		if n != nil {
			n.mask = masks[p]
			for _, a := range path {
				a.maskBelow = true
			}
		}
	}
	return &Plan{root: root, masker: m, declared: true}, nil
}

// declares reports whether the schema declares the path segs.
func (s *Schema) declares(segs []string) bool {
	n := s.root
	for _, seg := range segs {
		if n = n.children[seg]; n == nil {
			return false
		}
	}
	return true
}

// compiler builds one plan against a schema, remembering which nodes it
// made itself (and may change) and which it shares with the schema.
type compiler struct {
	fresh map[*node]bool
}

// copyOf returns a new plan node for the declared node decl; with children,
// it shares decl's children in a new map that the plan owns.
func (c *compiler) copyOf(decl *node, children bool) *node {
	n := &node{typ: decl.typ, path: decl.path, granted: decl.granted}
	if children && decl.children != nil {
		n.children = maps.Clone(decl.children)
	}
	c.fresh[n] = true
	return n
}

// deny fills the ancestor-only nodes of a plan with denied for every
// declared child the decision leaves out.
func (c *compiler) deny(n, decl *node) {
	if n.granted {
		return
	}
	for k, d := range decl.children {
		if child := n.children[k]; child == nil {
			n.children[k] = denied
		} else {
			c.deny(child, d)
		}
	}
}

// checkDecision refuses what NewPlan and Schema.Plan both refuse: malformed
// paths, unknown masks, and hash or partial masks without a Masker.
func checkDecision(fields []string, masks map[string]catalog.Mask, m *Masker) error {
	for _, f := range fields {
		if _, err := splitPath(f); err != nil {
			return fmt.Errorf("projection: allowed field %q: %w", f, err)
		}
	}
	for _, p := range slices.Sorted(maps.Keys(masks)) {
		mask := masks[p]
		if _, err := splitPath(p); err != nil {
			return fmt.Errorf("projection: mask on %q: %w", p, err)
		}
		switch mask {
		case catalog.MaskNone, catalog.MaskNullify:
		case catalog.MaskHash, catalog.MaskPartial:
			if m == nil {
				return fmt.Errorf("projection: mask %s on %q: %w", mask, p, errNoMasker)
			}
		default:
			return fmt.Errorf("projection: mask on %q: unknown mask %q; expected hash, partial or nullify", p, mask)
		}
	}
	return nil
}

// fits reports whether v may stand where n's type is declared. Null fits
// every type: whether a field may be null is the Validator's concern.
func fits(v *value, t fieldType) bool {
	switch t {
	case typeAny:
		return true
	case typeString:
		return v.kind == kindString || v.kind == kindNull
	case typeNumber:
		return v.kind == kindNumber || v.kind == kindNull
	case typeInteger:
		return v.kind == kindNull || (v.kind == kindNumber && isInteger(v.s))
	case typeBoolean:
		return v.kind == kindBool || v.kind == kindNull
	case typeObject:
		return v.kind == kindObject || v.kind == kindNull
	case typeArray:
		return v.kind == kindArray || v.kind == kindNull
	}
	return false
}

// isInteger reports whether a JSON number literal has an integral value
// (1, 1.0, 1e3 and 2.50e1 do; 1.5 and 1e-1 do not).
func isInteger(lit string) bool {
	if !strings.ContainsAny(lit, ".eE") {
		return true
	}
	c := strings.ToLower(canonicalNumber(lit))
	mant, exp, sci := strings.Cut(c, "e")
	if !sci {
		return true
	}
	digits := len(strings.TrimPrefix(strings.Replace(mant, ".", "", 1), "-"))
	e := 0
	for _, ch := range strings.TrimPrefix(exp, "-") {
		if e > 1<<20 {
			break
		}
		e = e*10 + int(ch-'0')
	}
	if strings.HasPrefix(exp, "-") {
		return false // the canonical mantissa has a non-zero first digit
	}
	return e >= digits-1
}
