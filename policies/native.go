package policies

import (
	"encoding/binary"
	"maps"
	"slices"
	"strconv"
	"strings"

	"github.com/lienthong/lienthong/catalog"
)

// nativeTable decides the common case of an exchange in Go, from a table the
// engine compiles out of the same policy data the Rego reads, when it loads a
// revision. The Rego (rego/exchange.rego) decides everything else and is the
// reference: for every input the table answers, the answer is the one the
// Rego gives, byte for byte (TestNativeAgreesWithRego and
// FuzzNativeAgreesWithRego hold the two equal).
//
// The common case is: the input names the consumer by its id only (no
// member, level, assessment expiry or revocation from the gateway), asks for
// an explicit list of fields, and exactly one active grant of the consumer on
// the dataset names the mode and the purpose. Whether the consumer is
// connected at the dataset's level, which grant applies and what each path
// of the dataset means with and without it are all known before any input
// arrives: BuildData worked out each path's answer (PolicyData.Views), and
// the table only says which grant and which answers apply. A decision is
// then a few map lookups, two time comparisons and a merge of the asked
// paths' answers.
//
// An entry exists for (consumer, dataset, mode, purpose) only when the
// consumer is registered, not revoked, assessed (level and expiry set) at or
// above the dataset's level, the mode is one the rules know, the purpose is
// not empty, exactly one active grant names both, its period ends after it
// starts, and the dataset has a fallback for the mode. The grant is usable
// at t when from <= t < until, until being the grant's end cut at the
// assessment's expiry: inside that window the Rego's gate passes and the
// grant is the one usable grant. The table gives up (and the Rego decides)
// for anything else: an unknown path, a path without an answer, nothing
// allowed (the Rego explains the denial), masks that disagree.
//
// Everything in the table is built once and never changed, so concurrent
// decisions share it freely. Strings are the data's own; answers are indexed
// by small integers, and a grant's view is a dense array of answer indices
// by path, in one pool, shared by every grant with the same view on a
// dataset of the same shape. The entries map and the pool hold no pointers,
// so the garbage collector does not scan them, however many grants there
// are; an entry carries what decides whether it applies (the window and the
// view), so a decision reads few places in memory.
type nativeTable struct {
	consumers map[string]uint32
	// refs gives each dataset ref its index in datasets.
	refs     map[string]uint32
	purposes map[string]uint32
	entries  map[nativeKey]nativeEntry
	datasets []nativeDataset
	grants   []nativeGrant
	// answers are PolicyData.Views' answers; index 0 means "no answer".
	answers []nativeAnswer
	// pool holds the answer arrays of views and fallbacks: by a dataset's
	// path number, an index in answers.
	pool []uint32
}

// nativeEntry is the one grant usable for a (consumer, dataset, mode,
// purpose), from from until until.
type nativeEntry struct {
	from, until int64
	// view is the offset in pool of the grant's answers by path number (an
	// answer 0: the grant says nothing about the path).
	view uint32
	// grant is the index in grants.
	grant uint32
}

type nativeKey struct {
	consumer, ref, purpose uint32
	mode                   uint8
}

// modeIndex numbers the modes the rules know (-1 otherwise).
func modeIndex(m string) int {
	switch m {
	case string(catalog.ModeQuery):
		return 0
	case string(catalog.ModeVerify):
		return 1
	case string(catalog.ModeFeed):
		return 2
	}
	return -1
}

// nativeDataset is what the table needs of a dataset.
type nativeDataset struct {
	// paths numbers every path the dataset knows (its fields and the paths
	// of its fallbacks), in sorted order.
	paths map[string]uint32
	// fallback is the offset in pool of the answers when the grant says
	// nothing about a path: [0] in query mode, [1] in verify and feed
	// (hasFallback is false when the data has none; the table then has no
	// entry for those modes).
	fallback    [2]uint32
	hasFallback [2]bool
}

// nativeGrant is what an allowing answer takes from its grant.
type nativeGrant struct {
	// inner lists, sorted, the times strictly between from and until at
	// which a decision on the pair may change (another grant of the
	// consumer on the dataset starting or ending); usually none. With until
	// it gives a decision's Expires without a lookup elsewhere: the same
	// value boundaries.expiresAt computes.
	inner []int64
	// id is the grant's key in the data, the decision's grant_id.
	id       string
	reason   Reason
	rowScope *catalog.RowScope
}

