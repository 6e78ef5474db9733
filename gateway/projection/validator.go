package projection

import (
	"context"
	"errors"
	"fmt"
	"strings"

	"github.com/getkin/kin-openapi/openapi3"
	"github.com/lienthong/lienthong/catalog"
)

// Validator checks backend records against the record schema of a dataset,
// so that a backend answering something other than what the dataset
// promises is refused (502) rather than passed on in parts. Use its Validate
// as Options.Validate. It is safe for concurrent use.
type Validator struct {
	name   string
	schema *openapi3.Schema
	opts   []openapi3.SchemaValidationOption
	// native, when the schema allows it, answers valid records without
	// kin-openapi; refusals are still reported by kin-openapi (native.go).
	native *nativeNode
}

// NewValidator reads doc, a dataset's OpenAPI 3.0 or 3.1 document in YAML or
// JSON, with the catalog's parser (catalog.ParseOpenAPI: external references
// are never followed) and prepares validation against components.schemas[recordSchema] with
// kin-openapi's Schema.VisitJSON: OpenAPI 3.0 schemas with its built-in
// validator, OpenAPI 3.1 schemas as JSON Schema 2020-12 (see
// uses2020Keywords for how that stays fast).
func NewValidator(doc []byte, recordSchema string) (*Validator, error) {
	// The catalog's parser, which also validates: VisitJSON's behaviour is
	// undefined on a schema that did not pass Validate.
	t, err := catalog.ParseOpenAPI(context.Background(), doc)
	if err != nil {
		return nil, fmt.Errorf("projection: %w", err)
	}
	if t.Components == nil || t.Components.Schemas[recordSchema] == nil || t.Components.Schemas[recordSchema].Value == nil {
		return nil, fmt.Errorf("projection: the dataset document has no schema %q in components.schemas", recordSchema)
	}
	schema := t.Components.Schemas[recordSchema].Value
	opts := append(t.GetSchemaValidationOptions(), openapi3.MultiErrors())
	jsonSchema := t.IsOpenAPI31OrLater() && uses2020Keywords(schema)
	if jsonSchema || declaresWriteOnly(schema) {
		opts = append(opts, openapi3.VisitAsResponse())
	}
	if t.IsOpenAPI31OrLater() {
		if jsonSchema {
			opts = append(opts, openapi3.EnableJSONSchema2020())
		} else {
			ignoreNullable(schema)
		}
	}
	v := &Validator{name: recordSchema, schema: schema, opts: opts}
	// Document-level format validators would be options the native check
	// does not see, and the JSON Schema 2020-12 validator is another one.
	if !jsonSchema && len(t.GetSchemaValidationOptions()) == 0 {
		if n, err := compileNative(schema, declaresWriteOnly(schema)); err == nil {
			v.native = n
		}
	}
	return v, nil
}

// declaresWriteOnly reports whether schema, or a schema reachable from it,
// marks a property writeOnly.
//
// A backend record is a response, which kin-openapi's VisitAsResponse
// expresses; in its built-in validator that option changes exactly two
// things: a writeOnly property present is refused, and a required writeOnly
// property may be absent (default values, its third use, are only injected
// with an option never given here). Without a writeOnly property anywhere
// the option decides nothing, yet costs a sorted copy of every object
// schema's property names on each record, so it is then left off.
func declaresWriteOnly(schema *openapi3.Schema) bool {
	found := errors.New("found")
	err := openapi3.NewSchemaRef("", schema).WalkSubtree(func(_ string, ref *openapi3.SchemaRef) error {
		if ref.Value != nil && ref.Value.WriteOnly {
			return found
		}
		return nil
	})
	return err != nil
}

// uses2020Keywords reports whether schema, or a schema reachable from it,
// uses a keyword that only JSON Schema 2020-12 defines.
//
// With EnableJSONSchema2020, kin-openapi's VisitJSON turns the schema into a
// JSON Schema and compiles it on every call (about 1.8 ms for the Citizen
// record, against 5 µs), and for a schema with component references and
// none of these keywords it then validates with its built-in validator
// anyway. The built-in validator reads OpenAPI 3.1 types ("type: [string,
// 'null']") and numeric exclusive bounds; what it ignores are exactly these
// keywords. So a schema without them is validated by the built-in validator
// directly, and only one with them pays for the JSON Schema validator.
func uses2020Keywords(schema *openapi3.Schema) bool {
	found := errors.New("found")
	err := openapi3.NewSchemaRef("", schema).WalkSubtree(func(_ string, ref *openapi3.SchemaRef) error {
		s := ref.Value
		if s == nil {
			return nil
		}
		if s.Const != nil || len(s.PrefixItems) != 0 || s.Contains != nil ||
			len(s.PatternProperties) != 0 || len(s.DependentSchemas) != 0 || s.PropertyNames != nil ||
			s.UnevaluatedItems.Has != nil || s.UnevaluatedItems.Schema != nil ||
			s.UnevaluatedProperties.Has != nil || s.UnevaluatedProperties.Schema != nil ||
			s.If != nil || s.Then != nil || s.Else != nil ||
			len(s.DependentRequired) != 0 || len(s.Defs) != 0 || s.ContentSchema != nil {
			return found
		}
		return nil
	})
	return err != nil
}

