package policies

import (
	"context"
	"encoding/json"
	"fmt"
	"math/rand/v2"
	"os"
	"runtime"
	"slices"
	"testing"
	"time"

	"github.com/open-policy-agent/opa/v1/ast"
	"github.com/open-policy-agent/opa/v1/rego"
	"github.com/open-policy-agent/opa/v1/storage/inmem"

	"github.com/lienthong/lienthong/catalog"
)

// benchWorld is a synthetic federation: 90 members, 220 systems, three
// datasets of about 30 fields per system, and n active grants spread over
// every consumer and dataset (about 10% of consumer/dataset pairs hold a
// second grant for another purpose).
type benchWorld struct {
	snap   *Snapshot
	inputs []Input
}

var benchFieldTemplate = func() []catalog.Field {
	f := func(p string, c catalog.Classification) catalog.Field {
		return catalog.Field{Path: p, Type: "string", Classification: c}
	}
	obj := func(p string, c catalog.Classification) catalog.Field {
		return catalog.Field{Path: p, Type: "object", Classification: c}
	}
	fs := []catalog.Field{
		f("personalId", catalog.Personal), f("fullName", catalog.Personal), f("dateOfBirth", catalog.Personal),
		f("sex", catalog.Personal), f("homeTown", catalog.Personal),
		f("ethnicity", catalog.Sensitive), f("religion", catalog.Sensitive),
		{Path: "nationality", Type: "string", Classification: catalog.Public, DefaultShared: true},
		f("relationToHead", catalog.Personal), f("maritalStatus", catalog.Personal),
		f("idIssueDate", catalog.Personal), f("idIssuePlace", catalog.Personal), f("dateOfDeath", catalog.Personal),
		obj("placeOfBirth", catalog.Personal), f("placeOfBirth.provinceCode", catalog.Internal), f("placeOfBirth.wardCode", catalog.Internal),
	}
	for _, r := range []string{"permanentResidence", "temporaryResidence", "currentResidence"} {
		fs = append(fs, obj(r, catalog.Personal), f(r+".provinceCode", catalog.Internal), f(r+".wardCode", catalog.Internal), f(r+".street", catalog.Personal))
	}
	for _, p := range []string{"father", "mother", "spouse", "householdHead"} {
		fs = append(fs, obj(p, catalog.Personal), f(p+".fullName", catalog.Personal), f(p+".personalId", catalog.Personal))
	}
	return fs
}()

func benchSystemID(i int) string {
	member := i % 90
	return fmt.Sprintf("VN:GOV:000.00.%02d.G%02d:SYS%03d", member, (member*7)%100, i)
}