// nativeAnswer is one FieldView, ready to merge.
type nativeAnswer struct {
	fields    []string
	masks     []nativeMask
	grant     bool
	hasReason bool
	reason    Reason
}

type nativeMask struct {
	path string
	mask catalog.Mask
}

// newNativeTable compiles pd's common cases.
func newNativeTable(pd *PolicyData) *nativeTable {
	t := &nativeTable{
		consumers: map[string]uint32{},
		refs:      map[string]uint32{},
		purposes:  map[string]uint32{},
		entries:   map[nativeKey]nativeEntry{},
		answers:   []nativeAnswer{{}},
	}
	b := nativeBuilder{t: t, pd: pd, answerOf: map[string]uint32{}, arrays: map[string]uint32{},
		shapes: map[string]map[string]uint32{}, datasetOf: map[string]int{}}
	for _, consumer := range slices.Sorted(maps.Keys(pd.Grants)) {
		sys, ok := pd.Systems[consumer]
		if !ok || sys.Revoked || sys.Level <= 0 || sys.AssessmentValidUntil <= 0 {
			continue
		}
		byRef := pd.Grants[consumer]
		for _, ref := range slices.Sorted(maps.Keys(byRef)) {
			dd, ok := pd.Datasets[ref]
			if !ok || sys.Level < dd.MinLevel {
				continue
			}
			b.pair(consumer, sys, ref, &dd, byRef[ref])
		}
	}
	return t
}

// nativeBuilder holds what compiling the table shares between grants.
type nativeBuilder struct {
	t  *nativeTable
	pd *PolicyData
	// answerOf maps a view id to its answer's index.
	answerOf map[string]uint32
	// arrays interns answer arrays (views and fallbacks) by content: their
	// offset in t.pool.
	arrays map[string]uint32
	// shapes interns path numberings by the paths they number.
	shapes map[string]map[string]uint32
	// datasetOf maps a ref to its index in t.datasets.
	datasetOf map[string]int
	buf       []byte
}

// answer is the index of the answer with view id id; 0 when the data has
// none (the Rego then finds no answer either).
func (b *nativeBuilder) answer(id string) uint32 {
	if a, ok := b.answerOf[id]; ok {
		return a
	}
	v, ok := b.pd.Views[id]
	if !ok {
		b.answerOf[id] = 0
		return 0
	}
	a := nativeAnswer{fields: slices.Clone(v.Fields), grant: v.Grant}
	for _, p := range slices.Sorted(maps.Keys(v.Masks)) {
		a.masks = append(a.masks, nativeMask{p, v.Masks[p]})
	}
	if v.Reason != nil {
		a.hasReason, a.reason = true, *v.Reason
	}
	n := uint32(len(b.t.answers))
	b.t.answers = append(b.t.answers, a)
	b.answerOf[id] = n
	return n
}

// array maps ids (a view or a fallback) onto the path numbering paths and
// returns the offset in t.pool of the array of answers, shared with every
// identical one before. Paths the numbering lacks are left out: asking for
// them is not the common case.
func (b *nativeBuilder) array(paths map[string]uint32, ids map[string]string) uint32 {
	arr := make([]uint32, len(paths))
	for p, id := range ids {
		if i, ok := paths[p]; ok {
			arr[i] = b.answer(id)
		}
	}
	b.buf = b.buf[:0]
	for _, a := range arr {
		b.buf = binary.LittleEndian.AppendUint32(b.buf, a)
	}
	if off, ok := b.arrays[string(b.buf)]; ok {
		return off
	}
	off := uint32(len(b.t.pool))
	b.t.pool = append(b.t.pool, arr...)
	b.arrays[string(b.buf)] = off
	return off
}

