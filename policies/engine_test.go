package policies

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"maps"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/open-policy-agent/opa/v1/ast"
	"github.com/open-policy-agent/opa/v1/rego"
	"github.com/open-policy-agent/opa/v1/storage/inmem"

	"github.com/lienthong/lienthong/catalog"
)

type want struct {
	allow    bool
	fields   []string
	masks    map[string]catalog.Mask
	rowScope *catalog.RowScope
	grantID  string
	codes    []string // each must be among the reasons
	dropped  map[string]string
}

func check(t *testing.T, d Decision, w want) {
	t.Helper()
	if d.Allow != w.allow {
		t.Errorf("allow = %v, want %v (reasons %+v)", d.Allow, w.allow, d.Reasons)
	}
	if w.fields == nil {
		w.fields = []string{}
	}
	if !slices.Equal(d.Fields, w.fields) {
		t.Errorf("fields = %q, want %q", d.Fields, w.fields)
	}
	if w.masks == nil {
		w.masks = map[string]catalog.Mask{}
	}
	if !maps.Equal(d.Masks, w.masks) {
		t.Errorf("masks = %v, want %v", d.Masks, w.masks)
	}
	if (d.RowScope == nil) != (w.rowScope == nil) || (d.RowScope != nil && (d.RowScope.Field != w.rowScope.Field || !slices.Equal(d.RowScope.Values, w.rowScope.Values))) {
		t.Errorf("row scope = %+v, want %+v", d.RowScope, w.rowScope)
	}
	if d.GrantID != w.grantID {
		t.Errorf("grant id = %q, want %q", d.GrantID, w.grantID)
	}
	for _, c := range w.codes {
		if !d.Has(c) {
			t.Errorf("reason %s missing from %+v", c, d.Reasons)
		}
	}
	for field, code := range w.dropped {
		if !slices.ContainsFunc(d.Reasons, func(r Reason) bool { return r.Field == field && r.Code == code }) {
			t.Errorf("field %s not dropped with %s: %+v", field, code, d.Reasons)
		}
	}
	for _, r := range d.Reasons {
		if r.Code == "" || r.Message == "" {
			t.Errorf("reason without code or message: %+v", r)
		}
	}
}

func fields(fs ...string) func(*Input) { return func(in *Input) { in.Fields = fs } }