func newBenchWorld(tb testing.TB, grantCount int, now time.Time) *benchWorld {
	tb.Helper()
	const nSystems, perSystem = 220, 3
	rng := rand.New(rand.NewPCG(1, uint64(grantCount)))
	systems := make([]catalog.System, nSystems)
	for i := range systems {
		systems[i] = catalog.System{ID: benchSystemID(i), Name: "system", SecurityLevel: 3,
			Assessment: &catalog.Assessment{Level: 3, AssessedBy: "A05", Reference: "QD", ValidUntil: now.Add(365 * day)}}
	}
	datasets := make([]catalog.Dataset, 0, nSystems*perSystem)
	for i := range nSystems {
		for k := range perSystem {
			datasets = append(datasets, catalog.Dataset{System: systems[i].ID, Code: fmt.Sprintf("dataset-%d", k), Version: 1,
				MinConsumerLevel: 3, Fields: benchFieldTemplate})
		}
	}
	// Leaves and objects a grant may name (not the sensitive ones, to keep
	// most answers allowing).
	grantable := []string{}
	for _, f := range benchFieldTemplate {
		if f.Classification != catalog.Sensitive {
			grantable = append(grantable, f.Path)
		}
	}
	pairs := nSystems * len(datasets)
	grants := make([]catalog.Grant, 0, grantCount)
	for i := range grantCount {
		base := i
		if i%10 == 9 {
			base = i - 1 // a second grant on the same pair
		}
		pair := (base * 7919) % pairs
		consumer, ds := systems[pair%nSystems], datasets[pair/nSystems]
		nf := 3 + rng.IntN(6)
		fields := make([]catalog.GrantedField, 0, nf)
		for _, j := range rng.Perm(len(grantable))[:nf] {
			m := catalog.MaskNone
			if rng.IntN(5) == 0 {
				m = catalog.MaskHash
			}
			fields = append(fields, catalog.GrantedField{Path: grantable[j], Mask: m})
		}
		g := catalog.Grant{
			ID: fmt.Sprintf("grant-%06d", i), Consumer: consumer.ID, Provider: ds.System, Dataset: ds.Code,
			Fields:     fields,
			Purposes:   []catalog.Purpose{{Code: fmt.Sprintf("1.%06d", i%10)}},
			LegalBasis: catalog.LegalBasis{Reference: "Decree 47/2020/ND-CP"},
			Modes:      []catalog.Mode{catalog.ModeQuery, catalog.ModeVerify},
			ValidFrom:  now.Add(-30 * day), ValidUntil: now.Add(335 * day),
			State: catalog.GrantActive,
		}
		if i%4 == 0 {
			g.RowScope = &catalog.RowScope{Field: "permanentResidence.provinceCode", Values: []string{"01", "79"}}
		}
		grants = append(grants, g)
	}
	snap, err := BuildData(systems, datasets, grants, nil)
	if err != nil {
		tb.Fatal(err)
	}
	snap.Revision = fmt.Sprintf("bench-%d", grantCount)
	snap.IssuedAt = now

	// Exchanges a gateway would see: a consumer asks for two or three fields
	// it holds plus, one time in four, one it does not.
	inputs := make([]Input, 0, 1000)
	for range 1000 {
		g := grants[rng.IntN(len(grants))]
		asked := []string{}
		for _, f := range g.Fields[:min(len(g.Fields), 2+rng.IntN(2))] {
			asked = append(asked, f.Path)
		}
		if rng.IntN(4) == 0 {
			asked = append(asked, "religion")
		}
		inputs = append(inputs, Input{Consumer: Consumer{ID: g.Consumer}, Provider: g.Provider, Dataset: g.Dataset,
			Fields: asked, Mode: catalog.ModeQuery, Purpose: g.Purposes[0].Code, Time: now})
	}
	return &benchWorld{snap: snap, inputs: inputs}
}

// sample runs Decide over count inputs starting at offset and appends the
// latencies; it fails the test if the synthetic exchanges are mostly denied
// (the data would then be wrong, and the figures meaningless).
func sample(tb testing.TB, e *Engine, inputs []Input, offset, count int, lat []time.Duration) []time.Duration {
	tb.Helper()
	ctx := context.Background()
	allowed := 0
	for i := range count {
		in := inputs[(offset+i)%len(inputs)]
		start := time.Now()
		d, err := e.Decide(ctx, in)
		lat = append(lat, time.Since(start))
		if err != nil {
			tb.Fatal(err)
		}
		if d.Allow {
			allowed++
		}
	}
	if allowed < count*9/10 {
		tb.Fatalf("only %d of %d synthetic exchanges allowed: the bench data is wrong", allowed, count)
	}
	return lat
}

func pct(lat []time.Duration, p float64) float64 {
	i := min(int(float64(len(lat))*p), len(lat)-1)
	return float64(lat[i].Nanoseconds()) / 1e3
}

