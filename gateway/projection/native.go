package projection

import (
	"encoding/json"
	"errors"
	"math"
	"reflect"
	"regexp"
	"strconv"

	"github.com/getkin/kin-openapi/openapi3"
)

// A native schema check answers "does this record match?" for the keywords
// the catalog's record schemas use, in a tree compiled once per dataset, so
// that the common case (a valid record) skips kin-openapi's VisitJSON and its
// per-call settings, schema stacks and error values. It is held equal to
// kin-openapi's built-in validator, with the options NewValidator gives it,
// by TestNativeAgreesWithKinOpenAPI and FuzzNativeAgreesWithKinOpenAPI, as
// policies' native evaluator is held equal to the Rego.
//
// It decides only the verdict. A refusal is handed to kin-openapi, whose
// errors name the pointers and keywords a RecordError lists, so a 502 reads
// as before; the native check never accepts what it cannot judge: a schema
// using anything it does not implement is not compiled (errNotNative) and is
// validated by kin-openapi alone.

// errNotNative says a schema uses something the native check does not
// implement.
var errNotNative = errors.New("projection: schema needs kin-openapi")

// nativeNode is one compiled schema. Field meanings follow kin-openapi's
// built-in validator (openapi3/schema_3point0_validator.go), in its order.
type nativeNode struct {
	acceptNull bool // nullable, or "null" among the types
	always     int8 // boolean schema: 1 accepts everything, -1 nothing
	empty      bool // equivalent to {}: accepts every non-null value

	not          *nativeNode
	oneOf        []*nativeNode
	anyOf        []*nativeNode
	allOf        []*nativeNode
	enum         []any
	enumStrings  map[string]struct{} // enum when every member is a string
	hasXOf       bool
	permBool     bool
	permNumber   bool
	permInteger  bool
	permString   bool
	permArray    bool
	permObject   bool
	numberFormat openapi3.NumberFormatValidator
	intFormat    openapi3.IntegerFormatValidator
	stringFormat openapi3.StringFormatValidator

	exclMin, exclMax *float64
	min, max         *float64

	minLength uint64
	maxLength *uint64
	pattern   *regexp.Regexp

	minItems uint64
	maxItems *uint64
	items    *nativeNode

	minProps   uint64
	maxProps   *uint64
	properties map[string]*nativeNode
	// writeOnly names the properties a response must not carry (with a
	// non-null value); they are not required either.
	writeOnly map[string]struct{}
	required  []string
	// requiredSet is required less the writeOnly properties a response
	// may leave out, for matchObjectValue's count.
	requiredSet map[string]struct{}
	addlDenied  bool
	addl        *nativeNode
}

// nativeCompiler compiles a schema graph, refusing cycles (kin-openapi's
// visited-schema bookkeeping decides those) and unknown keywords.
type nativeCompiler struct {
	asResponse bool
	done       map[*openapi3.Schema]*nativeNode
	onPath     map[*openapi3.Schema]bool
}

// compileNative compiles schema for the native check, or returns
// errNotNative. asResponse is whether kin-openapi is given VisitAsResponse.
func compileNative(schema *openapi3.Schema, asResponse bool) (*nativeNode, error) {
	c := &nativeCompiler{asResponse: asResponse, done: map[*openapi3.Schema]*nativeNode{}, onPath: map[*openapi3.Schema]bool{}}
	if asResponse && usesComposition(schema) {
		// Under VisitAsResponse kin-openapi also exempts a required property
		// that an enclosing or sibling allOf schema marks writeOnly; not
		// modelled here.
		return nil, errNotNative
	}
	return c.compile(openapi3.NewSchemaRef("", schema))
}

// usesComposition reports whether a composition keyword appears anywhere
// below schema.
func usesComposition(schema *openapi3.Schema) bool {
	found := errors.New("found")
	err := openapi3.NewSchemaRef("", schema).WalkSubtree(func(_ string, ref *openapi3.SchemaRef) error {
		if s := ref.Value; s != nil && (len(s.AllOf) != 0 || len(s.AnyOf) != 0 || len(s.OneOf) != 0 || s.Not != nil) {
			return found
		}
		return nil
	})
	return err != nil
}

