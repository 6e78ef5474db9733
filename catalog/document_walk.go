package catalog

import (
	"encoding/json"
	"fmt"
	"math"
	"net/url"
	"regexp"
	"sort"
	"strconv"
	"strings"

	"github.com/getkin/kin-openapi/openapi3"
)

// Validation: the OpenAPI version, then a walk over every schema of the
// document checking x-classification and references.

var versionPattern = regexp.MustCompile(`^3\.[01]\.[0-9]+$`)

// checkVersion accepts OpenAPI 3.0.x and 3.1.x as far as kin-openapi knows
// them, and returns "3.0" or "3.1".
func checkVersion(root any, v *report) (string, bool) {
	raw, present := object(root)["openapi"]
	s, isString := raw.(string)
	mm := (&openapi3.T{OpenAPI: s}).OpenAPIMajorMinor()
	if isString && versionPattern.MatchString(s) && (mm == "3.0" || mm == "3.1") {
		return mm, true
	}
	if !present {
		v.Add("/openapi", "missing; expected the OpenAPI version, 3.0.0 to 3.0.4 or 3.1.0 to 3.1.2 (e.g. \"3.1.0\")")
	} else {
		v.Add("/openapi", "unsupported OpenAPI version %s; expected 3.0.0 to 3.0.4 or 3.1.0 to 3.1.2 (e.g. \"3.1.0\")", describe(raw))
	}
	return "", false
}

// The walker visits every place of the document that holds schemas and
// checks each schema property's x-classification. It follows local $refs
// (at most once per target) and reports external or dangling ones.

type walker struct {
	root        any
	v           *report
	v31         bool
	seen        map[string]bool // kind + pointer already walked
	queue       []func()        // reference targets still to walk
	refs        []refEdge       // every reference followed
	refProblems bool            // some $ref could not be resolved
}

// refEdge is one followed reference: the object holding the $ref and its
// target, both as JSON pointers.
type refEdge struct{ from, to string }

// structuralKeywords and schemaKeywords are the keys kin-openapi reads (it
// matches them case-insensitively); a key that differs from one only in case
// is reported, because kin would read it while the walker would not.
var structuralKeywords = keywordSet("openapi", "info", "jsonSchemaDialect", "servers", "paths", "webhooks",
	"components", "security", "tags", "externalDocs", "schemas", "responses", "parameters", "examples",
	"requestBodies", "headers", "securitySchemes", "links", "callbacks", "pathItems", "$ref", "summary",
	"description", "get", "put", "post", "delete", "options", "head", "patch", "trace", "operationId",
	"requestBody", "deprecated", "name", "in", "required", "allowEmptyValue", "style", "explode",
	"allowReserved", "schema", "example", "content", "encoding", "contentType")

var schemaKeywords = keywordSet("$ref", "$id", "$schema", "$comment", "$defs", "$anchor", "$dynamicRef",
	"$dynamicAnchor", "definitions", "type", "title", "description", "format", "enum", "const", "default",
	"example", "examples", "externalDocs", "nullable", "readOnly", "writeOnly", "deprecated", "xml",
	"discriminator", "properties", "required", "additionalProperties", "patternProperties",
	"propertyNames", "minProperties", "maxProperties", "dependentSchemas", "dependentRequired",
	"unevaluatedProperties", "items", "prefixItems", "contains", "minContains", "maxContains",
	"unevaluatedItems", "minItems", "maxItems", "uniqueItems", "allOf", "anyOf", "oneOf", "not", "if",
	"then", "else", "minimum", "maximum", "exclusiveMinimum", "exclusiveMaximum", "multipleOf",
	"minLength", "maxLength", "pattern", "contentMediaType", "contentEncoding", "contentSchema",
	"x-classification", "x-default-shared")

// keywordSet maps each keyword's lower case to its spelling.
func keywordSet(words ...string) map[string]string {
	m := make(map[string]string, len(words))
	for _, w := range words {
		m[strings.ToLower(w)] = w
	}
	return m
}

// checkKeys reports keys of obj that differ from a keyword only in case.
func (w *walker) checkKeys(ptr string, obj map[string]any, keywords map[string]string) {
	for _, k := range sortedKeys(obj) {
		if want, ok := keywords[strings.ToLower(k)]; ok && want != k {
			w.v.Add(pointer(ptr, k), "unknown key %q; keywords are case-sensitive, expected %q", k, want)
		}
	}
}

