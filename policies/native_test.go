package policies

import (
	"context"
	"fmt"
	"math/rand/v2"
	"reflect"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/open-policy-agent/opa/v1/ast"

	"github.com/lienthong/lienthong/catalog"
)

// answeredNatively reports whether the native table answers in (tests and
// the benchmark use it to show the native path is really taken).
func (e *Engine) answeredNatively(in Input) bool {
	st := e.cur.Load()
	if st == nil {
		return false
	}
	now := in.Time
	if now.IsZero() {
		now = e.clock()
	}
	_, ok := st.native.decide(&in, in.Provider+"/"+in.Dataset, normalizeFields(in.Fields), now.UnixNano())
	return ok
}

// enginePair is one revision loaded twice, uncached: as the gateway uses it
// (native table first) and with the Rego deciding everything.
type enginePair struct{ native, rego *Engine }

func newEnginePair(t testing.TB, snap *Snapshot) enginePair {
	t.Helper()
	p, err := loadPair(snap)
	if err != nil {
		t.Fatalf("Load: %v", err)
	}
	return p
}

func loadPair(snap *Snapshot) (enginePair, error) {
	p := enginePair{native: NewEngine(WithCacheSize(0)), rego: NewEngine(WithCacheSize(0))}
	p.rego.regoOnly = true
	for _, e := range []*Engine{p.native, p.rego} {
		if err := e.Load(context.Background(), snap); err != nil {
			return p, err
		}
	}
	return p, nil
}

// agree decides in with both engines and fails unless the decisions are
// deep-equal (errors included); it returns the decision and whether the
// native table answered.
func (p enginePair) agree(t testing.TB, in Input) (Decision, bool) {
	t.Helper()
	ctx := context.Background()
	dr, errR := p.rego.Decide(ctx, in)
	native := p.native.answeredNatively(in)
	if !native {
		// Both engines evaluate the same Rego: nothing to compare, and
		// under the race detector every evaluation counts.
		return dr, false
	}
	dn, errN := p.native.Decide(ctx, in)
	if (errN == nil) != (errR == nil) || !reflect.DeepEqual(dn, dr) {
		t.Fatalf("%+v:\nnative %+v (%v)\nrego   %+v (%v)", in, dn, errN, dr, errR)
	}
	return dn, true
}

// fixtureDiffGrants adds to the fixture what the native table must get
// right or leave alone: several grants on a pair, grants on nested paths
// with masks at several levels, an empty row scope, feed mode, a grant that
// starts later, one without legal basis on a sensitive object.
func fixtureDiffGrants() []catalog.Grant {
	return append(fixtureGrants(),
		grant("g-bhxh-hh2", bhxh, hhCode, []catalog.GrantedField{gf("householdId", catalog.MaskPartial)}, nil),
		grant("g-bhxh-feed", bhxh, popCode, []catalog.GrantedField{
			gf("permanentResidence", catalog.MaskPartial), gf("permanentResidence.street", catalog.MaskNullify),
			gf("health", ""), gf("health.insuranceNo", catalog.MaskHash), gf("nationality", ""),
		}, func(g *catalog.Grant) {
			purpose("2.000009")(g)
			g.Modes = []catalog.Mode{catalog.ModeFeed, catalog.ModeVerify}
			g.RowScope = &catalog.RowScope{Field: "permanentResidence.provinceCode"}
		}),
		grant("g-bhxh-later", bhxh, popCode, []catalog.GrantedField{gf("fullName", catalog.MaskHash), gf("religion", "")}, func(g *catalog.Grant) {
			purpose("2.000010")(g)
			g.ValidFrom = t0.Add(2 * day)
			g.LegalBasis = catalog.LegalBasis{}
		}),
		grant("g-lapse-two", lapsing, popCode, []catalog.GrantedField{gf("dateOfBirth", "")}, purpose("2.000004")),
	)
}

