package policies

import (
	"maps"
	"slices"
	"strings"

	"github.com/open-policy-agent/opa/v1/ast"
)

// FastIndex is the name, under data.lienthong, of the index the engine derives
// from the policy data when it loads a revision (it is not part of the data
// or of a bundle's data.json):
//
//	fast["<consumer id>\x00<dataset ref>\x00<mode>\x00<purpose>"]
//	    {from, until, view, fallback, use}
//
// One flat key costs the rule one concat and one lookup, where nested keys
// cost a lookup each. No component of an indexed key holds a NUL, so a key
// names exactly one (consumer, dataset, mode, purpose).
//
// An entry exists only where the answer up to the time check is already
// known: the consumer is registered, not revoked, assessed at or above the
// dataset's level, and exactly one active grant of it on the dataset names
// both the mode and the purpose. from and until bound the exchange times at
// which that grant is usable and the assessment current. view and fallback
// hold, by path, the grant's answer and the answer without it, in a form the
// rule merges with one object.union_n: {"f": {path: true}, "m": {path: mask},
// "r": {reason: true}, "g": true when a grant allowed the paths}. use[g]
// gives grant_id, row_scope and the grant's own reason ("r") for when a
// grant allowed something (true) or not (false).
//
// The decision rule tries this index first and falls back to the general
// rules whenever an entry is missing; without the index (plain OPA and the
// Rego tests) the general rules decide alone.
const FastIndex = "fast"

// fastIndex builds data.lienthong.fast from pd, sharing terms through b.
func (b *astBuilder) fastIndex(pd *PolicyData) *ast.Term {
	type dsTerms struct{ query, other *ast.Term }
	fallbacks := map[string]dsTerms{}
	fallback := func(ref string) dsTerms {
		if t, ok := fallbacks[ref]; ok {
			return t
		}
		dd := pd.Datasets[ref]
		t := dsTerms{query: b.compiledViewMap(dd.Fallback["query"]), other: b.compiledViewMap(dd.Fallback["other"])}
		fallbacks[ref] = t
		return t
	}
	unused := ast.ObjectTerm(b.kv("grant_id", b.str("")), b.kv("row_scope", ast.NullTerm()), b.kv("r", ast.ObjectTerm()))
	fast := ast.NewObject()
	for _, consumer := range slices.Sorted(maps.Keys(pd.Grants)) {
		if strings.IndexByte(consumer, 0) >= 0 {
			continue
		}
		sys, ok := pd.Systems[consumer]
		if !ok || sys.Revoked || sys.Level <= 0 || sys.AssessmentValidUntil <= 0 {
			continue
		}
		for _, ref := range slices.Sorted(maps.Keys(pd.Grants[consumer])) {
			dd, ok := pd.Datasets[ref]
			if !ok || sys.Level < dd.MinLevel || strings.IndexByte(ref, 0) >= 0 {
				continue
			}
			grants := pd.Grants[consumer][ref]
			// uses[mode][purpose] lists the active grants naming both.
			uses := map[string]map[string][]string{}
			for _, id := range slices.Sorted(maps.Keys(grants)) {
				g := grants[id]
				if g.State != "active" {
					continue
				}
				for mode := range g.Modes {
					if !g.Modes[mode] {
						continue
					}
					if uses[mode] == nil {
						uses[mode] = map[string][]string{}
					}
					for purpose, on := range g.Purposes {
						if on {
							uses[mode][purpose] = append(uses[mode][purpose], id)
						}
					}
				}
			}
			for _, mode := range slices.Sorted(maps.Keys(uses)) {
				fb := fallback(ref).other
				if mode == "query" {
					fb = fallback(ref).query
				}
				for _, purpose := range slices.Sorted(maps.Keys(uses[mode])) {
					ids := uses[mode][purpose]
					if len(ids) != 1 || strings.IndexByte(mode, 0) >= 0 || strings.IndexByte(purpose, 0) >= 0 {
						continue // several grants: the general rules choose
					}
					g := grants[ids[0]]
					until := min(g.ValidUntil, sys.AssessmentValidUntil)
					if g.ValidFrom >= until {
						continue
					}
					used := ast.ObjectTerm(
						b.kv("grant_id", b.str(g.ID)),
						b.kv("row_scope", b.rowScope(g.RowScope)),
						b.kv("r", ast.ObjectTerm([2]*ast.Term{b.reason(g.Reason), ast.InternedTerm(true)})),
					)
					key := consumer + "\x00" + ref + "\x00" + mode + "\x00" + purpose
					fast.Insert(ast.StringTerm(key), ast.ObjectTerm(
						b.kv("from", int64Term(g.ValidFrom)),
						b.kv("until", int64Term(until)),
						b.kv("view", b.compiledViewMap(g.View)),
						b.kv("fallback", fb),
						b.kv("use", ast.ObjectTerm([2]*ast.Term{ast.InternedTerm(true), used}, [2]*ast.Term{ast.InternedTerm(false), unused})),
					))
				}
			}
		}
	}
	return ast.NewTerm(fast)
}

func (b *astBuilder) compiledViewMap(m map[string]FieldView) *ast.Term {
	o := ast.NewObject()
	for _, p := range slices.Sorted(maps.Keys(m)) {
		o.Insert(b.str(p), b.compiledView(m[p]))
	}
	return ast.NewTerm(o)
}

// compiledView is a FieldView in the index's mergeable form, shared with
// every identical one before.
func (b *astBuilder) compiledView(v FieldView) *ast.Term {
	k := "c\x01" + b.viewKey(v)
	if t, ok := b.views[k]; ok {
		return t
	}
	f := ast.NewObject()
	for _, p := range v.Fields {
		f.Insert(b.str(p), ast.InternedTerm(true))
	}
	r := ast.NewObject()
	if v.Reason != nil {
		r.Insert(b.reason(*v.Reason), ast.InternedTerm(true))
	}
	pairs := [][2]*ast.Term{b.kv("f", ast.NewTerm(f)), b.kv("m", b.masks(v.Masks)), b.kv("r", ast.NewTerm(r))}
	if v.Grant {
		pairs = append(pairs, b.kv("g", ast.InternedTerm(true)))
	}
	t := ast.ObjectTerm(pairs...)
	b.views[k] = t
	return t
}