func sortedKeys[V any](m map[string]V) []string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	return keys
}

// first reports whether kind at ptr is walked for the first time.
func (w *walker) first(kind, ptr string) bool {
	key := kind + " " + ptr
	if w.seen[key] {
		return false
	}
	w.seen[key] = true
	return true
}

// object returns node as an object, or nil.
func object(node any) map[string]any {
	m, _ := node.(map[string]any)
	return m
}

// each calls fn for every entry of the object at obj[key], in key order.
func each(ptr string, obj map[string]any, key string, fn func(ptr string, node any)) {
	m := object(obj[key])
	for _, k := range sortedKeys(m) {
		fn(pointer(pointer(ptr, key), k), m[k])
	}
}

// eachItem calls fn for every element of the array at obj[key].
func eachItem(ptr string, obj map[string]any, key string, fn func(ptr string, node any)) {
	arr, _ := obj[key].([]any)
	for i, x := range arr {
		fn(pointer(pointer(ptr, key), strconv.Itoa(i)), x)
	}
}

// resolve finds the target of a local reference. It returns the target's
// canonical pointer, or a message saying what is wrong with ref.
func (w *walker) resolve(ref string) (string, any, string) {
	if !strings.HasPrefix(ref, "#") {
		return "", nil, fmt.Sprintf("external reference %q is not allowed: every definition must be inside this document (expected a local reference such as \"#/components/schemas/Citizen\")", ref)
	}
	frag, err := url.PathUnescape(ref[1:])
	if err != nil {
		return "", nil, fmt.Sprintf("reference %q is not a valid URI fragment: %v", ref, err)
	}
	if !strings.HasPrefix(frag, "/") {
		return "", nil, fmt.Sprintf("reference %q is not supported: expected a JSON pointer fragment such as \"#/components/schemas/Citizen\"", ref)
	}
	ptr, node := "", w.root
	for _, tok := range strings.Split(frag[1:], "/") {
		tok = strings.ReplaceAll(strings.ReplaceAll(tok, "~1", "/"), "~0", "~")
		ptr = pointer(ptr, tok)
		switch n := node.(type) {
		case map[string]any:
			next, ok := n[tok]
			if !ok {
				return "", nil, fmt.Sprintf("reference %q points to nothing: there is no %s in this document", ref, ptr)
			}
			node = next
		case []any:
			i, err := strconv.Atoi(tok)
			if err != nil || i < 0 || i >= len(n) || strconv.Itoa(i) != tok {
				return "", nil, fmt.Sprintf("reference %q points to nothing: there is no %s in this document", ref, ptr)
			}
			node = n[i]
		default:
			return "", nil, fmt.Sprintf("reference %q points to nothing: there is no %s in this document", ref, ptr)
		}
	}
	return ptr, node, ""
}

// follow queues the target of obj's $ref, if it has one, to be walked by
// visit once the current walk is done (a queue rather than recursion keeps
// long chains of references from growing the stack). Problems with the
// reference are reported at its pointer. It reports whether obj has a $ref.
func (w *walker) follow(ptr string, obj map[string]any, visit func(ptr string, node any)) bool {
	raw, has := obj["$ref"]
	if !has {
		return false
	}
	ref, isString := raw.(string)
	if !isString {
		w.v.Add(pointer(ptr, "$ref"), "expected a reference string such as \"#/components/schemas/Citizen\", found %s", describe(raw))
		w.refProblems = true
		return true
	}
	target, node, msg := w.resolve(ref)
	if msg != "" {
		w.v.Add(pointer(ptr, "$ref"), "%s", msg)
		w.refProblems = true
		return true
	}
	w.refs = append(w.refs, refEdge{from: ptr, to: target})
	w.queue = append(w.queue, func() { visit(target, node) })
	return true
}