func TestDecideTable(t *testing.T) {
	scope := &catalog.RowScope{Field: "permanentResidence.provinceCode", Values: []string{"01"}}
	cases := []struct {
		name string
		in   Input
		want want
	}{
		{"deny by default: no grant", ask(func(in *Input) { in.Consumer.ID = noGrant }),
			want{codes: []string{"no_grant"}, dropped: map[string]string{"fullName": "field_not_granted"}}},
		{"allowed fields", ask(nil),
			want{allow: true, fields: []string{"dateOfBirth", "fullName"}, rowScope: scope, grantID: "g-bhxh", codes: []string{"granted"}}},
		{"masks, including a masked part of an allowed object", ask(fields("personalId", "permanentResidence")),
			want{allow: true, fields: []string{"permanentResidence", "personalId"}, rowScope: scope, grantID: "g-bhxh",
				masks: map[string]catalog.Mask{"personalId": catalog.MaskHash, "permanentResidence.street": catalog.MaskPartial}}},
		{"row scope absent on a grant without one", ask(func(in *Input) { in.Consumer.ID = portal; in.Fields = []string{"fullName"} }),
			want{allow: true, fields: []string{"fullName"}, grantID: "g-portal-nolb"}},
		{"purpose mismatch", ask(func(in *Input) { in.Purpose = "9.999999" }),
			want{codes: []string{"purpose_not_granted", "no_grant"}}},
		{"missing purpose", ask(func(in *Input) { in.Purpose = "" }),
			want{codes: []string{"purpose_missing"}}},
		{"mode mismatch", ask(func(in *Input) { in.Mode = catalog.ModeFeed }),
			want{codes: []string{"mode_not_granted"}}},
		{"verify mode granted", ask(func(in *Input) { in.Mode = catalog.ModeVerify }),
			want{allow: true, fields: []string{"dateOfBirth", "fullName"}, rowScope: scope, grantID: "g-bhxh"}},
		{"expired grant", ask(func(in *Input) { in.Consumer.ID = portal; in.Purpose = "2.000001"; in.Fields = []string{"fullName"} }),
			want{codes: []string{"grant_expired"}}},
		{"grant expires at its boundary", ask(func(in *Input) { in.Time = t0.Add(10 * day) }),
			want{codes: []string{"grant_expired"}}},
		{"not-yet-valid grant", ask(func(in *Input) { in.Consumer.ID = portal; in.Purpose = "2.000002"; in.Fields = []string{"fullName"} }),
			want{codes: []string{"grant_not_yet_valid"}}},
		{"not-yet-valid grant becomes valid", ask(func(in *Input) {
			in.Consumer.ID = portal
			in.Purpose = "2.000002"
			in.Fields = []string{"fullName"}
			in.Time = t0.Add(2 * day)
		}), want{allow: true, fields: []string{"fullName"}, grantID: "g-portal-later"}},
		{"revoked grant is not in the data", ask(func(in *Input) { in.Consumer.ID = cutSys }),
			want{codes: []string{"system_revoked"}}},
		{"level too low", ask(func(in *Input) { in.Consumer.ID = lowSys }),
			want{codes: []string{"level_too_low"}}},
		{"level lowered by the gateway", ask(func(in *Input) { in.Consumer.Level = 2 }),
			want{codes: []string{"level_too_low"}}},
		{"system revoked by the gateway", ask(func(in *Input) { in.Consumer.Revoked = true }),
			want{codes: []string{"system_revoked"}}},
		{"not assessed", ask(func(in *Input) { in.Consumer.ID = newSys }),
			want{codes: []string{"consumer_not_assessed"}}},
		{"assessment expired", ask(func(in *Input) { in.Time = t0.Add(400 * day) }),
			want{codes: []string{"assessment_expired"}}},
		{"unknown consumer", ask(func(in *Input) { in.Consumer.ID = "VN:GOV:000.00.99.Z99:X" }),
			want{codes: []string{"consumer_unknown"}}},
		{"unknown dataset", ask(func(in *Input) { in.Dataset = "land" }),
			want{codes: []string{"dataset_unknown"}}},
		{"sensitive with legal basis", ask(fields("religion")),
			want{allow: true, fields: []string{"religion"}, rowScope: scope, grantID: "g-bhxh"}},
		{"sensitive without legal basis dropped", ask(func(in *Input) { in.Consumer.ID = portal; in.Fields = []string{"fullName", "ethnicity"} }),
			want{allow: true, fields: []string{"fullName"}, grantID: "g-portal-nolb", dropped: map[string]string{"ethnicity": "sensitive_without_legal_basis"}}},
		{"only sensitive without legal basis denied", ask(func(in *Input) { in.Consumer.ID = portal; in.Fields = []string{"ethnicity", "health"} }),
			want{dropped: map[string]string{"ethnicity": "sensitive_without_legal_basis", "health": "sensitive_without_legal_basis"}}},
		{"default-shared without a grant", ask(func(in *Input) {
			in.Consumer.ID = noGrant
			in.Fields = []string{"nationality", "administrativeUnit.code", "fullName"}
		}),
			want{allow: true, fields: []string{"administrativeUnit.code", "nationality"}, codes: []string{"default_shared"},
				dropped: map[string]string{"fullName": "field_not_granted"}}},
		{"default-shared is query only", ask(func(in *Input) {
			in.Consumer.ID = noGrant
			in.Fields = []string{"nationality"}
			in.Mode = catalog.ModeVerify
		}), want{dropped: map[string]string{"nationality": "field_not_granted"}}},
		{"default-shared needs the dataset's level", ask(func(in *Input) { in.Consumer.ID = lowSys; in.Fields = []string{"nationality"} }),
			want{codes: []string{"level_too_low"}}},
		{"ancestor grant covers a leaf", ask(fields("permanentResidence.provinceCode")),
			want{allow: true, fields: []string{"permanentResidence.provinceCode"}, rowScope: scope, grantID: "g-bhxh"}},
		{"leaf grant does not cover its sibling", ask(func(in *Input) {
			in.Consumer.ID = portal
			in.Purpose = "2.000004"
			in.Fields = []string{"permanentResidence.street"}
		}), want{dropped: map[string]string{"permanentResidence.street": "field_not_granted"}}},
		{"object narrowed to its granted leaf", ask(func(in *Input) {
			in.Consumer.ID = portal
			in.Purpose = "2.000004"
			in.Fields = []string{"permanentResidence"}
		}), want{allow: true, fields: []string{"permanentResidence.provinceCode"}, grantID: "g-portal-leaf", codes: []string{"field_narrowed"}}},
		{"unknown field dropped", ask(fields("fullName", "shoeSize")),
			want{allow: true, fields: []string{"fullName"}, rowScope: scope, grantID: "g-bhxh", dropped: map[string]string{"shoeSize": "field_unknown"}}},
		{"empty request gets all it may have", ask(fields()),
			want{allow: true, rowScope: scope, grantID: "g-bhxh",
				fields: []string{"administrativeUnit", "dateOfBirth", "fullName", "nationality", "permanentResidence", "permanentResidence.street", "personalId", "religion"},
				masks:  map[string]catalog.Mask{"personalId": catalog.MaskHash, "permanentResidence.street": catalog.MaskPartial}}},
	}
	for _, cacheSize := range []int{0, 1000} {
		e := loadedEngine(t, fixtureSnapshot(t, "r1", fixtureGrants(), nil), WithCacheSize(cacheSize))
		for _, tc := range cases {
			t.Run(fmt.Sprintf("cache=%d/%s", cacheSize, tc.name), func(t *testing.T) {
				// Twice: the second answer may come from the cache.
				for range 2 {
					d, err := e.Decide(context.Background(), tc.in)
					if err != nil {
						t.Fatalf("Decide: %v", err)
					}
					check(t, d, tc.want)
					if d.Revision != "r1" {
						t.Errorf("revision = %q", d.Revision)
					}
				}
			})
		}
	}
}