// dataset returns ref's index in t.datasets, building it on first use.
func (b *nativeBuilder) dataset(ref string, dd *DatasetData) int {
	if i, ok := b.datasetOf[ref]; ok {
		return i
	}
	set := map[string]bool{}
	for p := range dd.Fields {
		set[p] = true
	}
	for _, fb := range dd.Fallback {
		for p := range fb {
			set[p] = true
		}
	}
	sorted := slices.Sorted(maps.Keys(set))
	var kb strings.Builder
	for _, p := range sorted {
		kb.WriteString(strconv.Itoa(len(p)))
		kb.WriteByte(':')
		kb.WriteString(p)
	}
	key := kb.String()
	paths, ok := b.shapes[key]
	if !ok {
		paths = make(map[string]uint32, len(sorted))
		for i, p := range sorted {
			paths[p] = uint32(i)
		}
		b.shapes[key] = paths
	}
	nd := nativeDataset{paths: paths}
	for c, mode := range []string{"query", "other"} {
		if fb, ok := dd.Fallback[mode]; ok {
			nd.fallback[c], nd.hasFallback[c] = b.array(paths, fb), true
		}
	}
	i := len(b.t.datasets)
	b.t.datasets = append(b.t.datasets, nd)
	b.t.refs[ref] = uint32(i)
	b.datasetOf[ref] = i
	return i
}

// intern numbers s in m.
func intern(m map[string]uint32, s string) uint32 {
	if n, ok := m[s]; ok {
		return n
	}
	n := uint32(len(m))
	m[s] = n
	return n
}

// pair adds the entries of one consumer on one dataset.
func (b *nativeBuilder) pair(consumer string, sys SystemData, ref string, dd *DatasetData, grants map[string]GrantData) {
	type use struct {
		mode    int
		purpose string
	}
	// ids lists, per mode and purpose, the active grants naming both.
	ids := map[use][]string{}
	for _, id := range slices.Sorted(maps.Keys(grants)) {
		g := grants[id]
		if g.State != "active" {
			continue
		}
		for mode, on := range g.Modes {
			m := modeIndex(mode)
			if !on || m < 0 {
				continue
			}
			for purpose, on := range g.Purposes {
				if on && purpose != "" {
					ids[use{m, purpose}] = append(ids[use{m, purpose}], id)
				}
			}
		}
	}
	if len(ids) == 0 {
		return
	}
	di := b.dataset(ref, dd)
	ds := &b.t.datasets[di]
	// Every time at which a decision on the pair may change, as
	// boundaries.expiresAt sees them (0 stands for an input without an
	// assessment expiry).
	times := []int64{0, sys.AssessmentValidUntil}
	for _, g := range grants {
		times = append(times, g.ValidFrom, g.ValidUntil)
	}
	type built struct {
		e  nativeEntry
		ok bool
	}
	done := map[string]built{} // by grant id
	for _, u := range slices.SortedFunc(maps.Keys(ids), func(x, y use) int {
		if x.mode != y.mode {
			return x.mode - y.mode
		}
		return strings.Compare(x.purpose, y.purpose)
	}) {
		if len(ids[u]) != 1 {
			continue // several grants: the Rego chooses
		}
		class := 0
		if u.mode != 0 {
			class = 1
		}
		if !ds.hasFallback[class] {
			continue
		}
		id := ids[u][0]
		gb, seen := done[id]
		if !seen {
			g := grants[id]
			gb.e, gb.ok = b.grant(id, &g, sys, ds, times)
			done[id] = gb
		}
		if !gb.ok {
			continue
		}
		key := nativeKey{consumer: intern(b.t.consumers, consumer), ref: uint32(di), purpose: intern(b.t.purposes, u.purpose), mode: uint8(u.mode)}
		b.t.entries[key] = gb.e
	}
}

// grant adds one grant and returns its entry; ok is false when the table
// cannot use it: its period is empty once cut at the assessment's expiry, or
// its row scope is one the engine refuses (the Rego path reports the error).
func (b *nativeBuilder) grant(id string, g *GrantData, sys SystemData, ds *nativeDataset, times []int64) (e nativeEntry, ok bool) {
	until := min(g.ValidUntil, sys.AssessmentValidUntil)
	if g.ValidFrom >= until || (g.RowScope != nil && g.RowScope.Field == "") {
		return e, false
	}
	ng := nativeGrant{id: id, reason: g.Reason}
	for _, x := range times {
		if g.ValidFrom < x && x < until {
			ng.inner = append(ng.inner, x)
		}
	}
	slices.Sort(ng.inner)
	ng.inner = slices.Compact(ng.inner)
	if rs := g.RowScope; rs != nil {
		ng.rowScope = &catalog.RowScope{Field: rs.Field, Values: append(make([]string, 0, len(rs.Values)), rs.Values...)}
	}
	b.t.grants = append(b.t.grants, ng)
	return nativeEntry{from: g.ValidFrom, until: until, view: b.array(ds.paths, g.View), grant: uint32(len(b.t.grants) - 1)}, true
}