// refDepth finds a chain of references longer than maxRefDepth and returns
// its length and the target where it starts, or 0 and "". References inside
// a target count towards its depth; cycles are not followed again.
func (w *walker) refDepth() (int, string) {
	targets := map[string]bool{}
	for _, e := range w.refs {
		targets[e.to] = true
	}
	// enclosing returns the innermost target at ptr or above it ("" if none);
	// strict skips ptr itself.
	enclosing := func(ptr string, strict bool) string {
		i := len(ptr)
		if strict {
			i = strings.LastIndexByte(ptr, '/')
		}
		for ; i > 0; i = strings.LastIndexByte(ptr[:i], '/') {
			if targets[ptr[:i]] {
				return ptr[:i]
			}
		}
		return ""
	}
	type edge struct {
		to   string
		hops int // 1 for a reference, 0 for a target nested in another
	}
	edges := map[string][]edge{}
	for _, e := range w.refs {
		if from := enclosing(e.from, false); from != "" {
			edges[from] = append(edges[from], edge{e.to, 1})
		}
	}
	for t := range targets {
		if outer := enclosing(t, true); outer != "" {
			edges[outer] = append(edges[outer], edge{t, 0})
		}
	}
	depth := map[string]int{}
	onStack := map[string]bool{}
	var visit func(t string) int
	visit = func(t string) int {
		if d, done := depth[t]; done {
			return d
		}
		if onStack[t] {
			return 0 // a cycle: kin-openapi and the deriver stop there
		}
		onStack[t] = true
		d := 0
		for _, e := range edges[t] {
			d = max(d, e.hops+visit(e.to))
		}
		delete(onStack, t)
		depth[t] = d
		return d
	}
	for _, t := range sortedKeys(targets) {
		if d := 1 + visit(t); d > maxRefDepth {
			return d, t
		}
	}
	return 0, ""
}

// document walks every part of the document that can hold a schema.
func (w *walker) document() {
	root := object(w.root)
	w.checkKeys("", root, structuralKeywords)
	each("", root, "paths", w.pathItem)
	each("", root, "webhooks", w.pathItem)
	components := object(root["components"])
	if components == nil {
		return
	}
	w.checkKeys("/components", components, structuralKeywords)
	each("/components", components, "schemas", w.schema)
	each("/components", components, "responses", w.response)
	each("/components", components, "parameters", w.parameter)
	each("/components", components, "requestBodies", w.requestBody)
	each("/components", components, "headers", w.parameter)
	each("/components", components, "callbacks", w.callback)
	each("/components", components, "pathItems", w.pathItem)
}

// drain walks the targets of references until none is left; each target is
// walked once, so it ends.
func (w *walker) drain() {
	for len(w.queue) > 0 {
		next := w.queue[0]
		w.queue = w.queue[1:]
		next()
	}
}

var methods = []string{"get", "put", "post", "delete", "options", "head", "patch", "trace"}

func (w *walker) pathItem(ptr string, node any) {
	obj := object(node)
	if obj == nil || !w.first("path item", ptr) {
		return
	}
	w.checkKeys(ptr, obj, structuralKeywords)
	w.follow(ptr, obj, w.pathItem)
	eachItem(ptr, obj, "parameters", w.parameter)
	for _, m := range methods {
		if op := object(obj[m]); op != nil {
			w.operation(pointer(ptr, m), op)
		}
	}
}

func (w *walker) operation(ptr string, obj map[string]any) {
	w.checkKeys(ptr, obj, structuralKeywords)
	eachItem(ptr, obj, "parameters", w.parameter)
	if body, ok := obj["requestBody"]; ok {
		w.requestBody(pointer(ptr, "requestBody"), body)
	}
	each(ptr, obj, "responses", w.response)
	each(ptr, obj, "callbacks", w.callback)
}

func (w *walker) callback(ptr string, node any) {
	obj := object(node)
	if obj == nil || !w.first("callback", ptr) {
		return
	}
	if w.follow(ptr, obj, w.callback) {
		return
	}
	for _, expr := range sortedKeys(obj) {
		if !strings.HasPrefix(expr, "x-") {
			w.pathItem(pointer(ptr, expr), obj[expr])
		}
	}
}

// parameter walks a parameter or a header: both hold schema or content.
func (w *walker) parameter(ptr string, node any) {
	obj := object(node)
	if obj == nil || !w.first("parameter", ptr) {
		return
	}
	w.checkKeys(ptr, obj, structuralKeywords)
	w.follow(ptr, obj, w.parameter)
	if s, ok := obj["schema"]; ok {
		w.schema(pointer(ptr, "schema"), s)
	}
	each(ptr, obj, "content", w.mediaType)
}