func (c *nativeCompiler) compile(ref *openapi3.SchemaRef) (*nativeNode, error) {
	if ref == nil || ref.Value == nil {
		return nil, errNotNative
	}
	s := ref.Value
	if n, ok := c.done[s]; ok {
		return n, nil
	}
	if c.onPath[s] {
		return nil, errNotNative
	}
	c.onPath[s] = true
	defer delete(c.onPath, s)

	if s.Discriminator != nil || s.MultipleOf != nil || s.UniqueItems ||
		s.Const != nil || len(s.PrefixItems) != 0 || s.Contains != nil || s.MinContains != nil || s.MaxContains != nil ||
		len(s.PatternProperties) != 0 || len(s.DependentSchemas) != 0 || s.PropertyNames != nil ||
		s.UnevaluatedItems.Has != nil || s.UnevaluatedItems.Schema != nil ||
		s.UnevaluatedProperties.Has != nil || s.UnevaluatedProperties.Schema != nil ||
		s.If != nil || s.Then != nil || s.Else != nil || len(s.DependentRequired) != 0 ||
		len(s.Defs) != 0 || s.ContentSchema != nil || s.DynamicRef != "" || s.DynamicAnchor != "" ||
		s.SchemaID != "" || s.Anchor != "" {
		return nil, errNotNative
	}

	n := &nativeNode{
		acceptNull: s.Nullable || s.Type.IncludesNull(),
		empty:      s.IsEmpty(),
		minLength:  s.MinLength,
		maxLength:  s.MaxLength,
		minItems:   s.MinItems,
		maxItems:   s.MaxItems,
		minProps:   s.MinProps,
		maxProps:   s.MaxProps,
		min:        s.Min,
		max:        s.Max,
		required:   s.Required,
	}
	if s.Always != nil {
		n.always = -1
		if *s.Always {
			n.always = 1
		}
	}
	n.permBool = s.Type.Permits(openapi3.TypeBoolean)
	n.permNumber = s.Type.Permits(openapi3.TypeNumber)
	n.permInteger = s.Type.Permits(openapi3.TypeInteger)
	n.permString = s.Type.Permits(openapi3.TypeString)
	n.permArray = s.Type.Permits(openapi3.TypeArray)
	n.permObject = s.Type.Permits(openapi3.TypeObject)

	var err error
	if s.Not != nil {
		if n.not, err = c.compile(s.Not); err != nil {
			return nil, err
		}
	}
	for _, group := range []struct {
		refs openapi3.SchemaRefs
		dst  *[]*nativeNode
	}{{s.OneOf, &n.oneOf}, {s.AnyOf, &n.anyOf}, {s.AllOf, &n.allOf}} {
		for _, r := range group.refs {
			sub, err := c.compile(r)
			if err != nil {
				return nil, err
			}
			*group.dst = append(*group.dst, sub)
		}
	}
	n.hasXOf = len(n.oneOf)+len(n.anyOf)+len(n.allOf) > 0

	if len(s.Enum) != 0 {
		n.enum = s.Enum
		strs := make(map[string]struct{}, len(s.Enum))
		for _, e := range s.Enum {
			str, ok := e.(string)
			if !ok {
				strs = nil
				break
			}
			strs[str] = struct{}{}
		}
		n.enumStrings = strs
	}

	if f := s.Format; f != "" {
		// Formats are looked up once here; kin-openapi looks them up on
		// each call, which differs only if a format is defined later.
		n.numberFormat = openapi3.SchemaNumberFormats[f]
		n.intFormat = openapi3.SchemaIntegerFormats[f]
		n.stringFormat = openapi3.SchemaStringFormats[f]
	}
	if b := s.ExclusiveMin; b.IsSet() {
		if b.Value != nil {
			n.exclMin = b.Value
		} else if b.Bool != nil && *b.Bool && s.Min != nil {
			n.exclMin = s.Min
		}
	}
	if b := s.ExclusiveMax; b.IsSet() {
		if b.Value != nil {
			n.exclMax = b.Value
		} else if b.Bool != nil && *b.Bool && s.Max != nil {
			n.exclMax = s.Max
		}
	}
	if s.Pattern != "" {
		re, err := regexp.Compile(goPattern(s.Pattern))
		if err != nil {
			return nil, errNotNative
		}
		n.pattern = re
	}
	if s.Items != nil {
		if n.items, err = c.compile(s.Items); err != nil {
			return nil, err
		}
	}
	if len(s.Properties) != 0 {
		n.properties = make(map[string]*nativeNode, len(s.Properties))
		for name, r := range s.Properties {
			sub, err := c.compile(r)
			if err != nil {
				return nil, err
			}
			n.properties[name] = sub
			if c.asResponse && r.Value.WriteOnly {
				if n.writeOnly == nil {
					n.writeOnly = map[string]struct{}{}
				}
				n.writeOnly[name] = struct{}{}
			}
		}
	}
	if h := s.AdditionalProperties.Has; h != nil && !*h {
		n.addlDenied = true
	} else if r := s.AdditionalProperties.Schema; r != nil {
		if n.addl, err = c.compile(r); err != nil {
			return nil, err
		}
	}
	if len(n.required) != 0 {
		n.requiredSet = make(map[string]struct{}, len(n.required))
		for _, k := range n.required {
			if _, wo := n.writeOnly[k]; !wo {
				n.requiredSet[k] = struct{}{}
			}
		}
	}
	c.done[s] = n
	return n, nil
}

