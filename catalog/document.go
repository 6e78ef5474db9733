package catalog

import (
	"context"
	"fmt"
	"sort"
	"strings"
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
