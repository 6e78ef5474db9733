package policies

import (
	"encoding/json"
	"slices"
	"strings"
	"testing"

	"github.com/open-policy-agent/opa/v1/ast"
	"github.com/open-policy-agent/opa/v1/util"

	"github.com/lienthong/lienthong/catalog"
)

func TestBuildDataShapes(t *testing.T) {
	snap := fixtureSnapshot(t, "r1", fixtureGrants(), nil)
	pd := snap.Data

	pop, ok := pd.Datasets[popRef]
	if !ok || len(pop.Fields) != 14 || pop.MinLevel != 3 {
		t.Fatalf("population dataset: newest version not kept: %+v", pop)
	}
	if got := pop.Fields["permanentResidence.street"].Lineage; !slices.Equal(got, []string{"permanentResidence", "permanentResidence.street"}) {
		t.Errorf("lineage %q", got)
	}
	// Sensitivity flows up to the object holding it, not to its siblings.
	if !pop.Fields["health"].Sensitive || pop.Fields["health.insuranceNo"].Sensitive || !pop.Fields["health.diagnosis"].Sensitive {
		t.Errorf("sensitivity: %+v", pop.Fields)
	}
	// Default sharing flows down.
	if !pop.Fields["administrativeUnit.code"].DefaultShared || pop.Fields["fullName"].DefaultShared {
		t.Errorf("default sharing: %+v", pop.Fields)
	}
	if !slices.Equal(pop.DefaultShared, []string{"administrativeUnit", "nationality"}) {
		t.Errorf("top-most default-shared paths %q", pop.DefaultShared)
	}
	if fb := pd.Views[pop.Fallback["query"]["nationality"]]; !slices.Equal(fb.Fields, []string{"nationality"}) || fb.Reason.Code != "default_shared" {
		t.Errorf("query fallback %+v", fb)
	}
	if fb := pd.Views[pop.Fallback["other"]["nationality"]]; len(fb.Fields) != 0 || fb.Reason.Code != "field_not_granted" {
		t.Errorf("verify/feed fallback %+v", fb)
	}

	if s := pd.Systems[newSys]; s.Level != 0 || s.AssessmentValidUntil != 0 {
		t.Errorf("unassessed system %+v", s)
	}
	if !pd.Systems[cutSys].Revoked {
		t.Error("revoked system not marked")
	}
	if s := pd.Systems[bhxh]; s.Member != "000.00.00.G12" || s.Level != 3 {
		t.Errorf("member or level not taken from the id and assessment: %+v", s)
	}

	if _, ok := pd.Grants[cutSys]; ok {
		t.Error("a revoked grant is in the data")
	}
	g := pd.Grants[bhxh][popRef]["g-bhxh"]
	if !g.Purposes[purposeA] || !g.Modes["query"] || g.Modes["feed"] || g.LegalBasis != lawOnRes {
		t.Errorf("grant %+v", g)
	}
	// Covered below a named object, with the masks that hold there.
	if v := pd.Views[g.View["permanentResidence"]]; !v.Grant || v.Masks["permanentResidence.street"] != catalog.MaskPartial {
		t.Errorf("view of a named object %+v", v)
	}
	if v := pd.Views[g.View["permanentResidence.provinceCode"]]; !v.Grant || len(v.Masks) != 0 {
		t.Errorf("view of a covered leaf %+v", v)
	}
	if v := pd.Views[g.View["personalId"]]; v.Masks["personalId"] != catalog.MaskHash {
		t.Errorf("masked field %+v", v)
	}
	if _, ok := g.View["ethnicity"]; ok {
		t.Error("ungranted field in the view")
	}
	nolb := pd.Grants[portal][popRef]["g-portal-nolb"]
	if v := pd.Views[nolb.View["health.diagnosis"]]; v.Grant || v.Reason.Code != "sensitive_without_legal_basis" {
		t.Errorf("sensitive without legal basis %+v", v)
	}
	if v := pd.Views[nolb.View["health.insuranceNo"]]; !v.Grant {
		t.Errorf("non-sensitive part of a granted object %+v", v)
	}
	leaf := pd.Grants[portal][popRef]["g-portal-leaf"]
	// Answers are shared: identical ones have one id.
	if g.View["fullName"] == "" || g.View["fullName"] == g.View["dateOfBirth"] {
		t.Errorf("answer ids %q %q", g.View["fullName"], g.View["dateOfBirth"])
	}
	if v := pd.Views[leaf.View["permanentResidence"]]; v.Grant != true || !slices.Equal(v.Fields, []string{"permanentResidence.provinceCode"}) || v.Reason.Code != "field_narrowed" {
		t.Errorf("narrowing %+v", v)
	}
}

func TestBuildDataRefusesBadRecords(t *testing.T) {
	bad := func(mod func(*catalog.Grant)) []catalog.Grant {
		gs := fixtureGrants()
		mod(&gs[0])
		return gs
	}
	cases := map[string][]catalog.Grant{
		"unknown mask":  bad(func(g *catalog.Grant) { g.Fields[0].Mask = "scramble" }),
		"unknown mode":  bad(func(g *catalog.Grant) { g.Modes = []catalog.Mode{"write"} }),
		"unknown state": bad(func(g *catalog.Grant) { g.State = "pending" }),
		"no consumer":   bad(func(g *catalog.Grant) { g.Consumer = "" }),
		"duplicate id":  append(fixtureGrants(), fixtureGrants()[0]),
	}
	for name, grants := range cases {
		if _, err := BuildData(fixtureSystems(), fixtureDatasets(), grants, nil); err == nil {
			t.Errorf("%s: accepted", name)
		} else if !strings.Contains(err.Error(), "grant") {
			t.Errorf("%s: error does not name the grant: %v", name, err)
		}
	}
	ds := fixtureDatasets()
	ds[1].Fields[0].Classification = "secret"
	if _, err := BuildData(fixtureSystems(), ds, nil, nil); err == nil {
		t.Error("unknown classification accepted")
	}
}

// TestASTDocumentMatchesJSON checks that the AST the engine stores is exactly
// what the bundle's data.json parses to, so a gateway loading the bundle and
// one loading the snapshot decide alike.
func TestASTDocumentMatchesJSON(t *testing.T) {
	snap := fixtureSnapshot(t, "r1", fixtureGrants(), map[string][]byte{provider: []byte(narrowing)})
	bs, err := json.Marshal(snap.Data)
	if err != nil {
		t.Fatal(err)
	}
	var doc any
	if err := util.UnmarshalJSON(bs, &doc); err != nil {
		t.Fatal(err)
	}
	want, err := ast.InterfaceToValue(doc)
	if err != nil {
		t.Fatal(err)
	}
	if got := astDocument(snap.Data); got.Compare(want) != 0 {
		t.Fatalf("AST document differs from its JSON form:\n%v\n%v", got, want)
	}
}
