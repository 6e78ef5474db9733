package policies

import (
	"context"
	"testing"
	"time"

	"github.com/lienthong/lienthong/catalog"
)

// The Go-level fixture mirrors the Rego one in rego/exchange_test.rego, but is
// built from catalog types through BuildData, so it also exercises the data
// builder.

var t0 = time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)

const (
	day = 24 * time.Hour

	provider     = "VN:GOV:000.00.00.G01:CSDLDC"
	bhxh         = "VN:GOV:000.00.00.G12:BHXH"
	portal       = "VN:GOV:000.00.18.H26:DVCHN"
	lowSys       = "VN:GOV:000.00.18.H26:LOW"
	cutSys       = "VN:GOV:000.00.18.H26:CUT"
	newSys       = "VN:GOV:000.00.18.H26:NEW"
	lapsing      = "VN:GOV:000.00.18.H26:LAPSE"
	noGrant      = "VN:GOV:000.00.18.H26:NOGRANT"
	popCode      = "population"
	hhCode       = "household"
	purposeA     = "1.001234"
	lawOnRes     = "Law on Residence 2020, art. 37"
	popRef       = provider + "/" + popCode
	householdRef = provider + "/" + hhCode
)

func system(id string, level int, until time.Time) catalog.System {
	s := catalog.System{ID: id, Name: id, SecurityLevel: max(level, 1)}
	if level > 0 {
		s.Assessment = &catalog.Assessment{Level: level, AssessedBy: "A05", Reference: "QD-1", ValidUntil: until}
	}
	return s
}

func fixtureSystems() []catalog.System {
	revokedAt := t0.Add(-day)
	cut := system(cutSys, 4, t0.Add(365*day))
	cut.RevokedAt = &revokedAt
	return []catalog.System{
		system(provider, 4, t0.Add(365*day)),
		system(bhxh, 3, t0.Add(365*day)),
		system(portal, 3, t0.Add(30*day)),
		system(lowSys, 2, t0.Add(365*day)),
		cut,
		system(newSys, 0, time.Time{}),
		system(lapsing, 3, t0.Add(5*day)),
		system(noGrant, 3, t0.Add(365*day)),
	}
}

// leafField and objectField are dataset fields of the test worlds.
func leafField(path string, c catalog.Classification) catalog.Field {
	return catalog.Field{Path: path, Type: "string", Classification: c}
}

func objectField(path string, c catalog.Classification) catalog.Field {
	return catalog.Field{Path: path, Type: "object", Classification: c}
}

func fixtureDatasets() []catalog.Dataset {
	f := leafField
	shared := func(path string) catalog.Field {
		return catalog.Field{Path: path, Type: "string", Classification: catalog.Public, DefaultShared: true}
	}
	pop := catalog.Dataset{System: provider, Code: popCode, Version: 2, MinConsumerLevel: 3, Fields: []catalog.Field{
		f("fullName", catalog.Personal),
		f("dateOfBirth", catalog.Personal),
		f("personalId", catalog.Personal),
		f("ethnicity", catalog.Sensitive),
		f("religion", catalog.Sensitive),
		{Path: "permanentResidence", Type: "object", Classification: catalog.Personal},
		f("permanentResidence.provinceCode", catalog.Internal),
		f("permanentResidence.street", catalog.Personal),
		shared("nationality"),
		{Path: "administrativeUnit", Type: "object", Classification: catalog.Public, DefaultShared: true},
		f("administrativeUnit.code", catalog.Public),
		{Path: "health", Type: "object", Classification: catalog.Personal},
		f("health.insuranceNo", catalog.Personal),
		f("health.diagnosis", catalog.Sensitive),
	}}
	// An older version with fewer fields: BuildData keeps the newest.
	old := catalog.Dataset{System: provider, Code: popCode, Version: 1, MinConsumerLevel: 1, Fields: []catalog.Field{f("fullName", catalog.Personal)}}
	hh := catalog.Dataset{System: provider, Code: hhCode, Version: 1, MinConsumerLevel: 3, Fields: []catalog.Field{
		f("householdId", catalog.Internal),
		{Path: "members", Type: "array", Classification: catalog.Personal, Array: true},
		f("members.fullName", catalog.Personal),
	}}
	return []catalog.Dataset{old, pop, hh}
}

