package projection

import (
	"errors"
	"regexp"

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