func TestDecideWithoutPolicyDenies(t *testing.T) {
	d, err := NewEngine().Decide(context.Background(), ask(nil))
	if !errors.Is(err, ErrNoPolicy) || d.Allow || !d.Has("no_policy") {
		t.Fatalf("got %+v, %v; want a no_policy denial", d, err)
	}
}

func TestDecideUsesClockWhenInputHasNoTime(t *testing.T) {
	now := t0
	e := loadedEngine(t, fixtureSnapshot(t, "r1", fixtureGrants(), nil), WithClock(func() time.Time { return now }))
	in := ask(func(in *Input) { in.Time = time.Time{} })
	if d, _ := e.Decide(context.Background(), in); !d.Allow {
		t.Fatalf("at t0: %+v", d)
	}
	now = t0.Add(11 * day)
	if d, _ := e.Decide(context.Background(), in); d.Allow || !d.Has("grant_expired") {
		t.Fatalf("after the grant expired: %+v", d)
	}
}

func TestRevokedGrantStopsAtNextRevision(t *testing.T) {
	e := loadedEngine(t, fixtureSnapshot(t, "v1", fixtureGrants(), nil))
	ctx := context.Background()
	// Warm the cache with the allowing answer.
	for range 3 {
		if d, err := e.Decide(ctx, ask(nil)); err != nil || !d.Allow {
			t.Fatalf("v1: %+v %v", d, err)
		}
	}
	grants := fixtureGrants()
	for i := range grants {
		if grants[i].ID == "g-bhxh" {
			revokedAt := t0
			grants[i].State = catalog.GrantRevoked
			grants[i].RevokedAt = &revokedAt
		}
	}
	if err := e.Load(ctx, fixtureSnapshot(t, "v2", grants, nil)); err != nil {
		t.Fatal(err)
	}
	d, err := e.Decide(ctx, ask(nil))
	if err != nil {
		t.Fatal(err)
	}
	if d.Allow || d.Revision != "v2" || !d.Has("no_grant") {
		t.Fatalf("after revocation: %+v", d)
	}
	if e.Revision() != "v2" {
		t.Fatalf("revision %q", e.Revision())
	}
}

