package policies

import (
	"context"
	"math/rand/v2"
	"testing"
	"time"

	"github.com/open-policy-agent/opa/v1/ast"
	"github.com/open-policy-agent/opa/v1/rego"
	"github.com/open-policy-agent/opa/v1/storage/inmem"

	"github.com/lienthong/lienthong/catalog"
)

// TestFastPathAgreesWithGeneralRules compares decision (fast path first) and
// general_decision on thousands of random exchanges over the fixture and a
// synthetic federation: the fast path must be an optimisation only.
func TestFastPathAgreesWithGeneralRules(t *testing.T) {
	now := time.Date(2026, 3, 1, 0, 0, 0, 0, time.UTC)
	rng := rand.New(rand.NewPCG(7, 7))
	type world struct {
		snap   *Snapshot
		inputs []Input
	}
	fixture := fixtureSnapshot(t, "r1", fixtureGrants(), nil)
	var fixtureInputs []Input
	paths := []string{"fullName", "dateOfBirth", "personalId", "ethnicity", "religion", "permanentResidence",
		"permanentResidence.provinceCode", "permanentResidence.street", "nationality", "administrativeUnit",
		"administrativeUnit.code", "health", "health.insuranceNo", "health.diagnosis", "shoeSize"}
	consumers := []string{bhxh, portal, lowSys, cutSys, newSys, lapsing, noGrant}
	purposes := []string{purposeA, "2.000001", "2.000002", "2.000004", "3.000001", ""}
	modes := []catalog.Mode{catalog.ModeQuery, catalog.ModeVerify, catalog.ModeFeed}
	for range 3000 {
		in := Input{
			Consumer: Consumer{ID: consumers[rng.IntN(len(consumers))]},
			Provider: provider, Dataset: []string{popCode, hhCode}[rng.IntN(2)],
			Mode: modes[rng.IntN(len(modes))], Purpose: purposes[rng.IntN(len(purposes))],
			Time: t0.Add(time.Duration(rng.IntN(20)-10) * day),
		}
		for range rng.IntN(5) {
			in.Fields = append(in.Fields, paths[rng.IntN(len(paths))])
		}
		if rng.IntN(10) == 0 {
			in.Consumer.Level = 1 + rng.IntN(4)
		}
		fixtureInputs = append(fixtureInputs, in)
	}
	bw := newBenchWorld(t, 2000, now)
	worlds := []world{{fixture, fixtureInputs}, {bw.snap, bw.inputs}}

	for _, w := range worlds {
		store := inmem.NewFromASTObject(ast.NewObject([2]*ast.Term{ast.StringTerm(Root), ast.NewTerm(storeDocument(w.snap.Data))}))
		prepare := func(q string) rego.PreparedEvalQuery {
			pq, err := rego.New(rego.Query(q), rego.Store(store), rego.GenerateJSON(rawTerm),
				rego.Module("exchange.rego", string(baseModules["exchange.rego"]))).PrepareForEval(context.Background())
			if err != nil {
				t.Fatal(err)
			}
			return pq
		}
		fast, general := prepare("data.lienthong.exchange.decision"), prepare("data.lienthong.exchange.general_decision")
		// decision with the general rules switched off: defined only where
		// the fast path answered.
		fastOnly := prepare(`x := data.lienthong.exchange.decision with data.lienthong.exchange.general_decision as "general"; x != "general"`)
		hits := 0
		for _, in := range w.inputs {
			input := inputValue(&in, normalizeFields(in.Fields), in.Time.UnixNano())
			if rs, err := fastOnly.Eval(context.Background(), rego.EvalParsedInput(input)); err != nil {
				t.Fatal(err)
			} else if len(rs) == 1 {
				hits++
			}
		}
		// The comparison below means something only if the fast path
		// answers a good share of the exchanges (most of the synthetic
		// ones, some of the fixture's).
		if hits < len(w.inputs)/100 {
			t.Fatalf("the fast path answered only %d of %d exchanges", hits, len(w.inputs))
		}
		t.Logf("fast path answered %d of %d exchanges", hits, len(w.inputs))
		for _, in := range w.inputs {
			input := inputValue(&in, normalizeFields(in.Fields), in.Time.UnixNano())
			a, errA := fast.Eval(context.Background(), rego.EvalParsedInput(input))
			b, errB := general.Eval(context.Background(), rego.EvalParsedInput(input))
			if errA != nil || errB != nil || len(a) != 1 || len(b) != 1 {
				t.Fatalf("%+v: %v %v", in, errA, errB)
			}
			ta, tb := a[0].Expressions[0].Value.(*ast.Term), b[0].Expressions[0].Value.(*ast.Term)
			if !ta.Equal(tb) {
				t.Fatalf("%+v:\nfast    %v\ngeneral %v", in, ta, tb)
			}
		}
	}
}