func (w *walker) requestBody(ptr string, node any) {
	obj := object(node)
	if obj == nil || !w.first("request body", ptr) {
		return
	}
	w.checkKeys(ptr, obj, structuralKeywords)
	w.follow(ptr, obj, w.requestBody)
	each(ptr, obj, "content", w.mediaType)
}

func (w *walker) response(ptr string, node any) {
	obj := object(node)
	if obj == nil || !w.first("response", ptr) {
		return
	}
	w.checkKeys(ptr, obj, structuralKeywords)
	w.follow(ptr, obj, w.response)
	each(ptr, obj, "headers", w.parameter)
	each(ptr, obj, "content", w.mediaType)
}

func (w *walker) mediaType(ptr string, node any) {
	obj := object(node)
	if obj == nil {
		return
	}
	w.checkKeys(ptr, obj, structuralKeywords)
	if s, ok := obj["schema"]; ok {
		w.schema(pointer(ptr, "schema"), s)
	}
	each(ptr, obj, "encoding", func(ptr string, node any) {
		if enc := object(node); enc != nil {
			each(ptr, enc, "headers", w.parameter)
		}
	})
}

// Schema keywords whose values are schemas, arrays of schemas, or maps of
// schemas. Boolean values (3.1 boolean schemas) are skipped naturally.
var (
	subschemaKeys = []string{"items", "additionalProperties", "propertyNames", "contains",
		"unevaluatedItems", "unevaluatedProperties", "if", "then", "else", "not", "contentSchema"}
	subschemaListKeys = []string{"allOf", "anyOf", "oneOf", "prefixItems"}
	subschemaMapKeys  = []string{"patternProperties", "dependentSchemas", "$defs", "definitions"}
	// structuralSiblings change a schema's shape; next to a $ref in OpenAPI
	// 3.0 they would be silently ignored, so they are reported.
	structuralSiblings = []string{"type", "properties", "items", "allOf", "anyOf", "oneOf", "additionalProperties"}
)

// schema checks one schema and everything below it.
func (w *walker) schema(ptr string, node any) {
	obj := object(node)
	if obj == nil || !w.first("schema", ptr) {
		return
	}
	w.checkKeys(ptr, obj, schemaKeywords)
	w.follow(ptr, obj, w.schema)
	if _, has := obj["$ref"]; has && !w.v31 {
		for _, k := range structuralSiblings {
			if _, sib := obj[k]; sib {
				w.v.Add(pointer(ptr, k), "OpenAPI 3.0 ignores %s next to $ref; expected allOf: [{$ref: ...}, {...}] or an OpenAPI 3.1 document", k)
			}
		}
	}
	for _, k := range []string{"$id", "$dynamicRef"} {
		if _, has := obj[k]; has {
			w.v.Add(pointer(ptr, k), "%s is not supported: references are resolved within this document only; expected a local $ref such as \"#/components/schemas/Citizen\"", k)
		}
	}
	w.marks(ptr, obj)

	props, hasProps := obj["properties"]
	if hasProps && object(props) == nil {
		w.v.Add(pointer(ptr, "properties"), "expected an object mapping property names to schemas, found %s", describe(props))
	}
	for _, name := range sortedKeys(object(props)) {
		pptr := pointer(pointer(ptr, "properties"), name)
		w.property(pptr, object(props)[name])
		w.schema(pptr, object(props)[name])
	}
	for _, k := range subschemaKeys {
		switch sub := obj[k].(type) {
		case map[string]any:
			w.schema(pointer(ptr, k), sub)
		case []any: // items as an array, as in older JSON Schema
			eachItem(ptr, obj, k, w.schema)
		}
	}
	for _, k := range subschemaListKeys {
		eachItem(ptr, obj, k, w.schema)
	}
	for _, k := range subschemaMapKeys {
		each(ptr, obj, k, w.schema)
	}
}