// fixtureDiffInputs are random exchanges over the fixture, times around
// every boundary it has.
func fixtureDiffInputs(rng *rand.Rand, n int) []Input {
	paths := []string{"fullName", "dateOfBirth", "personalId", "ethnicity", "religion", "permanentResidence",
		"permanentResidence.provinceCode", "permanentResidence.street", "nationality", "administrativeUnit",
		"administrativeUnit.code", "health", "health.insuranceNo", "health.diagnosis", "shoeSize", "",
		"householdId", "members", "members.fullName"}
	consumers := []string{bhxh, bhxh, bhxh, portal, portal, lowSys, cutSys, newSys, lapsing, noGrant, provider}
	purposes := []string{purposeA, purposeA, "2.000001", "2.000002", "2.000004", "2.000009", "2.000010", "3.000001", ""}
	modes := []catalog.Mode{catalog.ModeQuery, catalog.ModeQuery, catalog.ModeVerify, catalog.ModeFeed, "bogus"}
	var times []time.Time
	for _, d := range []int{-10, -1, 0, 1, 2, 5, 10, 30} {
		at := t0.Add(time.Duration(d) * day)
		times = append(times, at, at.Add(-1), at.Add(time.Hour))
	}
	grants := fixtureDiffGrants()
	out := make([]Input, 0, n)
	for range n {
		in := Input{
			Consumer: Consumer{ID: consumers[rng.IntN(len(consumers))]},
			Provider: provider, Dataset: []string{popCode, popCode, hhCode, "nothing"}[rng.IntN(4)],
			Mode: modes[rng.IntN(len(modes))], Purpose: purposes[rng.IntN(len(purposes))],
			Time: times[rng.IntN(len(times))],
		}
		nf := rng.IntN(6)
		if rng.IntN(2) == 0 {
			// Half the exchanges follow a grant: its consumer, dataset,
			// purpose and mode, and mostly its fields.
			g := grants[rng.IntN(len(grants))]
			in.Consumer.ID, in.Dataset = g.Consumer, g.Dataset
			in.Purpose, in.Mode = g.Purposes[0].Code, g.Modes[rng.IntN(len(g.Modes))]
			for range 1 + rng.IntN(3) {
				in.Fields = append(in.Fields, g.Fields[rng.IntN(len(g.Fields))].Path)
			}
			nf = rng.IntN(3)
		}
		for range nf {
			in.Fields = append(in.Fields, paths[rng.IntN(len(paths))])
		}
		addConsumerDetail(rng, &in)
		out = append(out, in)
	}
	return out
}

// addConsumerDetail sometimes says more about the consumer than its id, as a
// gateway may: the native table then never answers.
func addConsumerDetail(rng *rand.Rand, in *Input) {
	switch rng.IntN(40) {
	case 0:
		in.Consumer.Level = 1 + rng.IntN(4)
	case 1:
		in.Consumer.Member = "000.00.00.G12"
	case 2:
		in.Consumer.AssessmentValidUntil = in.Time.Add(time.Duration(rng.IntN(3)-1) * time.Hour)
	case 3:
		in.Consumer.Revoked = true
	}
}

