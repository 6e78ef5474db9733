package catalog

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math"
	"net/url"
	"regexp"
	"sort"
	"strconv"
	"strings"

	"github.com/getkin/kin-openapi/openapi3"
	"go.yaml.in/yaml/v3"
)

// Document is a validated dataset description derived from an OpenAPI 3.0 or
// 3.1 document. It is what a publisher's document means to the catalog: the
// fields consumers can ask for, each with its classification, so grants,
// policies and the gateway's field filter never have to read OpenAPI again.
type Document struct {
	// Title, Description and APIVersion come from the document's info object.
	Title, Description, APIVersion string
	// Code is info.x-dataset-code, or "" when the document does not name its
	// dataset (the publisher then names it when publishing).
	Code string
	// RecordSchema is the name in components.schemas the fields derive from.
	RecordSchema string
	// DeclaredMinLevel is info.x-min-security-level (1..5), or 0 when the
	// document leaves the minimum consumer level to the default.
	DeclaredMinLevel int
	// Fields are derived from the record schema, sorted by path.
	Fields []Field
}

// MaxDocumentSize bounds what LoadDocument accepts (4 MiB). Real dataset
// documents are a few hundred kilobytes at most; the bound keeps parsing and
// validation of hostile input cheap.
const MaxDocumentSize = 4 << 20

// Limits that keep hostile documents from costing unbounded time or stack.
const (
	// maxNesting bounds how deeply JSON or YAML values may nest. Parsing and
	// walking are recursive, so the bound also bounds stack use.
	maxNesting = 1000
	// maxYAMLNodes bounds the values a YAML document may expand to through
	// aliases ("billion laughs").
	maxYAMLNodes = 1 << 21
	// maxFieldDepth bounds field paths to 16 segments, which also stops
	// recursive schemas from being unrolled for ever.
	maxFieldDepth = 16
	// maxFields and maxExpansions bound the work of deriving fields when
	// allOf/oneOf/anyOf and $ref multiply schemas.
	maxFields     = 10000
	maxExpansions = 200000
	// maxRefDepth bounds chains of references (a $ref to a schema holding a
	// $ref to a schema ...). kin-openapi's work grows with the square of
	// their length, so longer chains are refused before it sees them.
	maxRefDepth = 32
)

// documentWhat names the input in every ValidationError LoadDocument returns.
const documentWhat = "dataset document"

// classificationList is the allowed values of x-classification as a message
// fragment, so every message lists them the same way.
var classificationList = func() string {
	s := make([]string, len(Classifications))
	for i, c := range Classifications {
		s[i] = string(c)
	}
	return strings.Join(s, ", ")
}()

// LoadDocument parses (JSON or YAML) and validates a dataset document with
// kin-openapi. Every failure is a *ValidationError (What: "dataset document")
// listing ALL problems, each with an RFC 6901 JSON pointer into the document
// and what is expected there, so a publisher fixes everything in one round.
//
// Beyond OpenAPI itself it requires that every schema property anywhere in
// the document carries x-classification, rejects duplicate keys (which could
// hide a field from classification), never follows external references, and
// derives the dataset's fields from the record schema. Only a cancelled ctx
// yields another kind of error.
func LoadDocument(ctx context.Context, data []byte) (*Document, error) {
	if err := ctx.Err(); err != nil {
		return nil, fmt.Errorf("loading dataset document: %w", err)
	}
	v := newReport()
	if len(data) > MaxDocumentSize {
		v.Add("", "the document is %d bytes; expected at most %d bytes (4 MiB)", len(data), MaxDocumentSize)
		return nil, v.err()
	}
	root, jsonData := parseDocument(data, v)
	if root == nil {
		return nil, v.err()
	}
	version, ok := checkVersion(root, v)
	if !ok {
		return nil, v.err()
	}

	w := &walker{root: root, v: v, v31: version == "3.1", seen: map[string]bool{}}
	w.document()
	w.drain()
	refDepth, deepAt := w.refDepth()
	if refDepth > 0 {
		v.Add(deepAt, "references nest %d deep from here (a $ref to a schema with a $ref to ...); expected at most %d", refDepth, maxRefDepth)
	}
	doc := w.info()
	if doc.RecordSchema != "" {
		d := &deriver{w: w, budget: maxExpansions}
		doc.Fields = d.record(doc.RecordSchema)
	}

	if err := ctx.Err(); err != nil {
		return nil, fmt.Errorf("loading dataset document: %w", err)
	}
	if refDepth == 0 { // else kin-openapi would take too long
		openAPIProblems(ctx, jsonData, v, w.refProblems)
	}
	if err := ctx.Err(); err != nil {
		return nil, fmt.Errorf("loading dataset document: %w", err)
	}
	if err := v.err(); err != nil {
		return nil, err
	}
	sort.Slice(doc.Fields, func(i, j int) bool { return doc.Fields[i].Path < doc.Fields[j].Path })
	return doc, nil
}