func TestAssessmentLapseDeniesEverywhereWithWarmCache(t *testing.T) {
	e := loadedEngine(t, fixtureSnapshot(t, "r1", fixtureGrants(), nil))
	ctx := context.Background()
	pop := ask(func(in *Input) { in.Consumer.ID = lapsing; in.Fields = []string{"fullName"} })
	hh := ask(func(in *Input) { in.Consumer.ID = lapsing; in.Dataset = hhCode; in.Fields = []string{"householdId"} })
	for _, at := range []time.Time{t0, t0.Add(time.Hour), t0.Add(5*day - 1)} {
		for _, in := range []Input{pop, hh} {
			in.Time = at
			d, err := e.Decide(ctx, in)
			if err != nil || !d.Allow {
				t.Fatalf("%s at %s: %+v %v", in.Dataset, at, d, err)
			}
			if want := t0.Add(5 * day).UnixNano(); d.Expires != want {
				t.Fatalf("expires = %d, want the assessment expiry %d", d.Expires, want)
			}
		}
	}
	if hits := e.cur.Load().cache.hits.Load(); hits < 4 {
		t.Fatalf("only %d cache hits: the cache was not warm", hits)
	}
	for _, in := range []Input{pop, hh} {
		in.Time = t0.Add(5 * day)
		d, err := e.Decide(ctx, in)
		if err != nil {
			t.Fatal(err)
		}
		if d.Allow || !d.Has("assessment_expired") {
			t.Fatalf("%s after the assessment lapsed: %+v", in.Dataset, d)
		}
	}
}

func TestCacheIsBoundedAndKeyedOnEverything(t *testing.T) {
	e := loadedEngine(t, fixtureSnapshot(t, "r1", fixtureGrants(), nil), WithCacheSize(32))
	ctx := context.Background()
	for i := range 500 {
		_, _ = e.Decide(ctx, ask(func(in *Input) { in.Purpose = fmt.Sprintf("x.%d", i) }))
	}
	c := e.cur.Load().cache
	n := 0
	for i := range c.shards {
		n += len(c.shards[i].m)
	}
	if n > 32 {
		t.Fatalf("cache holds %d entries, bound 32", n)
	}
	// The same exchange with a gateway-side revocation must not reuse the
	// cached allow.
	if d, _ := e.Decide(ctx, ask(nil)); !d.Allow {
		t.Fatal(d)
	}
	if d, _ := e.Decide(ctx, ask(func(in *Input) { in.Consumer.Revoked = true })); d.Allow {
		t.Fatal("cached allow served to a revoked consumer")
	}
	// Field order does not matter.
	a, _ := e.Decide(ctx, ask(fields("dateOfBirth", "fullName", "fullName")))
	if !slices.Equal(a.Fields, []string{"dateOfBirth", "fullName"}) {
		t.Fatal(a.Fields)
	}
}