// diffWorld is a random federation built to meet every case of the rules:
// unassessed, lapsed, revoked and low-level consumers; datasets with nested
// objects, sensitive parts, default-shared objects holding a sensitive part;
// grants on the same pair for the same or other purposes, on parents and
// children with different masks, without legal basis, with empty periods,
// with and without row scopes (some with no values), revoked grants, and
// exchanges at every boundary.
func diffWorld(t testing.TB, seed uint64) (*Snapshot, []Input) {
	t.Helper()
	rng := rand.New(rand.NewPCG(seed, 99))
	now := t0
	f, obj := leafField, objectField
	template := []catalog.Field{
		f("personalId", catalog.Personal), f("fullName", catalog.Personal), f("religion", catalog.Sensitive),
		{Path: "nationality", Type: "string", Classification: catalog.Public, DefaultShared: true},
		{Path: "unit", Type: "object", Classification: catalog.Public, DefaultShared: true},
		f("unit.code", catalog.Public), f("unit.secret", catalog.Sensitive), f("unit.name", catalog.Public),
		obj("permanentResidence", catalog.Personal), f("permanentResidence.provinceCode", catalog.Internal),
		f("permanentResidence.street", catalog.Personal),
		obj("permanentResidence.geo", catalog.Personal), f("permanentResidence.geo.lat", catalog.Personal),
		f("permanentResidence.geo.lon", catalog.Sensitive),
		{Path: "members", Type: "array", Classification: catalog.Personal, Array: true},
		f("members.fullName", catalog.Personal),
	}
	paths := []string{}
	for _, fd := range template {
		paths = append(paths, fd.Path)
	}
	var systems []catalog.System
	for i := range 3 {
		systems = append(systems, system(fmt.Sprintf("VN:GOV:000.00.%02d.P01:PROV", i), 4, now.Add(365*day)))
	}
	providers := len(systems)
	for i := range 20 {
		level := []int{0, 2, 3, 3, 3, 3, 4, 4, 4, 4, 4, 4}[rng.IntN(12)]
		until := now.Add(365 * day)
		if rng.IntN(3) == 0 {
			until = now.Add(time.Duration(rng.IntN(25)-4) * day)
		}
		s := system(fmt.Sprintf("VN:GOV:000.00.%02d.C01:CONS%d", i%5, i), level, until)
		if rng.IntN(12) == 0 {
			at := now.Add(-day)
			s.RevokedAt = &at
		}
		systems = append(systems, s)
	}
	var datasets []catalog.Dataset
	for i := range providers {
		for k := range 2 {
			datasets = append(datasets, catalog.Dataset{System: systems[i].ID, Code: fmt.Sprintf("ds%d", k), Version: 1,
				MinConsumerLevel: 1 + rng.IntN(3), Fields: template})
		}
	}
	masks := []catalog.Mask{catalog.MaskNone, catalog.MaskNone, catalog.MaskHash, catalog.MaskPartial, catalog.MaskNullify}
	purposes := []string{"1.000001", "1.000002", "1.000003", " "}
	modes := []catalog.Mode{catalog.ModeQuery, catalog.ModeVerify, catalog.ModeFeed}
	var grants []catalog.Grant
	for i := range 120 {
		consumer := systems[providers+rng.IntN(len(systems)-providers)]
		ds := datasets[rng.IntN(len(datasets))]
		g := catalog.Grant{
			ID: fmt.Sprintf("g%03d", i), Consumer: consumer.ID, Provider: ds.System, Dataset: ds.Code,
			LegalBasis: catalog.LegalBasis{Reference: "Decree 47/2020/ND-CP"},
			ValidFrom:  now.Add(time.Duration(rng.IntN(25)-20) * day),
			State:      catalog.GrantActive,
		}
		g.ValidUntil = g.ValidFrom.Add(time.Duration(rng.IntN(30)) * day)
		if rng.IntN(20) == 0 {
			g.ValidUntil = time.Time{}
		}
		if rng.IntN(3) == 0 {
			g.LegalBasis = catalog.LegalBasis{}
		}
		if rng.IntN(12) == 0 {
			g.State = catalog.GrantRevoked
		}
		for range 1 + rng.IntN(6) {
			p := paths[rng.IntN(len(paths))]
			if rng.IntN(15) == 0 {
				p = "ghost"
			}
			g.Fields = append(g.Fields, gf(p, masks[rng.IntN(len(masks))]))
		}
		for _, p := range rng.Perm(len(purposes))[:1+rng.IntN(2)] {
			g.Purposes = append(g.Purposes, catalog.Purpose{Code: purposes[p]})
		}
		for _, m := range rng.Perm(len(modes))[:1+rng.IntN(3)] {
			g.Modes = append(g.Modes, modes[m])
		}
		switch rng.IntN(4) {
		case 0:
			g.RowScope = &catalog.RowScope{Field: "permanentResidence.provinceCode", Values: []string{"01", "79"}}
		case 1:
			g.RowScope = &catalog.RowScope{Field: "permanentResidence.provinceCode"}
		}
		grants = append(grants, g)
	}
	snap, err := BuildData(systems, datasets, grants, nil)
	if err != nil {
		t.Fatal(err)
	}
	snap.Revision, snap.IssuedAt = fmt.Sprintf("diff-%d", seed), now

	askable := append(slices.Clone(paths), "ghost", "shoeSize", "unit.code.x", "")
	var inputs []Input
	for range 3000 {
		g := grants[rng.IntN(len(grants))]
		in := Input{Consumer: Consumer{ID: g.Consumer}, Provider: g.Provider, Dataset: g.Dataset,
			Mode: g.Modes[rng.IntN(len(g.Modes))], Purpose: g.Purposes[rng.IntN(len(g.Purposes))].Code}
		if rng.IntN(6) == 0 {
			in.Consumer.ID = systems[rng.IntN(len(systems))].ID
		}
		if rng.IntN(6) == 0 {
			in.Mode = modes[rng.IntN(len(modes))]
		}
		if rng.IntN(8) == 0 {
			in.Purpose = purposes[rng.IntN(len(purposes))]
		}
		// The exchange's time: a boundary of the grant or of the
		// consumer's assessment, just before it, or now.
		var until time.Time
		for _, s := range systems {
			if s.ID == in.Consumer.ID && s.Assessment != nil {
				until = s.Assessment.ValidUntil
			}
		}
		mid := g.ValidFrom.Add(g.ValidUntil.Sub(g.ValidFrom) / 2)
		edges := []time.Time{now, g.ValidFrom, g.ValidFrom.Add(-1), g.ValidUntil, g.ValidUntil.Add(-1),
			until, until.Add(-1), mid, mid, mid, mid}
		in.Time = edges[rng.IntN(len(edges))]
		if in.Time.Year() < 2000 {
			in.Time = now
		}
		n := 1 + rng.IntN(5)
		if rng.IntN(25) == 0 {
			n = 0 // everything the consumer may have
		}
		for range n {
			if rng.IntN(3) > 0 {
				in.Fields = append(in.Fields, g.Fields[rng.IntN(len(g.Fields))].Path)
			} else {
				in.Fields = append(in.Fields, askable[rng.IntN(len(askable))])
			}
		}
		addConsumerDetail(rng, &in)
		inputs = append(inputs, in)
	}
	return snap, inputs
}