// MinConsumerLevel is the lowest security level a consumer system needs for
// this dataset: DeclaredMinLevel if the publisher set one, otherwise
// DefaultPersonalDataLevel when any field is personal or sensitive (the rule
// for systems connecting to personal data), otherwise 1.
func (d *Document) MinConsumerLevel() int {
	if d.DeclaredMinLevel != 0 {
		return d.DeclaredMinLevel
	}
	for _, f := range d.Fields {
		if f.Classification.IsPersonal() {
			return DefaultPersonalDataLevel
		}
	}
	return 1
}

// report collects the problems of one document, each once and at most
// maxProblems of them, so that a hostile document cannot make the list huge.
type report struct {
	*ValidationError
	seen    map[Problem]bool
	dropped int
}

// maxProblems bounds the problems listed for one document.
const maxProblems = 1000

func newReport() *report {
	return &report{ValidationError: &ValidationError{What: documentWhat}, seen: map[Problem]bool{}}
}

// Add records one problem unless it is already recorded or the list is full.
func (r *report) Add(pointer, format string, args ...any) {
	p := Problem{Pointer: pointer, Message: fmt.Sprintf(format, args...)}
	switch {
	case r.seen[p]:
	case len(r.Problems) >= maxProblems:
		r.dropped++
	default:
		r.seen[p] = true
		r.Problems = append(r.Problems, p)
	}
}

// err orders the problems by pointer and returns them as a
// *ValidationError, or nil if there are none.
func (r *report) err() error {
	sort.SliceStable(r.Problems, func(i, j int) bool { return r.Problems[i].Pointer < r.Problems[j].Pointer })
	if r.dropped > 0 {
		r.ValidationError.Add("", "%d further problems are not listed; fix these first", r.dropped)
	}
	return r.ValidationError.Err()
}

// ---------------------------------------------------------------------------
// Parsing: JSON or YAML into a plain tree (map[string]any, []any, string,
// json.Number, bool, nil), reporting duplicate keys with their pointers.

// parseDocument returns the document as a tree and as JSON for kin-openapi,
// or a nil tree when it cannot be read (the reasons are in v).
func parseDocument(data []byte, v *report) (any, []byte) {
	data = bytes.TrimPrefix(data, []byte("\xef\xbb\xbf"))
	trimmed := bytes.TrimLeft(data, " \t\r\n")
	if len(trimmed) == 0 {
		v.Add("", "the document is empty; expected an OpenAPI 3.0 or 3.1 document in JSON or YAML")
		return nil, nil
	}
	var root any
	var ok bool
	if trimmed[0] == '{' || trimmed[0] == '[' {
		root, ok = parseJSON(data, v)
	} else {
		root, ok = parseYAML(data, v)
	}
	if !ok {
		return nil, nil
	}
	if _, isObject := root.(map[string]any); !isObject {
		v.Add("", "expected an OpenAPI document (an object with openapi, info, paths, components), found %s", describe(root))
		return nil, nil
	}
	if trimmed[0] == '{' {
		return root, data
	}
	out, err := json.Marshal(root)
	if err != nil { // unreachable: the tree holds only JSON values
		v.Add("", "the document cannot be converted to JSON: %v", err)
		return nil, nil
	}
	return root, out
}

// errTooDeep stops parsing a document nested beyond maxNesting.
var errTooDeep = fmt.Errorf("values nest deeper than %d levels", maxNesting)

// jsonParser reads JSON token by token, so that it sees every key, also the
// second of two equal keys that encoding/json would silently let win.
type jsonParser struct {
	dec *json.Decoder
	v   *report
}

