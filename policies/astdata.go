package policies

import (
	"encoding/json"
	"maps"
	"slices"
	"strconv"
	"strings"

	"github.com/open-policy-agent/opa/v1/ast"

	"github.com/lienthong/lienthong/catalog"
)

// astBuilder turns PolicyData into the AST document OPA's in-memory store
// serves, the same value its JSON form (data.json) parses to, built directly:
// no JSON round trip, and identical parts shared. Most grants' answers for a
// path are the same few values ({"fields": [p], "grant": true}), so sharing
// them keeps 100,000 grants in a fraction of the memory their JSON takes.
type astBuilder struct {
	strs  map[string]*ast.Term
	views map[string]*ast.Term
	key   strings.Builder
}

func newASTBuilder() *astBuilder {
	return &astBuilder{strs: map[string]*ast.Term{}, views: map[string]*ast.Term{}}
}

// astDocument builds data.lienthong's value.
func astDocument(pd *PolicyData) ast.Object {
	doc, _ := astDocumentAndStrings(pd)
	return doc
}

// astDocumentAndStrings is astDocument that also returns the string terms
// the document is made of, for inputs to share (termPool). It is what the
// engine stores: the data alone, as a bundle's data.json holds it.
func astDocumentAndStrings(pd *PolicyData) (ast.Object, termPool) {
	b := newASTBuilder()
	return b.document(pd), b.strs
}

// termPool holds string terms by value. Terms are never changed once built,
// so an input may use the data's own terms for the ids, paths, modes and
// purposes it names instead of allocating its own.
type termPool map[string]*ast.Term

func (p termPool) str(s string) *ast.Term {
	if t, ok := p[s]; ok {
		return t
	}
	return ast.StringTerm(s)
}

func (b *astBuilder) document(pd *PolicyData) ast.Object {
	systems := ast.NewObject()
	for _, id := range slices.Sorted(maps.Keys(pd.Systems)) {
		s := pd.Systems[id]
		systems.Insert(b.str(id), ast.ObjectTerm(
			b.kv("member", b.str(s.Member)),
			b.kv("level", ast.IntNumberTerm(s.Level)),
			b.kv("assessment_valid_until", int64Term(s.AssessmentValidUntil)),
			b.kv("revoked", ast.BooleanTerm(s.Revoked)),
		))
	}
	datasets := ast.NewObject()
	for _, ref := range slices.Sorted(maps.Keys(pd.Datasets)) {
		datasets.Insert(b.str(ref), b.dataset(pd.Datasets[ref]))
	}
	grants := ast.NewObject()
	for _, consumer := range slices.Sorted(maps.Keys(pd.Grants)) {
		byRef := ast.NewObject()
		for _, ref := range slices.Sorted(maps.Keys(pd.Grants[consumer])) {
			byID := ast.NewObject()
			for _, id := range slices.Sorted(maps.Keys(pd.Grants[consumer][ref])) {
				byID.Insert(b.str(id), b.grant(pd.Grants[consumer][ref][id]))
			}
			byRef.Insert(b.str(ref), ast.NewTerm(byID))
		}
		grants.Insert(b.str(consumer), ast.NewTerm(byRef))
	}
	agencies := ast.NewObject()
	for _, k := range slices.Sorted(maps.Keys(pd.Agencies)) {
		agencies.Insert(b.str(k), b.str(pd.Agencies[k]))
	}
	views := ast.NewObject()
	for _, id := range slices.Sorted(maps.Keys(pd.Views)) {
		views.Insert(b.str(id), b.view(pd.Views[id]))
	}
	return ast.NewObject(
		b.kv("systems", ast.NewTerm(systems)),
		b.kv("datasets", ast.NewTerm(datasets)),
		b.kv("grants", ast.NewTerm(grants)),
		b.kv("agencies", ast.NewTerm(agencies)),
		b.kv("views", ast.NewTerm(views)),
	)
}

func (b *astBuilder) str(s string) *ast.Term {
	if t, ok := b.strs[s]; ok {
		return t
	}
	t := ast.StringTerm(s)
	b.strs[s] = t
	return t
}

func (b *astBuilder) kv(k string, v *ast.Term) [2]*ast.Term { return [2]*ast.Term{b.str(k), v} }

func (b *astBuilder) strList(ss []string) *ast.Term {
	ts := make([]*ast.Term, len(ss))
	for i, s := range ss {
		ts[i] = b.str(s)
	}
	return ast.ArrayTerm(ts...)
}