// TestBenchDecisionLatency measures decision latency at 100, 10,000 and
// 100,000 active grants with the decision cache disabled, so every call
// evaluates the prepared query (make bench). The three sizes are measured in
// interleaved rounds of 1,000 decisions, up to 20,000 each or a minute in
// all, so the noise of a shared machine falls on all of them alike and the
// p99 ratio is fair. It asserts nothing about time.
func TestBenchDecisionLatency(t *testing.T) {
	if os.Getenv("LIENTHONG_BENCH") != "1" {
		t.Skip("set LIENTHONG_BENCH=1 to run the policy latency benchmark")
	}
	now := time.Date(2026, 3, 1, 0, 0, 0, 0, time.UTC)
	ctx := context.Background()
	sizes := []int{100, 10_000, 100_000}
	engines := map[int]*Engine{}
	inputs := map[int][]Input{}
	var cached *Engine
	var floor rego.PreparedEvalQuery
	var dataMB float64
	for _, n := range sizes {
		start := time.Now()
		w := newBenchWorld(t, n, now)
		built := time.Since(start)
		e := NewEngine(WithCacheSize(0))
		start = time.Now()
		if err := e.Load(ctx, w.snap); err != nil {
			t.Fatal(err)
		}
		t.Logf("%d grants: data built in %s, loaded in %s", n, built.Round(time.Millisecond), time.Since(start).Round(time.Millisecond))
		engines[n], inputs[n] = e, w.inputs
		if n == 100 {
			// OPA's floor: the query "true", prepared and evaluated as the
			// engine does, on the same store.
			store := inmem.NewFromASTObject(ast.NewObject([2]*ast.Term{ast.StringTerm(Root), ast.NewTerm(storeDocument(w.snap.Data))}))
			var err error
			if floor, err = rego.New(rego.Query("true"), rego.Store(store)).PrepareForEval(ctx); err != nil {
				t.Fatal(err)
			}
		}
		if n == 100_000 {
			bs, err := json.Marshal(w.snap.Data)
			if err != nil {
				t.Fatal(err)
			}
			dataMB = float64(len(bs)) / 1e6
			cached = NewEngine(WithCacheSize(10_000))
			if err := cached.Load(ctx, w.snap); err != nil {
				t.Fatal(err)
			}
		}
	}
	runtime.GC()

	const perRound, maxPerSize = 1_000, 20_000
	lat := map[int][]time.Duration{}
	var empty []time.Duration
	floorInput := inputValue(&inputs[100][0], inputs[100][0].Fields, now.UnixNano())
	for _, n := range sizes { // warm-up
		sample(t, engines[n], inputs[n], 0, perRound, nil)
	}
	deadline := time.Now().Add(time.Minute)
	for round := 0; round*perRound < maxPerSize && time.Now().Before(deadline); round++ {
		for _, n := range sizes {
			lat[n] = sample(t, engines[n], inputs[n], round*perRound, perRound, lat[n])
		}
		for range perRound {
			start := time.Now()
			if _, err := eval(ctx, floor, floorInput); err != nil {
				t.Fatal(err)
			}
			empty = append(empty, time.Since(start))
		}
	}
	slices.Sort(empty)
	fmt.Printf("BENCH policy empty_query_p50 %.1f us\n", pct(empty, 0.50))
	for _, n := range sizes {
		slices.Sort(lat[n])
		fmt.Printf("BENCH policy decision_p50_%d %.1f us\n", n, pct(lat[n], 0.50))
		fmt.Printf("BENCH policy decision_p99_%d %.1f us\n", n, pct(lat[n], 0.99))
		t.Logf("%d grants: %d uncached decisions", n, len(lat[n]))
	}

	// The cache, warm: every input decided once before measuring.
	in100k := inputs[100_000]
	sample(t, cached, in100k, 0, len(in100k), nil)
	cl := sample(t, cached, in100k, 0, maxPerSize, nil)
	slices.Sort(cl)
	fmt.Printf("BENCH policy decision_cached_p50_100000 %.2f us\n", pct(cl, 0.50))
	fmt.Printf("BENCH policy decision_cached_p99_100000 %.2f us\n", pct(cl, 0.99))
	fmt.Printf("BENCH policy p99_ratio_100000_over_100 %.2f x\n", pct(lat[100_000], 0.99)/pct(lat[100], 0.99))
	fmt.Printf("BENCH policy data_json_mb_100000 %.1f MB\n", dataMB)
}

// BenchmarkDecide measures one uncached decision with 10,000 grants.
func BenchmarkDecide(b *testing.B) {
	benchDecide(b, 10_000, 0)
}

// BenchmarkDecideCached measures a decision served by the cache.
func BenchmarkDecideCached(b *testing.B) {
	benchDecide(b, 10_000, 10_000)
}

func benchDecide(b *testing.B, grants, cacheSize int) {
	now := time.Date(2026, 3, 1, 0, 0, 0, 0, time.UTC)
	w := newBenchWorld(b, grants, now)
	e := NewEngine(WithCacheSize(cacheSize))
	if err := e.Load(context.Background(), w.snap); err != nil {
		b.Fatal(err)
	}
	ctx := context.Background()
	for _, in := range w.inputs { // fills the cache when there is one
		if _, err := e.Decide(ctx, in); err != nil {
			b.Fatal(err)
		}
	}
	b.ReportAllocs()
	for i := 0; b.Loop(); i++ {
		if _, err := e.Decide(ctx, w.inputs[i%len(w.inputs)]); err != nil {
			b.Fatal(err)
		}
	}
}