func parseJSON(data []byte, v *report) (any, bool) {
	dec := json.NewDecoder(bytes.NewReader(data))
	dec.UseNumber()
	p := &jsonParser{dec: dec, v: v}
	root, err := p.value("", 0)
	if err == nil {
		if _, extra := dec.Token(); extra != io.EOF {
			err = errors.New("unexpected data after the top-level value")
		}
	}
	if err != nil {
		v.Add("", "the document is not valid JSON%s: %v", jsonPosition(data, dec, err), err)
		return nil, false
	}
	return root, true
}

// jsonPosition tells where in data a JSON error happened, as " (line L,
// column C)".
func jsonPosition(data []byte, dec *json.Decoder, err error) string {
	offset := dec.InputOffset()
	var syntax *json.SyntaxError
	if errors.As(err, &syntax) {
		offset = syntax.Offset
	}
	if offset < 0 || offset > int64(len(data)) {
		return ""
	}
	before := data[:offset]
	line := bytes.Count(before, []byte("\n")) + 1
	column := int(offset) - bytes.LastIndexByte(before, '\n')
	return fmt.Sprintf(" (line %d, column %d)", line, column)
}

func (p *jsonParser) value(ptr string, depth int) (any, error) {
	tok, err := p.dec.Token()
	if err == io.EOF {
		return nil, io.ErrUnexpectedEOF
	}
	if err != nil {
		return nil, err
	}
	delim, isDelim := tok.(json.Delim)
	if !isDelim {
		return tok, nil // string, json.Number, bool or nil
	}
	if depth >= maxNesting {
		return nil, errTooDeep
	}
	switch delim {
	case '{':
		obj := map[string]any{}
		for p.dec.More() {
			keyTok, err := p.dec.Token()
			if err != nil {
				return nil, err
			}
			key, ok := keyTok.(string)
			if !ok {
				return nil, fmt.Errorf("expected an object key, found %v", keyTok)
			}
			child := pointer(ptr, key)
			if _, dup := obj[key]; dup {
				p.v.Add(child, "the key %q appears more than once in this object; each key must appear once, so that no second definition can hide a field from classification", key)
			}
			val, err := p.value(child, depth+1)
			if err != nil {
				return nil, err
			}
			obj[key] = val
		}
		if _, err := p.dec.Token(); err != nil { // the closing brace
			return nil, err
		}
		return obj, nil
	case '[':
		arr := []any{}
		for p.dec.More() {
			val, err := p.value(pointer(ptr, strconv.Itoa(len(arr))), depth+1)
			if err != nil {
				return nil, err
			}
			arr = append(arr, val)
		}
		if _, err := p.dec.Token(); err != nil { // the closing bracket
			return nil, err
		}
		return arr, nil
	}
	return nil, fmt.Errorf("unexpected %v", delim)
}

// yamlConverter turns a yaml.Node tree into the plain tree. yaml.v3 itself
// rejects duplicate keys only when decoding into Go values, and without a
// pointer, so the converter checks them itself.
type yamlConverter struct {
	v         *report
	nodes     int
	expanding map[*yaml.Node]bool // aliases being expanded, to stop cycles
}

func parseYAML(data []byte, v *report) (root any, ok bool) {
	var doc yaml.Node
	err := safely(func() error {
		dec := yaml.NewDecoder(bytes.NewReader(data))
		if err := dec.Decode(&doc); err != nil {
			return err
		}
		var next yaml.Node
		switch err := dec.Decode(&next); {
		case err == io.EOF:
			return nil
		case err != nil:
			return err
		default:
			return errors.New("found more than one YAML document; expected exactly one")
		}
	})
	if err == io.EOF {
		v.Add("", "the document is empty; expected an OpenAPI 3.0 or 3.1 document in JSON or YAML")
		return nil, false
	}
	if err != nil {
		v.Add("", "the document is neither valid JSON nor valid YAML: %v", err)
		return nil, false
	}
	c := &yamlConverter{v: v, expanding: map[*yaml.Node]bool{}}
	if err := safely(func() error {
		var err error
		root, err = c.value(&doc, "", 0)
		return err
	}); err != nil {
		v.Add("", "the YAML document cannot be read: %v", err)
		return nil, false
	}
	return root, true
}