func grant(id, consumer, dataset string, fields []catalog.GrantedField, mod func(*catalog.Grant)) catalog.Grant {
	g := catalog.Grant{
		ID: id, Consumer: consumer, Provider: provider, Dataset: dataset, Fields: fields,
		Purposes:   []catalog.Purpose{{Code: purposeA}},
		LegalBasis: catalog.LegalBasis{Reference: lawOnRes},
		Modes:      []catalog.Mode{catalog.ModeQuery, catalog.ModeVerify},
		ValidFrom:  t0.Add(-10 * day), ValidUntil: t0.Add(10 * day),
		State: catalog.GrantActive,
	}
	if mod != nil {
		mod(&g)
	}
	return g
}

func gf(path string, m catalog.Mask) catalog.GrantedField {
	return catalog.GrantedField{Path: path, Mask: m}
}

func purpose(code string) func(*catalog.Grant) {
	return func(g *catalog.Grant) { g.Purposes = []catalog.Purpose{{Code: code}} }
}

func fixtureGrants() []catalog.Grant {
	return []catalog.Grant{
		grant("g-bhxh", bhxh, popCode, []catalog.GrantedField{
			gf("fullName", ""), gf("dateOfBirth", ""), gf("personalId", catalog.MaskHash),
			gf("permanentResidence", ""), gf("permanentResidence.street", catalog.MaskPartial), gf("religion", ""),
		}, func(g *catalog.Grant) {
			g.RowScope = &catalog.RowScope{Field: "permanentResidence.provinceCode", Values: []string{"01"}}
		}),
		grant("g-bhxh-hh", bhxh, hhCode, []catalog.GrantedField{gf("householdId", ""), gf("members", "")}, nil),
		grant("g-portal-nolb", portal, popCode, []catalog.GrantedField{gf("fullName", ""), gf("ethnicity", ""), gf("health", "")},
			func(g *catalog.Grant) { g.LegalBasis = catalog.LegalBasis{} }),
		grant("g-portal-old", portal, popCode, []catalog.GrantedField{gf("fullName", "")}, func(g *catalog.Grant) {
			purpose("2.000001")(g)
			g.ValidUntil = t0.Add(-day)
		}),
		grant("g-portal-later", portal, popCode, []catalog.GrantedField{gf("fullName", "")}, func(g *catalog.Grant) {
			purpose("2.000002")(g)
			g.ValidFrom = t0.Add(day)
		}),
		grant("g-portal-leaf", portal, popCode, []catalog.GrantedField{gf("permanentResidence.provinceCode", ""), gf("administrativeUnit.code", catalog.MaskNullify)}, purpose("2.000004")),
		grant("g-lapse-pop", lapsing, popCode, []catalog.GrantedField{gf("fullName", "")}, nil),
		grant("g-lapse-hh", lapsing, hhCode, []catalog.GrantedField{gf("householdId", "")}, nil),
		grant("g-revoked", cutSys, popCode, []catalog.GrantedField{gf("fullName", "")}, func(g *catalog.Grant) { g.State = catalog.GrantRevoked }),
	}
}

// fixtureSnapshot builds the fixture with the given changes to the grants
// and agency modules.
func fixtureSnapshot(t testing.TB, revision string, grants []catalog.Grant, agency map[string][]byte) *Snapshot {
	t.Helper()
	snap, err := BuildData(fixtureSystems(), fixtureDatasets(), grants, agency)
	if err != nil {
		t.Fatalf("BuildData: %v", err)
	}
	snap.Revision = revision
	snap.IssuedAt = t0
	return snap
}

func loadedEngine(t testing.TB, snap *Snapshot, opts ...Option) *Engine {
	t.Helper()
	e := NewEngine(opts...)
	if err := e.Load(context.Background(), snap); err != nil {
		t.Fatalf("Load: %v", err)
	}
	return e
}

// ask is the default exchange of the tests: BHXH reads two fields.
func ask(mod func(*Input)) Input {
	in := Input{
		Consumer: Consumer{ID: bhxh},
		Provider: provider, Dataset: popCode,
		Fields: []string{"fullName", "dateOfBirth"},
		Mode:   catalog.ModeQuery, Purpose: purposeA, Time: t0,
	}
	if mod != nil {
		mod(&in)
	}
	return in
}