// TestNativeAgreesWithRego is the differential test of the native table: on
// the fixture, on random federations built to meet every rule, and on the
// benchmark's federation with its exchanges moved to the grants' edges and
// to other modes, every decision of the engine as the gateway uses it must
// be deep-equal to the decision the Rego alone gives. The native table must
// also answer a good share, so the comparison cannot pass by never using it.
func TestNativeAgreesWithRego(t *testing.T) {
	rng := rand.New(rand.NewPCG(7, 7))
	type world struct {
		name     string
		snap     *Snapshot
		inputs   []Input
		minShare float64
	}
	fixtureInputs := fixtureDiffInputs(rng, 3000)
	worlds := []world{
		{"fixture", fixtureSnapshot(t, "r1", fixtureDiffGrants(), nil), fixtureInputs, 0.05},
		// The provider's module narrows a native answer as it narrows the
		// Rego's.
		{"fixture with agency module", fixtureSnapshot(t, "r1", fixtureDiffGrants(), map[string][]byte{provider: []byte(narrowing)}), fixtureInputs[:1000], 0.05},
	}
	for seed := range uint64(3) {
		snap, inputs := diffWorld(t, seed)
		worlds = append(worlds, world{fmt.Sprintf("random-%d", seed), snap, inputs, 0.05})
	}
	now := time.Date(2026, 3, 1, 0, 0, 0, 0, time.UTC)
	bw := newBenchWorld(t, 2000, now)
	inputs := slices.Clone(bw.inputs)
	for i, in := range bw.inputs {
		// The bench grants run from now-30d to now+335d; the assessments
		// end at now+365d.
		edges := []time.Time{now.Add(-30 * day), now.Add(-30*day - 1), now.Add(335*day - 1), now.Add(335 * day)}
		in.Time = edges[i%len(edges)]
		if i%3 == 0 {
			in.Mode = []catalog.Mode{catalog.ModeVerify, catalog.ModeFeed}[i%2]
		}
		inputs = append(inputs, in)
	}
	worlds = append(worlds, world{"bench", bw.snap, inputs, 0.50})

	// What the native answers held: each must occur, or the comparison
	// missed a part of the merge.
	seen := map[string]int{}
	for _, w := range worlds {
		t.Run(w.name, func(t *testing.T) {
			p := newEnginePair(t, w.snap)
			answered, allowed := 0, 0
			for _, in := range w.inputs {
				d, native := p.agree(t, in)
				if d.Allow {
					allowed++
				}
				if !native {
					continue
				}
				answered++
				seen["mode "+string(in.Mode)]++
				if len(d.Masks) > 0 {
					seen["masks"]++
				}
				if d.RowScope != nil {
					seen["row scope"]++
					if len(d.RowScope.Values) == 0 {
						seen["row scope without values"]++
					}
				}
				if d.GrantID == "" {
					seen["no grant used"]++
				}
				if len(d.Reasons) > 2 {
					seen["three reasons or more"]++
				}
				for _, r := range d.Reasons {
					seen[r.Code]++
				}
			}
			t.Logf("native table answered %d of %d exchanges (%d allowed)", answered, len(w.inputs), allowed)
			if float64(answered) < w.minShare*float64(len(w.inputs)) {
				t.Fatalf("the native table answered only %d of %d exchanges", answered, len(w.inputs))
			}
		})
	}
	t.Logf("native answers held: %v", seen)
	for _, k := range []string{"mode query", "mode verify", "mode feed", "masks", "row scope", "row scope without values", "no grant used", "three reasons or more",
		"granted", "default_shared", "field_narrowed", "field_not_granted", "sensitive_without_legal_basis"} {
		if seen[k] == 0 {
			t.Errorf("no native answer held %s", k)
		}
	}
}