func (c *yamlConverter) value(n *yaml.Node, ptr string, depth int) (any, error) {
	if depth >= maxNesting {
		return nil, errTooDeep
	}
	if c.nodes++; c.nodes > maxYAMLNodes {
		return nil, fmt.Errorf("the document expands to more than %d values (too many aliases)", maxYAMLNodes)
	}
	switch n.Kind {
	case yaml.DocumentNode:
		if len(n.Content) == 0 {
			return nil, nil
		}
		return c.value(n.Content[0], ptr, depth)
	case yaml.AliasNode:
		if n.Alias == nil || c.expanding[n.Alias] {
			return nil, fmt.Errorf("line %d: alias %q refers to a value that contains it", n.Line, n.Value)
		}
		c.expanding[n.Alias] = true
		defer delete(c.expanding, n.Alias)
		return c.value(n.Alias, ptr, depth+1)
	case yaml.MappingNode:
		obj := make(map[string]any, len(n.Content)/2)
		lines := make(map[string]int, len(n.Content)/2)
		for i := 0; i+1 < len(n.Content); i += 2 {
			k, val := n.Content[i], n.Content[i+1]
			if k.Kind != yaml.ScalarNode {
				c.v.Add(ptr, "line %d: expected a plain key (a string), found a YAML %s", k.Line, yamlKind(k))
				continue
			}
			if k.ShortTag() == "!!merge" {
				c.v.Add(ptr, "line %d: YAML merge keys (<<) are not supported; write the keys out so that each is seen and classified", k.Line)
				continue
			}
			child := pointer(ptr, k.Value)
			if first, dup := lines[k.Value]; dup {
				c.v.Add(child, "the key %q appears more than once in this object (lines %d and %d); each key must appear once, so that no second definition can hide a field from classification", k.Value, first, k.Line)
			} else {
				lines[k.Value] = k.Line
			}
			x, err := c.value(val, child, depth+1)
			if err != nil {
				return nil, err
			}
			obj[k.Value] = x
		}
		return obj, nil
	case yaml.SequenceNode:
		arr := make([]any, 0, len(n.Content))
		for i, item := range n.Content {
			x, err := c.value(item, pointer(ptr, strconv.Itoa(i)), depth+1)
			if err != nil {
				return nil, err
			}
			arr = append(arr, x)
		}
		return arr, nil
	case yaml.ScalarNode:
		return c.scalar(n, ptr), nil
	}
	return nil, fmt.Errorf("line %d: unexpected YAML node", n.Line)
}

// scalar converts one YAML scalar the way kin-openapi reads YAML: timestamps
// stay strings, numbers become json.Number.
func (c *yamlConverter) scalar(n *yaml.Node, ptr string) any {
	switch n.ShortTag() {
	case "!!str", "!!timestamp", "!!binary":
		return n.Value
	case "!!null":
		return nil
	case "!!bool":
		var b bool
		if err := n.Decode(&b); err != nil {
			c.v.Add(ptr, "line %d: %v", n.Line, err)
		}
		return b
	case "!!int", "!!float":
		var x any
		if err := n.Decode(&x); err != nil {
			c.v.Add(ptr, "line %d: %v", n.Line, err)
			return nil
		}
		switch x := x.(type) {
		case int:
			return json.Number(strconv.Itoa(x))
		case int64:
			return json.Number(strconv.FormatInt(x, 10))
		case uint64:
			return json.Number(strconv.FormatUint(x, 10))
		case float64:
			if math.IsNaN(x) || math.IsInf(x, 0) {
				c.v.Add(ptr, "line %d: %s cannot be written in JSON; expected a finite number", n.Line, n.Value)
				return nil
			}
			return json.Number(strconv.FormatFloat(x, 'g', -1, 64))
		}
		return n.Value
	}
	c.v.Add(ptr, "line %d: unsupported YAML tag %s; expected a plain string, number, boolean or null", n.Line, n.Tag)
	return nil
}

func yamlKind(n *yaml.Node) string {
	switch n.Kind {
	case yaml.MappingNode:
		return "mapping"
	case yaml.SequenceNode:
		return "sequence"
	case yaml.AliasNode:
		return "alias"
	}
	return "node"
}

// safely runs fn and turns a panic in a third-party parser or validator into
// an error, so that no input can crash the caller.
func safely(fn func() error) (err error) {
	defer func() {
		if r := recover(); r != nil {
			err = fmt.Errorf("internal error while reading the document: %v", r)
		}
	}()
	return fn()
}