// ignoreNullable clears OpenAPI 3.0's nullable below schema: OpenAPI 3.1
// has no such keyword (null is a type), and kin-openapi's 3.1 mode ignores
// it too. The built-in validator would otherwise honour it.
func ignoreNullable(schema *openapi3.Schema) {
	_ = openapi3.NewSchemaRef("", schema).WalkSubtree(func(_ string, ref *openapi3.SchemaRef) error {
		if ref.Value != nil {
			ref.Value.Nullable = false
		}
		return nil
	})
}

// maxProblems bounds the problems a RecordError lists.
const maxProblems = 10

// RecordError says where a record departs from its schema: JSON pointers
// into the record and the schema keyword that failed. It never holds a
// value of the record, because the record is the full backend record,
// ungranted fields included, and the gateway logs (at most) this error.
type RecordError struct {
	// Schema names the record schema.
	Schema string
	// Problems are "<JSON pointer>: <keyword>" pairs, at most 10.
	Problems []RecordProblem
	// More counts problems beyond those listed.
	More int
}

// RecordProblem is one place where a record departs from its schema.
type RecordProblem struct {
	// Pointer is an RFC 6901 JSON pointer into the record ("" is the record).
	Pointer string
	// Keyword is the schema keyword that failed, e.g. "type", "pattern",
	// "required"; empty when the validator did not name one.
	Keyword string
}

// Error lists the problems by pointer and keyword, e.g. `record does not
// match schema Citizen: "/sex": enum; "/personalId": pattern`.
func (e *RecordError) Error() string {
	var b strings.Builder
	fmt.Fprintf(&b, "record does not match schema %s", e.Schema)
	for i, p := range e.Problems {
		sep := "; "
		if i == 0 {
			sep = ": "
		}
		// %q keeps a hostile key from forging a log line.
		fmt.Fprintf(&b, "%s%q", sep, p.Pointer)
		if p.Keyword != "" {
			fmt.Fprintf(&b, ": %s", p.Keyword)
		}
	}
	if e.More > 0 {
		fmt.Fprintf(&b, "; and %d more", e.More)
	}
	return b.String()
}

// Validate checks one record (as decoded with UseNumber) against the record
// schema. A failure is a *RecordError naming paths and keywords only:
// kin-openapi's own messages quote the failing values and are dropped.
func (v *Validator) Validate(record any) (err error) {
	defer func() {
		// kin-openapi must not take the gateway down on an odd schema.
		if r := recover(); r != nil {
			err = &RecordError{Schema: v.name, Problems: []RecordProblem{{Keyword: "validator failed"}}}
		}
	}()
	if v.native != nil && v.native.match(record) {
		return nil
	}
	verr := v.schema.VisitJSON(record, v.opts...)
	if verr == nil {
		return nil
	}
	re := &RecordError{Schema: v.name}
	collect(re, verr, 0)
	if len(re.Problems) == 0 && re.More == 0 {
		// Not a schema error (e.g. the schema could not be compiled); its
		// text is not shown in case it quotes the record.
		re.Problems = append(re.Problems, RecordProblem{Keyword: "validator failed"})
	}
	return re
}

// validateValue is Validate on a record as the projection decoded it: the
// native check reads it as is, and only a record it refuses (or a schema
// left to kin-openapi) is converted for kin-openapi.
func (v *Validator) validateValue(rec *value) error {
	if v.native != nil && v.native.matchValue(rec) {
		return nil
	}
	return v.Validate(toAny(rec))
}

// collect adds the innermost schema errors under err to re. It follows
// kin-openapi's error structure by type, never by message.
func collect(re *RecordError, err error, depth int) {
	if depth > 64 {
		return
	}
	switch e := err.(type) {
	case *openapi3.SchemaError:
		// The causes of a oneOf, anyOf or a JSON Schema 2020-12 group are
		// more precise than the group itself.
		before := len(re.Problems) + re.More
		if e.Origin != nil {
			collect(re, e.Origin, depth+1)
		}
		if len(re.Problems)+re.More == before {
			re.add(RecordProblem{Pointer: pointer(e.JSONPointer()), Keyword: e.SchemaField})
		}
	case openapi3.MultiError:
		for _, x := range e {
			collect(re, x, depth+1)
		}
	case interface{ Unwrap() []error }:
		for _, x := range e.Unwrap() {
			collect(re, x, depth+1)
		}
	case interface{ Unwrap() error }:
		collect(re, e.Unwrap(), depth+1)
	}
}

// add records p once, counting what exceeds maxProblems.
func (e *RecordError) add(p RecordProblem) {
	for _, q := range e.Problems {
		if q == p {
			return
		}
	}
	if len(e.Problems) == maxProblems {
		e.More++
		return
	}
	e.Problems = append(e.Problems, p)
}

var pointerEscaper = strings.NewReplacer("~", "~0", "/", "~1")

// pointer joins unescaped path tokens into an RFC 6901 JSON pointer.
func pointer(tokens []string) string {
	var b strings.Builder
	for _, t := range tokens {
		b.WriteByte('/')
		b.WriteString(pointerEscaper.Replace(t))
	}
	return b.String()
}
