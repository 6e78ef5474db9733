package rest

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"net/url"
	"slices"
	"strconv"
	"strings"
	"sync"

	"github.com/getkin/kin-openapi/openapi3"

	"github.com/lienthong/lienthong/catalog"
)

// maxCachedSpecs bounds the parsed documents kept in memory. A gateway serves
// a few dozen datasets, each with a handful of published versions in use, so
// this is never reached in practice; it only stops a stream of re-publications
// from growing the cache for ever.
const maxCachedSpecs = 256

// spec is what the adapter needs from a dataset's OpenAPI document: the GET
// operations, each with the path template it matches and the query
// parameters it declares.
type spec struct {
	// ops are ordered most specific first (more literal segments first), as
	// OpenAPI requires concrete paths to match before templated ones.
	ops []*operation
}

// operation is one GET operation of the document.
type operation struct {
	// template is the path as written in the document, e.g.
	// "/citizens/{personalId}". It names the operation in errors, which never
	// carry the concrete path (it holds record ids).
	template string
	segs     []templateSegment
	literals int
	// query lists the declared query parameter names.
	query map[string]bool
	// pathSchemas holds the schemas of the path parameters, so values the
	// document rules out (a personal id that is not 12 digits) never reach
	// the backend.
	pathSchemas map[string]*openapi3.Schema
}

// templateSegment is one segment of a path template: a literal, or a whole
// segment parameter "{name}".
type templateSegment struct {
	literal string
	param   string
}

// parseSpec reads the GET operations of an OpenAPI document (JSON or YAML),
// read as the catalog reads it (catalog.ParseOpenAPI). External references
// are not followed: the catalog refused them when the document was
// published, and a gateway must not fetch URLs named by a publisher.
func parseSpec(document []byte) (*spec, error) {
	doc, err := catalog.ParseOpenAPI(context.Background(), document)
	if err != nil {
		return nil, err
	}
	s := &spec{}
	if doc.Paths == nil {
		return s, nil
	}
	for template, item := range doc.Paths.Map() {
		if item == nil || item.Get == nil {
			continue
		}
		op, ok := newOperation(template, item)
		if ok {
			s.ops = append(s.ops, op)
		}
	}
	slices.SortFunc(s.ops, func(a, b *operation) int {
		if a.literals != b.literals {
			return b.literals - a.literals
		}
		return strings.Compare(a.template, b.template)
	})
	return s, nil
}

// newOperation compiles the GET operation of one path item. Templates with
// a parameter inside a segment ("/files/{name}.json") are not supported and
// reported as not ok; such paths are then simply not reachable through the
// adapter, which fails closed.
func newOperation(template string, item *openapi3.PathItem) (*operation, bool) {
	op := &operation{
		template:    template,
		query:       map[string]bool{},
		pathSchemas: map[string]*openapi3.Schema{},
	}
	trimmed := strings.Trim(template, "/")
	if trimmed != "" {
		for _, part := range strings.Split(trimmed, "/") {
			switch {
			case len(part) > 2 && part[0] == '{' && part[len(part)-1] == '}' && !strings.ContainsAny(part[1:len(part)-1], "{}"):
				op.segs = append(op.segs, templateSegment{param: part[1 : len(part)-1]})
			case strings.ContainsAny(part, "{}"):
				return nil, false
			default:
				op.segs = append(op.segs, templateSegment{literal: part})
				op.literals++
			}
		}
	}
	// Path-item parameters apply to every operation; the operation's own
	// override them by (name, in).
	params := map[[2]string]*openapi3.Parameter{}
	for _, list := range []openapi3.Parameters{item.Parameters, item.Get.Parameters} {
		for _, ref := range list {
			if ref == nil || ref.Value == nil {
				continue
			}
			params[[2]string{ref.Value.Name, ref.Value.In}] = ref.Value
		}
	}
	for key, p := range params {
		switch key[1] {
		case openapi3.ParameterInQuery:
			op.query[key[0]] = true
		case openapi3.ParameterInPath:
			if p.Schema != nil && p.Schema.Value != nil {
				op.pathSchemas[key[0]] = p.Schema.Value
			}
		}
	}
	return op, true
}

// match finds the operation serving segs and checks the path parameter
// values against their schemas.
func (s *spec) match(segs []string) (*operation, error) {
	for _, op := range s.ops {
		if len(op.segs) != len(segs) {
			continue
		}
		ok := true
		for i, ts := range op.segs {
			if ts.param == "" && ts.literal != segs[i] {
				ok = false
				break
			}
		}
		if !ok {
			continue
		}
		for i, ts := range op.segs {
			if ts.param == "" {
				continue
			}
			if err := checkPathValue(op.pathSchemas[ts.param], segs[i]); err != nil {
				return nil, fmt.Errorf("path parameter %q of GET %s does not match its schema", ts.param, op.template)
			}
		}
		return op, nil
	}
	return nil, fmt.Errorf("the dataset's document has no GET operation for this path")
}

// checkPathValue validates a path parameter value against its schema: as a
// string when the schema allows strings, as a number when it allows only
// numbers. Other schemas (booleans, objects) are not checked here; the
// backend still sees only an escaped single segment.
func checkPathValue(schema *openapi3.Schema, value string) error {
	if schema == nil {
		return nil
	}
	switch {
	case schema.Type == nil || schema.Type.Permits(openapi3.TypeString):
		return schema.VisitJSON(value)
	case schema.Type.Permits(openapi3.TypeInteger) || schema.Type.Permits(openapi3.TypeNumber):
		n, err := strconv.ParseFloat(value, 64)
		if err != nil {
			return err
		}
		return schema.VisitJSON(n)
	}
	return nil
}

// filterQuery keeps only the query parameters the operation declares, so a
// consumer cannot reach backend switches (debug=, include=, format=) the
// publisher did not document.
func (op *operation) filterQuery(in url.Values) url.Values {
	out := url.Values{}
	for name, values := range in {
		if op.query[name] {
			out[name] = slices.Clone(values)
		}
	}
	return out
}

// specCache parses each dataset document once per digest. Documents are
// immutable once published (a new version has a new digest), so entries
// never go stale.
type specCache struct {
	mu    sync.Mutex
	specs map[string]*spec
	order []string // insertion order, for eviction
}

// get returns the parsed document of ds, parsing it on first use.
func (c *specCache) get(ds *catalog.Dataset) (*spec, error) {
	if len(ds.Document) == 0 {
		return nil, fmt.Errorf("dataset %s has no OpenAPI document", ds.Ref())
	}
	key := ds.Digest
	if key == "" {
		sum := sha256.Sum256(ds.Document)
		key = hex.EncodeToString(sum[:])
	}
	c.mu.Lock()
	s, ok := c.specs[key]
	c.mu.Unlock()
	if ok {
		return s, nil
	}
	// Parse outside the lock so one large document does not stall fetches
	// of other datasets; two concurrent first uses may both parse, which is
	// harmless.
	s, err := parseSpec(ds.Document)
	if err != nil {
		return nil, fmt.Errorf("dataset %s: %w", ds.Ref(), err)
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	if prev, ok := c.specs[key]; ok {
		return prev, nil
	}
	if c.specs == nil {
		c.specs = map[string]*spec{}
	}
	if len(c.order) >= maxCachedSpecs {
		delete(c.specs, c.order[0])
		c.order = c.order[1:]
	}
	c.specs[key] = s
	c.order = append(c.order, key)
	return s, nil
}