// pointer appends one reference token to an RFC 6901 JSON pointer.
func pointer(ptr, token string) string {
	token = strings.ReplaceAll(token, "~", "~0")
	token = strings.ReplaceAll(token, "/", "~1")
	return ptr + "/" + token
}

// describe names a tree value's kind (and short value) for messages.
func describe(x any) string {
	switch x := x.(type) {
	case nil:
		return "null"
	case string:
		if r := []rune(x); len(r) > 40 {
			x = string(r[:40]) + "…"
		}
		return strconv.Quote(x)
	case bool:
		return strconv.FormatBool(x)
	case json.Number:
		return "the number " + x.String()
	case map[string]any:
		return "an object"
	case []any:
		return "an array"
	}
	return fmt.Sprintf("%T", x)
}

// ---------------------------------------------------------------------------
// Version.

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

// ---------------------------------------------------------------------------
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

// ---------------------------------------------------------------------------
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

// ---------------------------------------------------------------------------
// kin-openapi: load without external references and validate.

// openAPIProblems loads the document with kin-openapi and adds its
// validation errors to v. A load failure is expected after the walker found
// a bad $ref and is then not repeated.
func openAPIProblems(ctx context.Context, data []byte, v *report, refProblems bool) {
	var doc *openapi3.T
	err := safely(func() error {
		loader := &openapi3.Loader{Context: ctx, IsExternalRefsAllowed: false}
		var err error
		doc, err = loader.LoadFromData(data)
		return err
	})
	if err != nil {
		if !refProblems {
			v.Add("", "not a valid OpenAPI document: %s", firstLine(err.Error()))
		}
		return
	}
	var verr error
	if err := safely(func() error {
		verr = doc.Validate(ctx, openapi3.EnableMultiError())
		return nil
	}); err != nil {
		v.Add("", "the document could not be validated: %v", err)
		return
	}
	if verr == nil {
		return
	}
	errs, ok := verr.(openapi3.MultiError)
	if !ok {
		errs = openapi3.MultiError{verr}
	}
	for _, e := range errs {
		ptr, msg := locate(e)
		v.Add(ptr, "invalid OpenAPI: %s", msg)
	}
}

// componentKeys maps kin-openapi's component section labels to the keys
// of the components object.
var componentKeys = map[string]string{
	"schema": "schemas", "parameter": "parameters", "header": "headers", "request body": "requestBodies",
	"response": "responses", "security scheme": "securitySchemes", "example": "examples",
	"link": "links", "callback": "callbacks", "path item": "pathItems",
}

// locate turns kin-openapi's chain of context errors into a JSON pointer
// and the innermost message.
func locate(err error) (string, string) {
	ptr := ""
	for {
		switch e := err.(type) {
		case *openapi3.SectionValidationError:
			section := e.Section
			if section == "external docs" {
				section = "externalDocs"
			}
			ptr, err = pointer(ptr, section), e.Cause
		case *openapi3.ComponentValidationError:
			key, ok := componentKeys[e.Section]
			if !ok {
				key = e.Section
			}
			ptr, err = pointer(pointer(ptr, key), e.Name), e.Cause
		case *openapi3.PathValidationError:
			ptr, err = pointer(ptr, e.Path), e.Cause
		case *openapi3.OperationValidationError:
			ptr, err = pointer(ptr, strings.ToLower(e.Method)), e.Cause
		case *openapi3.WebhookValidationError:
			ptr, err = pointer(ptr, e.Name), e.Cause
		case *openapi3.PathParametersError:
			return pointer(pointer(ptr, e.Path), strings.ToLower(e.Method)), e.Error()
		case *openapi3.DuplicateOperationIDError:
			if method, path, ok := strings.Cut(e.Endpoint2, " "); ok {
				ptr = pointer(pointer(pointer("/paths", path), strings.ToLower(method)), "operationId")
			}
			return ptr, e.Error()
		case *openapi3.SecurityRequirementSchemeUndefinedError:
			return e.JSONPointer, e.Error()
		default:
			return ptr, firstLine(err.Error())
		}
		if err == nil {
			return ptr, "invalid"
		}
	}
}

// firstLine keeps the first line of a multi-line library message.
func firstLine(s string) string {
	line, _, _ := strings.Cut(s, "\n")
	return strings.TrimSpace(line)
}