// property checks that a schema property is classified, by its own
// x-classification or, for a $ref, by the referenced schema's.
func (w *walker) property(ptr string, node any) {
	obj := object(node)
	if obj == nil {
		w.v.Add(ptr, "expected a schema object with x-classification (one of %s), found %s", classificationList, describe(node))
		return
	}
	if _, found := w.mark(obj, "x-classification"); found {
		return // its value is checked by marks
	}
	w.v.Add(ptr, "missing x-classification; every property must be classified as one of %s", classificationList)
}

// mark returns the value of an x- mark of a property schema: its own or, if
// it has none and is a $ref, that of the schema it refers to.
func (w *walker) mark(obj map[string]any, key string) (any, bool) {
	for hops := 0; obj != nil && hops <= maxRefDepth; hops++ {
		if x, ok := obj[key]; ok {
			return x, true
		}
		ref, _ := obj["$ref"].(string)
		if ref == "" {
			return nil, false
		}
		_, target, msg := w.resolve(ref)
		if msg != "" {
			return nil, false
		}
		obj = object(target)
	}
	return nil, false
}

// marks checks the values of x-classification and x-default-shared where
// they are written.
func (w *walker) marks(ptr string, obj map[string]any) {
	if class, ok := obj["x-classification"]; ok {
		if s, ok := class.(string); !ok || !Classification(s).Valid() {
			w.v.Add(pointer(ptr, "x-classification"), "expected one of %s, found %s", classificationList, describe(class))
		}
	}
	if shared, ok := obj["x-default-shared"]; ok {
		if _, isBool := shared.(bool); !isBool {
			w.v.Add(pointer(ptr, "x-default-shared"), "expected a boolean (true or false), found %s", describe(shared))
		}
	}
}

// info reads what the catalog needs from the info object and checks the
// dataset extensions there.
func (w *walker) info() *Document {
	doc := &Document{}
	root := object(w.root)
	info := object(root["info"])
	if info == nil {
		w.v.Add("/info", "expected an info object with title and version, found %s", describe(root["info"]))
		return doc
	}
	doc.Title, _ = info["title"].(string)
	doc.Description, _ = info["description"].(string)
	doc.APIVersion, _ = info["version"].(string)

	if raw, ok := info["x-dataset-code"]; ok {
		code, _ := raw.(string)
		if !ValidDatasetCode(code) {
			w.v.Add("/info/x-dataset-code", "expected a dataset code of 2-64 lower-case letters, digits and dashes, starting with a letter (e.g. \"population\"), found %s", describe(raw))
		} else {
			doc.Code = code
		}
	}
	if raw, ok := info["x-min-security-level"]; ok {
		level, ok := integer(raw)
		if !ok || level < 1 || level > 5 {
			w.v.Add("/info/x-min-security-level", "expected a security level, an integer from 1 to 5, found %s", describe(raw))
		} else {
			doc.DeclaredMinLevel = level
		}
	}

	schemas := object(object(root["components"])["schemas"])
	names := sortedKeys(schemas)
	raw, named := info["x-record-schema"]
	switch name, _ := raw.(string); {
	case named && name == "":
		w.v.Add("/info/x-record-schema", "expected the name of the record schema in components.schemas, found %s", describe(raw))
	case named && schemas[name] == nil:
		if _, exists := schemas[name]; exists {
			w.v.Add(pointer("/components/schemas", name), "expected the record schema %q to be an object schema, found null", name)
		} else {
			w.v.Add("/info/x-record-schema", "no schema %q in components.schemas; expected one of: %s", name, orNone(names))
		}
	case named:
		doc.RecordSchema = name
	case len(names) == 1:
		doc.RecordSchema = names[0]
	case len(names) == 0:
		w.v.Add("/info", "no record schema: define it in components.schemas and name it in x-record-schema")
	default:
		w.v.Add("/info", "set x-record-schema to the name of the record schema; components.schemas holds %d schemas (%s)", len(names), orNone(names))
	}
	return doc
}

func orNone(names []string) string {
	if len(names) == 0 {
		return "none defined"
	}
	return strings.Join(names, ", ")
}

// integer reads a whole JSON number.
func integer(x any) (int, bool) {
	n, ok := x.(json.Number)
	if !ok {
		return 0, false
	}
	f, err := n.Float64()
	if err != nil || f != math.Trunc(f) || math.Abs(f) > 1<<31 {
		return 0, false
	}
	return int(f), true
}