func TestCachedDecisionIsACopy(t *testing.T) {
	e := loadedEngine(t, fixtureSnapshot(t, "r1", fixtureGrants(), nil))
	ctx := context.Background()
	d, _ := e.Decide(ctx, ask(fields("personalId")))
	d.Fields[0] = "religion"
	d.Masks["personalId"] = ""
	again, _ := e.Decide(ctx, ask(fields("personalId")))
	if again.Fields[0] != "personalId" || again.Masks["personalId"] != catalog.MaskHash {
		t.Fatalf("cache was changed through a returned decision: %+v", again)
	}
}

func TestCachedDenyExpiresWhenGrantStarts(t *testing.T) {
	e := loadedEngine(t, fixtureSnapshot(t, "r1", fixtureGrants(), nil))
	in := ask(func(in *Input) { in.Consumer.ID = portal; in.Purpose = "2.000002"; in.Fields = []string{"fullName"} })
	if d, _ := e.Decide(context.Background(), in); d.Allow {
		t.Fatal(d)
	}
	in.Time = t0.Add(day)
	if d, _ := e.Decide(context.Background(), in); !d.Allow {
		t.Fatalf("cached denial outlived the grant's start: %+v", d)
	}
}

func TestStalePolicyDenies(t *testing.T) {
	clock := t0.Add(30 * time.Minute)
	e := loadedEngine(t, fixtureSnapshot(t, "r1", fixtureGrants(), nil), WithMaxStaleness(time.Hour), WithClock(func() time.Time { return clock }))
	if d, _ := e.Decide(context.Background(), ask(nil)); !d.Allow {
		t.Fatal(d)
	}
	// An allow is in the cache now; staleness must win over it.
	clock = t0.Add(2 * time.Hour)
	if d, _ := e.Decide(context.Background(), ask(nil)); d.Allow || !d.Has("policy_stale") {
		t.Fatal(d)
	}
}

func TestLoadRefusesBrokenSnapshots(t *testing.T) {
	e := NewEngine()
	ctx := context.Background()
	snap := fixtureSnapshot(t, "", fixtureGrants(), nil)
	if err := e.Load(ctx, snap); err == nil {
		t.Error("loaded a snapshot without revision")
	}
	snap.Revision = "r1"
	snap.Base = map[string][]byte{"exchange.rego": []byte("package lienthong.exchange\nresult := {")}
	if err := e.Load(ctx, snap); err == nil {
		t.Error("loaded a broken base policy")
	}
	if e.Revision() != "" {
		t.Error("a failed load changed the revision")
	}
}

// TestConcurrentDecideDuringLoad runs decisions from several goroutines while
// revisions are swapped; with -race it checks the engine's sharing, and it
// checks that every answer is one a loaded revision would give.
func TestConcurrentDecideDuringLoad(t *testing.T) {
	ctx := context.Background()
	withGrant := fixtureSnapshot(t, "with", fixtureGrants(), nil)
	revoked := fixtureGrants()
	for i := range revoked {
		if revoked[i].ID == "g-bhxh" {
			revoked[i].State = catalog.GrantRevoked
		}
	}
	without := fixtureSnapshot(t, "without", revoked, nil)
	e := loadedEngine(t, withGrant, WithCacheSize(64))

	var stop atomic.Bool
	var wg sync.WaitGroup
	var bad atomic.Int64
	for w := range 4 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := 0; !stop.Load(); i++ {
				in := ask(nil)
				if (i+w)%3 == 0 {
					in.Fields = []string{"personalId"}
				}
				d, err := e.Decide(ctx, in)
				if err != nil {
					bad.Add(1)
					continue
				}
				// An allow must come from the revision holding the grant.
				if d.Allow != (d.Revision == "with") {
					bad.Add(1)
				}
			}
		}()
	}
	for i := range 6 {
		snap := withGrant
		if i%2 == 0 {
			snap = without
		}
		if err := e.Load(ctx, snap); err != nil {
			t.Error(err)
		}
	}
	stop.Store(true)
	wg.Wait()
	if n := bad.Load(); n > 0 {
		t.Fatalf("%d decisions were wrong for their revision", n)
	}
}