// escapedCodepoint matches the \uXXXX escapes of ECMA-262 patterns, which
// Go's regexp writes \x{XXXX}; kin-openapi rewrites the same ones (upper-case
// hex digits only) before compiling.
var escapedCodepoint = regexp.MustCompile(`\\u([0-9A-F]{4})`)

// goPattern turns a schema pattern into the Go regular expression
// kin-openapi compiles for it.
func goPattern(p string) string {
	return escapedCodepoint.ReplaceAllString(p, `\x{$1}`)
}

// match reports whether v, a value in encoding/json's UseNumber form,
// satisfies n.
func (n *nativeNode) match(v any) bool {
	if v == nil && n.acceptNull {
		return true
	}
	if n.always != 0 {
		return n.always > 0
	}
	if n.empty {
		return v != nil
	}
	if n.not != nil && n.not.match(v) {
		return false
	}
	if n.hasXOf {
		if len(n.oneOf) != 0 {
			matched := 0
			for _, sub := range n.oneOf {
				if sub.match(v) {
					matched++
				}
			}
			if matched != 1 {
				return false
			}
		}
		if len(n.anyOf) != 0 {
			found := false
			for _, sub := range n.anyOf {
				if sub.match(v) {
					found = true
					break
				}
			}
			if !found {
				return false
			}
		}
		for _, sub := range n.allOf {
			if !sub.match(v) {
				return false
			}
		}
		if v == nil {
			return true
		}
	}
	if n.enum != nil && !n.inEnum(v) {
		return false
	}
	switch v := v.(type) {
	case nil:
		return false
	case bool:
		return n.permBool
	case json.Number:
		f, err := v.Float64()
		if err != nil {
			return false
		}
		return n.matchNumber(f)
	case string:
		return n.matchString(v)
	case []any:
		return n.matchArray(v)
	case map[string]any:
		return n.matchObject(v)
	}
	return false
}

func (n *nativeNode) inEnum(v any) bool {
	if n.enumStrings != nil {
		s, ok := v.(string)
		if !ok {
			return false
		}
		_, ok = n.enumStrings[s]
		return ok
	}
	for _, e := range n.enum {
		if sameJSON(e, v) {
			return true
		}
	}
	return false
}