func (b *astBuilder) boolSet(m map[string]bool) *ast.Term {
	o := ast.NewObject()
	for _, k := range slices.Sorted(maps.Keys(m)) {
		o.Insert(b.str(k), ast.BooleanTerm(m[k]))
	}
	return ast.NewTerm(o)
}

func (b *astBuilder) masks(m map[string]catalog.Mask) *ast.Term {
	o := ast.NewObject()
	for _, k := range slices.Sorted(maps.Keys(m)) {
		o.Insert(b.str(k), b.str(string(m[k])))
	}
	return ast.NewTerm(o)
}

func (b *astBuilder) reason(r Reason) *ast.Term {
	pairs := [][2]*ast.Term{b.kv("code", b.str(r.Code)), b.kv("message", b.str(r.Message))}
	if r.Field != "" {
		pairs = append(pairs, b.kv("field", b.str(r.Field)))
	}
	return ast.ObjectTerm(pairs...)
}

func (b *astBuilder) rowScope(rs *catalog.RowScope) *ast.Term {
	if rs == nil {
		return ast.NullTerm()
	}
	return ast.ObjectTerm(b.kv("field", b.str(rs.Field)), b.kv("values", b.strList(rs.Values)))
}

// view builds a FieldView, sharing it with every identical one before.
func (b *astBuilder) view(v FieldView) *ast.Term {
	key := viewKey(&b.key, v)
	if t, ok := b.views[key]; ok {
		return t
	}
	pairs := [][2]*ast.Term{b.kv("fields", b.strList(v.Fields))}
	if len(v.Masks) > 0 {
		pairs = append(pairs, b.kv("masks", b.masks(v.Masks)))
	}
	if v.Grant {
		pairs = append(pairs, b.kv("grant", ast.BooleanTerm(true)))
	}
	if v.Reason != nil {
		pairs = append(pairs, b.kv("reason", b.reason(*v.Reason)))
	}
	t := ast.ObjectTerm(pairs...)
	b.views[key] = t
	return t
}

// idMap builds an object of strings (views and fallbacks name answers by id).
func (b *astBuilder) idMap(m map[string]string) *ast.Term {
	o := ast.NewObject()
	for _, p := range slices.Sorted(maps.Keys(m)) {
		o.Insert(b.str(p), b.str(m[p]))
	}
	return ast.NewTerm(o)
}

func (b *astBuilder) dataset(d DatasetData) *ast.Term {
	fields := ast.NewObject()
	for _, p := range slices.Sorted(maps.Keys(d.Fields)) {
		f := d.Fields[p]
		fields.Insert(b.str(p), ast.ObjectTerm(
			b.kv("classification", b.str(string(f.Classification))),
			b.kv("sensitive", ast.BooleanTerm(f.Sensitive)),
			b.kv("default_shared", ast.BooleanTerm(f.DefaultShared)),
			b.kv("lineage", b.strList(f.Lineage)),
		))
	}
	fallback := ast.NewObject()
	for _, mode := range slices.Sorted(maps.Keys(d.Fallback)) {
		fallback.Insert(b.str(mode), b.idMap(d.Fallback[mode]))
	}
	pairs := [][2]*ast.Term{
		b.kv("min_level", ast.IntNumberTerm(d.MinLevel)),
		b.kv("fields", ast.NewTerm(fields)),
		b.kv("default_shared", b.strList(d.DefaultShared)),
		b.kv("fallback", ast.NewTerm(fallback)),
	}
	if d.Agency != "" {
		pairs = append(pairs, b.kv("agency", b.str(d.Agency)))
	}
	return ast.ObjectTerm(pairs...)
}

func (b *astBuilder) grant(g GrantData) *ast.Term {
	return ast.ObjectTerm(
		b.kv("id", b.str(g.ID)),
		b.kv("fields", b.strList(g.Fields)),
		b.kv("view", b.idMap(g.View)),
		b.kv("reason", b.reason(g.Reason)),
		b.kv("purposes", b.boolSet(g.Purposes)),
		b.kv("modes", b.boolSet(g.Modes)),
		b.kv("legal_basis", b.str(g.LegalBasis)),
		b.kv("row_scope", b.rowScope(g.RowScope)),
		b.kv("valid_from", int64Term(g.ValidFrom)),
		b.kv("valid_until", int64Term(g.ValidUntil)),
		b.kv("state", b.str(g.State)),
	)
}

// int64Term is an exact integer term (ns timestamps do not fit a float).
func int64Term(n int64) *ast.Term {
	return ast.NumberTerm(json.Number(strconv.FormatInt(n, 10)))
}