// TestNativeTableEntries checks which exchanges the native table answers:
// only a connected consumer named by its id, with exactly one active grant
// naming the mode and purpose, inside the grant's period and the assessment,
// asking for paths the dataset has of which at least one is allowed.
func TestNativeTableEntries(t *testing.T) {
	grants := append(fixtureGrants(),
		// A second grant of BHXH on the household for the same purpose:
		// the Rego chooses.
		grant("g-bhxh-hh2", bhxh, hhCode, []catalog.GrantedField{gf("householdId", "")}, nil),
		grant("g-low", lowSys, popCode, []catalog.GrantedField{gf("fullName", "")}, nil),
	)
	e := loadedEngine(t, fixtureSnapshot(t, "r1", grants, nil), WithCacheSize(0))
	for _, c := range []struct {
		name string
		in   Input
		want bool
	}{
		{"one grant, query", ask(nil), true},
		{"one grant, verify", ask(func(in *Input) { in.Mode = catalog.ModeVerify }), true},
		{"default-shared only", ask(fields("nationality")), true},
		{"sensitive without legal basis, and a granted field", ask(func(in *Input) {
			in.Consumer.ID, in.Fields = portal, []string{"ethnicity", "fullName"}
		}), true},
		{"mode not granted", ask(func(in *Input) { in.Mode = catalog.ModeFeed }), false},
		{"two grants", ask(func(in *Input) { in.Dataset, in.Fields = hhCode, []string{"householdId"} }), false},
		{"level too low", ask(func(in *Input) { in.Consumer.ID = lowSys }), false},
		{"revoked system and grant", ask(func(in *Input) { in.Consumer.ID = cutSys }), false},
		{"unknown field", ask(fields("fullName", "shoeSize")), false},
		{"nothing allowed", ask(fields("ethnicity")), false},
		{"everything asked", ask(fields()), false},
		{"the gateway says more", ask(func(in *Input) { in.Consumer.Level = 3 }), false},
		{"no purpose", ask(func(in *Input) { in.Purpose = "" }), false},
		{"grant not valid yet", ask(func(in *Input) { in.Consumer.ID, in.Purpose = portal, "2.000002" }), false},
		{"grant valid from now", ask(func(in *Input) { in.Consumer.ID, in.Purpose, in.Time = portal, "2.000002", t0.Add(day) }), true},
		{"grant just expired", ask(func(in *Input) { in.Time = t0.Add(10 * day) }), false},
		{"grant about to expire", ask(func(in *Input) { in.Time = t0.Add(10*day - 1) }), true},
		// The window is the grant's period cut at the assessment's expiry.
		{"assessment about to lapse", ask(func(in *Input) { in.Consumer.ID, in.Time = lapsing, t0.Add(5*day-1) }), true},
		{"assessment lapsed", ask(func(in *Input) { in.Consumer.ID, in.Time = lapsing, t0.Add(5*day) }), false},
	} {
		if got := e.answeredNatively(c.in); got != c.want {
			t.Errorf("%s: answered natively %v, want %v", c.name, got, c.want)
		}
	}
}

