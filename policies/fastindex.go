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
//	fast.entries["<consumer id>\x00<dataset ref>\x00<mode>\x00<purpose>"]
//	    [from, until, view, fallback, use]
//	fast.answers[<answer id>]             an answer of PolicyData.Views, compiled
//
// One flat key costs the rule one concat and one lookup, where nested keys
// cost a lookup each; an entry is an array, not an object, because there are
// as many entries as grants times modes and an array is a fraction of an
// object's memory (the parts of one grant's entries are shared). No component of an indexed key holds a NUL, so a key
// names exactly one (consumer, dataset, mode, purpose).
//
// An entry exists only where the answer up to the time check is already
// known: the consumer is registered, not revoked, assessed at or above the
// dataset's level, and exactly one active grant of it on the dataset names
// both the mode and the purpose. from and until bound the exchange times at
// which that grant is usable and the assessment current. view and fallback
// are the grant's view and the dataset's fallback for the mode (the same
// terms as in the data: by path, an answer id). fast.answers holds each
// answer in a form the rule merges with one object.union_n: {"f": {path:
// true}, "m": {path: mask}, "r": {reason: true}, "g": true when a grant
// allowed the paths}. use[g]
// gives grant_id, row_scope and the grant's own reason ("r") for when a
// grant allowed something (true) or not (false).
//
// The decision rule tries this index first and falls back to the general
// rules whenever an entry is missing; without the index (plain OPA and the
// Rego tests) the general rules decide alone.
const FastIndex = "fast"

// fastIndex builds data.lienthong.fast from pd; doc is pd's document
// (astDocument), whose grants' views and datasets' fallbacks the entries
// share rather than copy.
func (b *astBuilder) fastIndex(pd *PolicyData, doc ast.Object) *ast.Term {
	get := func(o *ast.Term, keys ...string) *ast.Term {
		for _, k := range keys {
			if o == nil {
				return nil
			}
			obj, ok := o.Value.(ast.Object)
			if !ok {
				return nil
			}
			o = obj.Get(ast.StringTerm(k))
		}
		return o
	}
	root := ast.NewTerm(doc)
	answers := ast.NewObject()
	for _, id := range slices.Sorted(maps.Keys(pd.Views)) {
		answers.Insert(b.str(id), b.compiledView(pd.Views[id]))
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
			// parts are what a grant's entries share, whatever the mode.
			type grantParts struct{ from, until, use *ast.Term }
			parts := map[string]grantParts{}
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
				fb := get(root, "datasets", ref, "fallback", "other")
				if mode == "query" {
					fb = get(root, "datasets", ref, "fallback", "query")
				}
				for _, purpose := range slices.Sorted(maps.Keys(uses[mode])) {
					ids := uses[mode][purpose]
					if len(ids) != 1 || strings.IndexByte(mode, 0) >= 0 || strings.IndexByte(purpose, 0) >= 0 {
						continue // several grants: the general rules choose
					}
					g := grants[ids[0]]
					until := min(g.ValidUntil, sys.AssessmentValidUntil)
					view := get(root, "grants", consumer, ref, g.ID, "view")
					if g.ValidFrom >= until || view == nil || fb == nil {
						continue
					}
					gp, ok := parts[g.ID]
					if !ok {
						// The grant's reason and row scope terms are the data's own.
						gt := get(root, "grants", consumer, ref, g.ID)
						used := ast.ObjectTerm(
							b.kv("grant_id", b.str(g.ID)),
							b.kv("row_scope", get(gt, "row_scope")),
							b.kv("r", ast.ObjectTerm([2]*ast.Term{get(gt, "reason"), ast.InternedTerm(true)})),
						)
						gp = grantParts{
							from:  int64Term(g.ValidFrom),
							until: int64Term(until),
							use:   ast.ObjectTerm([2]*ast.Term{ast.InternedTerm(true), used}, [2]*ast.Term{ast.InternedTerm(false), unused}),
						}
						parts[g.ID] = gp
					}
					key := consumer + "\x00" + ref + "\x00" + mode + "\x00" + purpose
					fast.Insert(ast.StringTerm(key), ast.ArrayTerm(gp.from, gp.until, view, fb, gp.use))
				}
			}
		}
	}
	return ast.ObjectTerm(b.kv("entries", ast.NewTerm(fast)), b.kv("answers", ast.NewTerm(answers)))
}

// compiledView is a FieldView in the index's mergeable form, shared with
// every identical one before.
func (b *astBuilder) compiledView(v FieldView) *ast.Term {
	k := "c\x01" + viewKey(&b.key, v)
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