// maxNativeFields bounds the asked paths the table merges without
// allocating; longer lists still work.
const maxNativeFields = 32

// decide answers the exchange if it is the common case; ok is false when the
// Rego must decide. fields are the asked paths, normalized; ref is the
// dataset ref. The decision lacks the Revision, which the engine adds.
func (t *nativeTable) decide(in *Input, ref string, fields []string, now int64) (d Decision, ok bool) {
	c := &in.Consumer
	if t == nil || len(fields) == 0 || c.Member != "" || c.Level > 0 || !c.AssessmentValidUntil.IsZero() || c.Revoked {
		return d, false
	}
	mode := modeIndex(string(in.Mode))
	if mode < 0 {
		return d, false
	}
	ci, ok1 := t.consumers[c.ID]
	ri, ok2 := t.refs[ref]
	pi, ok3 := t.purposes[in.Purpose]
	if !ok1 || !ok2 || !ok3 {
		return d, false
	}
	e, found := t.entries[nativeKey{consumer: ci, ref: ri, purpose: pi, mode: uint8(mode)}]
	if !found || now < e.from || now >= e.until {
		return d, false
	}
	ds := &t.datasets[ri]
	n := uint32(len(ds.paths))
	view, fb := t.pool[e.view:e.view+n], t.pool[ds.fallback[min(mode, 1)]:][:n]

	var buf [maxNativeFields]uint32
	answers := buf[:0]
	nFields, nMasks, nReasons, used := 0, 0, 0, false
	for _, f := range fields {
		p, known := ds.paths[f]
		if !known {
			return d, false
		}
		a := view[p]
		if a == 0 {
			a = fb[p]
		}
		if a == 0 {
			return d, false
		}
		answers = append(answers, a)
		an := &t.answers[a]
		nFields += len(an.fields)
		nMasks += len(an.masks)
		if an.hasReason {
			nReasons++
		}
		used = used || an.grant
	}
	if nFields == 0 {
		return d, false // nothing allowed: the Rego explains why
	}
	g := &t.grants[e.grant]
	if used {
		nReasons++
	}
	d = Decision{
		Allow:   true,
		Fields:  make([]string, 0, nFields),
		Masks:   make(map[string]catalog.Mask, nMasks),
		Reasons: make([]Reason, 0, nReasons),
	}
	for _, a := range answers {
		an := &t.answers[a]
		d.Fields = append(d.Fields, an.fields...)
		for _, m := range an.masks {
			if old, dup := d.Masks[m.path]; dup && old != m.mask {
				return Decision{}, false // the Rego reports the conflict
			}
			d.Masks[m.path] = m.mask
		}
		if an.hasReason {
			d.Reasons = append(d.Reasons, an.reason)
		}
	}
	if used {
		d.Reasons = append(d.Reasons, g.reason)
		d.GrantID = g.id
		if rs := g.rowScope; rs != nil {
			d.RowScope = &catalog.RowScope{Field: rs.Field, Values: append(make([]string, 0, len(rs.Values)), rs.Values...)}
		}
	}
	// The next time the answer may change: until, or a boundary of another
	// grant on the pair before it.
	d.Expires = e.until
	for _, x := range g.inner {
		if x > now {
			d.Expires = x
			break
		}
	}
	// The Rego's fields and reasons are sets: sorted, each once.
	slices.Sort(d.Fields)
	d.Fields = slices.Compact(d.Fields)
	slices.SortFunc(d.Reasons, reasonCompare)
	d.Reasons = slices.Compact(d.Reasons)
	return d, true
}

// reasonCompare orders reasons as OPA orders them in a set, the order in
// which a decision's reasons come out of the Rego: as objects {code,
// message} or {code, field, message}, compared key by key in sorted key
// order, so after the code a reason with a field ("field" < "message")
// comes before one without.
func reasonCompare(a, b Reason) int {
	if c := strings.Compare(a.Code, b.Code); c != 0 {
		return c
	}
	switch {
	case a.Field != "" && b.Field != "":
		if c := strings.Compare(a.Field, b.Field); c != 0 {
			return c
		}
	case a.Field != "":
		return -1
	case b.Field != "":
		return 1
	}
	return strings.Compare(a.Message, b.Message)
}