// TestJSONFormsMatchTheRego feeds the JSON form of Input (times as RFC 3339
// text, as any HTTP caller of OPA would send) straight to the policy, decodes
// its JSON answer into Decision, and expects what Engine.Decide answers: the
// struct tags and the Rego agree.
func TestJSONFormsMatchTheRego(t *testing.T) {
	snap := fixtureSnapshot(t, "r1", fixtureGrants(), nil)
	e := loadedEngine(t, snap, WithCacheSize(0))
	plain, err := rego.New(
		rego.Query(decisionQuery),
		rego.Store(inmem.NewFromASTObject(ast.NewObject([2]*ast.Term{ast.StringTerm(Root), ast.NewTerm(astDocument(snap.Data))}))),
		rego.Module("exchange.rego", string(baseModules["exchange.rego"])),
	).PrepareForEval(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	for _, in := range []Input{
		ask(nil),
		ask(fields("personalId", "permanentResidence", "nationality", "shoeSize")),
		ask(func(in *Input) {
			in.Consumer.Member = "000.00.00.G12"
			in.Consumer.Level = 3
			in.Consumer.AssessmentValidUntil = t0.Add(day)
		}),
		ask(func(in *Input) { in.Consumer.Revoked = true }),
		ask(func(in *Input) {
			in.Consumer.ID = portal
			in.Purpose = "2.000004"
			in.Fields = []string{"permanentResidence"}
		}),
		ask(func(in *Input) { in.Consumer.ID = noGrant; in.Fields = []string{"nationality", "fullName"} }),
	} {
		bs, err := json.Marshal(in)
		if err != nil {
			t.Fatal(err)
		}
		var raw map[string]any
		if err := json.Unmarshal(bs, &raw); err != nil {
			t.Fatal(err)
		}
		rs, err := plain.Eval(context.Background(), rego.EvalInput(raw))
		if err != nil || len(rs) != 1 {
			t.Fatalf("eval: %v %v", rs, err)
		}
		out, err := json.Marshal(rs[0].Expressions[0].Value)
		if err != nil {
			t.Fatal(err)
		}
		var fromJSON Decision
		if err := json.Unmarshal(out, &fromJSON); err != nil {
			t.Fatalf("decision JSON %s does not fit Decision: %v", out, err)
		}
		got, err := e.Decide(context.Background(), in)
		if err != nil {
			t.Fatal(err)
		}
		slices.Sort(fromJSON.Fields)
		slices.SortFunc(fromJSON.Reasons, func(a, b Reason) int { return strings.Compare(a.Code+a.Field, b.Code+b.Field) })
		slices.SortFunc(got.Reasons, func(a, b Reason) int { return strings.Compare(a.Code+a.Field, b.Code+b.Field) })
		check(t, fromJSON, want{allow: got.Allow, fields: got.Fields, masks: got.Masks, rowScope: got.RowScope, grantID: got.GrantID})
		if !slices.Equal(fromJSON.Reasons, got.Reasons) {
			t.Errorf("reasons from JSON %+v\nfrom the engine %+v", fromJSON.Reasons, got.Reasons)
		}
	}
}

// TestInputSharesDataStrings checks that inputs reuse the data's string terms
// and build the same value as without them.
func TestInputSharesDataStrings(t *testing.T) {
	snap := fixtureSnapshot(t, "r1", fixtureGrants(), nil)
	_, pool := astDocumentAndStrings(snap.Data)
	in := ask(nil)
	shared := pool.input(&in, in.Fields, t0.UnixNano())
	if shared.Compare(inputValue(&in, in.Fields, t0.UnixNano())) != 0 {
		t.Fatal("shared input differs")
	}
	if shared.(ast.Object).Get(ast.StringTerm("consumer")).Value.(ast.Object).Get(ast.StringTerm("id")) != pool[bhxh] {
		t.Error("consumer id not shared")
	}
}