// sameJSON compares a schema value a with a record value b as kin-openapi's
// enum does: numbers by their float64 value, arrays and objects member by
// member, anything else by type and value.
func sameJSON(a, b any) bool {
	if x, ok := asFloat(a); ok {
		y, ok := asFloat(b)
		return ok && x == y
	}
	switch a := a.(type) {
	case []any:
		b, ok := b.([]any)
		if !ok || len(a) != len(b) {
			return false
		}
		for i := range a {
			if !sameJSON(a[i], b[i]) {
				return false
			}
		}
		return true
	case map[string]any:
		b, ok := b.(map[string]any)
		if !ok || len(a) != len(b) {
			return false
		}
		for k, x := range a {
			y, ok := b[k]
			if !ok || !sameJSON(x, y) {
				return false
			}
		}
		return true
	}
	return reflect.DeepEqual(a, b)
}

// asFloat reads the numeric types a schema's or a record's values come in.
func asFloat(v any) (float64, bool) {
	switch v := v.(type) {
	case json.Number:
		f, err := v.Float64()
		return f, err == nil
	case float64:
		return v, true
	case float32:
		return float64(v), true
	case int:
		return float64(v), true
	case int8:
		return float64(v), true
	case int16:
		return float64(v), true
	case int32:
		return float64(v), true
	case int64:
		return float64(v), true
	case uint:
		return float64(v), true
	case uint8:
		return float64(v), true
	case uint16:
		return float64(v), true
	case uint32:
		return float64(v), true
	case uint64:
		return float64(v), true
	}
	return 0, false
}

func (n *nativeNode) matchNumber(f float64) bool {
	requireInteger := n.permInteger && !n.permNumber
	if requireInteger {
		if f != math.Trunc(f) {
			return false
		}
		if n.intFormat != nil && !integerFormatOK(n.intFormat, f) {
			return false
		}
	} else {
		if !n.permInteger && !n.permNumber {
			return false
		}
		if n.numberFormat != nil && n.numberFormat.Validate(f) != nil {
			return false
		}
	}
	if n.exclMin != nil && !(f > *n.exclMin) {
		return false
	}
	if n.exclMax != nil && !(f < *n.exclMax) {
		return false
	}
	if n.min != nil && !(*n.min <= f) {
		return false
	}
	if n.max != nil && !(*n.max >= f) {
		return false
	}
	return true
}

// integerFormatOK hands f to an integer format as kin-openapi does: as an
// int64, refusing what lies outside int64's range.
func integerFormatOK(format openapi3.IntegerFormatValidator, f float64) bool {
	switch {
	case f == float64(math.MaxInt64):
		return format.Validate(math.MaxInt64) == nil
	case f >= float64(math.MinInt64) && f < float64(math.MaxInt64):
		return format.Validate(int64(f)) == nil
	}
	return false
}

func (n *nativeNode) matchString(s string) bool {
	if !n.permString {
		return false
	}
	if n.minLength != 0 || n.maxLength != nil {
		// kin-openapi counts code points (its surrogate test never fires on
		// decoded runes); an invalid byte counts as one.
		length := uint64(0)
		for range s {
			length++
		}
		if n.minLength != 0 && length < n.minLength {
			return false
		}
		if n.maxLength != nil && length > *n.maxLength {
			return false
		}
	}
	if n.pattern != nil && !n.pattern.MatchString(s) {
		return false
	}
	if n.stringFormat != nil && n.stringFormat.Validate(s) != nil {
		return false
	}
	return true
}

func (n *nativeNode) matchArray(a []any) bool {
	if !n.permArray {
		return false
	}
	if n.minItems != 0 && uint64(len(a)) < n.minItems {
		return false
	}
	if n.maxItems != nil && uint64(len(a)) > *n.maxItems {
		return false
	}
	if n.items != nil {
		for _, x := range a {
			if !n.items.match(x) {
				return false
			}
		}
	}
	return true
}