// TestNativeTableShares checks that the table holds each answer array once
// per content: grants with the same view, datasets of the same shape.
func TestNativeTableShares(t *testing.T) {
	bw := newBenchWorld(t, 2000, t0)
	tab := newNativeTable(bw.snap.Data)
	shapes, fallbacks := map[uintptr]bool{}, map[[2]uint32]bool{}
	for _, ds := range tab.datasets {
		shapes[reflect.ValueOf(ds.paths).Pointer()] = true
		fallbacks[ds.fallback] = true
	}
	if len(tab.datasets) < 100 || len(shapes) != 1 || len(fallbacks) != 1 {
		t.Errorf("%d datasets of one shape hold %d path numberings and %d fallbacks, want 1", len(tab.datasets), len(shapes), len(fallbacks))
	}
	views := map[uint32]bool{}
	for _, e := range tab.entries {
		views[e.view] = true
	}
	if len(tab.grants) < 1500 || len(views) >= len(tab.grants) {
		t.Errorf("%d grants hold %d views; identical views are not shared", len(tab.grants), len(views))
	}
	if len(tab.entries) < len(tab.grants) {
		t.Errorf("%d entries for %d grants", len(tab.entries), len(tab.grants))
	}
}

// TestReasonOrderMatchesOPA holds reasonCompare to the order OPA gives the
// same reasons as objects in a set (how the Rego's reasons come out).
func TestReasonOrderMatchesOPA(t *testing.T) {
	rng := rand.New(rand.NewPCG(3, 3))
	words := []string{"", "a", "b", "ab", "field", "message", "granted", "default_shared", "field_not_granted", "z"}
	w := func() string { return words[rng.IntN(len(words))] }
	b := newASTBuilder()
	for range 2000 {
		var rs []Reason
		for range 2 + rng.IntN(6) {
			rs = append(rs, Reason{Code: w(), Field: w(), Message: w()})
		}
		set := ast.NewSet()
		for _, r := range rs {
			set.Add(b.reason(r))
		}
		var fromOPA []Reason
		set.Foreach(func(t *ast.Term) {
			o := t.Value.(ast.Object)
			fromOPA = append(fromOPA, Reason{Code: str(o, kCode), Message: str(o, kMessage), Field: str(o, kField)})
		})
		slices.SortFunc(rs, reasonCompare)
		rs = slices.Compact(rs)
		if !slices.Equal(rs, fromOPA) {
			t.Fatalf("order differs:\ngo  %q\nopa %q", rs, fromOPA)
		}
	}
}

// fuzzPair is the fixture loaded for FuzzNativeAgreesWithRego, once.
var fuzzPair = sync.OnceValues(func() (enginePair, error) {
	snap, err := BuildData(fixtureSystems(), fixtureDatasets(), fixtureDiffGrants(), nil)
	if err != nil {
		return enginePair{}, err
	}
	snap.Revision, snap.IssuedAt = "r1", t0
	return loadPair(snap)
})

// FuzzNativeAgreesWithRego compares the engine as the gateway uses it with
// the Rego alone on the fixture, for any consumer, dataset, mode, purpose,
// list of fields and time near a boundary (seeds in
// testdata/fuzz/FuzzNativeAgreesWithRego).
func FuzzNativeAgreesWithRego(f *testing.F) {
	f.Add(uint8(0), uint8(0), uint8(0), uint8(0), uint8(2), int64(0), uint8(0), "fullName,dateOfBirth")
	consumers := []string{bhxh, portal, lowSys, cutSys, newSys, lapsing, noGrant, provider}
	datasets := []string{popCode, hhCode, "nothing"}
	modes := []catalog.Mode{catalog.ModeQuery, catalog.ModeVerify, catalog.ModeFeed, "bogus"}
	purposes := []string{purposeA, "2.000001", "2.000002", "2.000004", "2.000009", "2.000010", ""}
	f.Fuzz(func(t *testing.T, consumer, dataset, mode, purpose, day8 uint8, delta int64, detail uint8, asked string) {
		p, err := fuzzPair()
		if err != nil {
			t.Fatal(err)
		}
		in := Input{
			Consumer: Consumer{ID: consumers[int(consumer)%len(consumers)]},
			Provider: provider, Dataset: datasets[int(dataset)%len(datasets)],
			Mode: modes[int(mode)%len(modes)], Purpose: purposes[int(purpose)%len(purposes)],
			// Days from t0-10 to t0+30, moved by up to a day either way.
			Time: t0.Add(time.Duration(int(day8)%41-10)*day + time.Duration(delta%int64(day))),
		}
		if asked != "" {
			in.Fields = strings.Split(asked, ",")
		}
		switch detail % 8 {
		case 1:
			in.Consumer.Level = 3
		case 2:
			in.Consumer.Revoked = true
		case 3:
			in.Consumer.Member = "000.00.00.G12"
		}
		_, _ = p.agree(t, in)
	})
}