func (n *nativeNode) matchObject(m map[string]any) bool {
	if !n.permObject {
		return false
	}
	if n.minProps != 0 && uint64(len(m)) < n.minProps {
		return false
	}
	if n.maxProps != nil && uint64(len(m)) > *n.maxProps {
		return false
	}
	for k, x := range m {
		if sub, ok := n.properties[k]; ok {
			if x != nil && n.writeOnly != nil {
				if _, wo := n.writeOnly[k]; wo {
					return false
				}
			}
			if !sub.match(x) {
				return false
			}
			continue
		}
		if n.addlDenied {
			return false
		}
		if n.addl != nil && !n.addl.match(x) {
			return false
		}
	}
	for _, k := range n.required {
		if _, ok := m[k]; ok {
			continue
		}
		if _, wo := n.writeOnly[k]; wo {
			continue
		}
		return false
	}
	return true
}

// matchValue is match on the decoder's own representation, which spares
// building the record's map[string]any form; it must decide as match does
// on toAny(v) (TestNativeValueAgreesWithMap).
func (n *nativeNode) matchValue(v *value) bool {
	null := v.kind == kindNull
	if null && n.acceptNull {
		return true
	}
	if n.always != 0 {
		return n.always > 0
	}
	if n.empty {
		return !null
	}
	if n.not != nil && n.not.matchValue(v) {
		return false
	}
	if n.hasXOf {
		if len(n.oneOf) != 0 {
			matched := 0
			for _, sub := range n.oneOf {
				if sub.matchValue(v) {
					matched++
				}
			}
			if matched != 1 {
				return false
			}
		}
		if len(n.anyOf) != 0 {
			found := false
			for _, sub := range n.anyOf {
				if sub.matchValue(v) {
					found = true
					break
				}
			}
			if !found {
				return false
			}
		}
		for _, sub := range n.allOf {
			if !sub.matchValue(v) {
				return false
			}
		}
		if null {
			return true
		}
	}
	if n.enum != nil {
		if n.enumStrings != nil {
			if v.kind != kindString {
				return false
			}
			if _, ok := n.enumStrings[v.s]; !ok {
				return false
			}
		} else if !n.inEnum(toAny(v)) {
			return false
		}
	}
	switch v.kind {
	case kindBool:
		return n.permBool
	case kindNumber:
		// As json.Number.Float64 reads the literal.
		f, err := strconv.ParseFloat(v.s, 64)
		if err != nil {
			return false
		}
		return n.matchNumber(f)
	case kindString:
		return n.matchString(v.s)
	case kindArray:
		return n.matchArrayValue(v.items)
	case kindObject:
		return n.matchObjectValue(v.members)
	}
	return false
}

func (n *nativeNode) matchArrayValue(a []value) bool {
	if !n.permArray {
		return false
	}
	if n.minItems != 0 && uint64(len(a)) < n.minItems {
		return false
	}
	if n.maxItems != nil && uint64(len(a)) > *n.maxItems {
		return false
	}
	if n.items != nil {
		for i := range a {
			if !n.items.matchValue(&a[i]) {
				return false
			}
		}
	}
	return true
}

// matchObjectValue checks an object's members; keys are unique (the
// decoder refuses duplicates), so required keys are counted as met.
func (n *nativeNode) matchObjectValue(ms []member) bool {
	if !n.permObject {
		return false
	}
	if n.minProps != 0 && uint64(len(ms)) < n.minProps {
		return false
	}
	if n.maxProps != nil && uint64(len(ms)) > *n.maxProps {
		return false
	}
	met := 0
	for i := range ms {
		k, x := ms[i].key, &ms[i].val
		if n.requiredSet != nil {
			if _, ok := n.requiredSet[k]; ok {
				met++
			}
		}
		if sub, ok := n.properties[k]; ok {
			if x.kind != kindNull && n.writeOnly != nil {
				if _, wo := n.writeOnly[k]; wo {
					return false
				}
			}
			if !sub.matchValue(x) {
				return false
			}
			continue
		}
		if n.addlDenied {
			return false
		}
		if n.addl != nil && !n.addl.matchValue(x) {
			return false
		}
	}
	return met == len(n.requiredSet)
}
