package policies

import (
	"context"
	"errors"
	"strings"
	"testing"

	"github.com/lienthong/lienthong/catalog"
)

const agencyPkg = "package lienthong.agency.vn_gov_000_00_00_g01_csdldc\n"

// narrowing is a provider module that uses all three outputs.
const narrowing = agencyPkg + `
deny contains {"code": "consumer_suspended", "message": "the portal is suspended pending an audit"} if {
	input.consumer.id == "VN:GOV:000.00.18.H26:DVCHN"
}

drop contains "dateOfBirth" if input.purpose == "1.001234"

drop contains "permanentResidence.street"

masks["fullName"] := "partial"

# A stronger mask on a field the base already masks, and a mask on a part
# of an allowed object.
masks["personalId"] := "nullify"
`

// widening tries every way to give more than the base decision.
const widening = agencyPkg + `
allow := true

fields := ["ethnicity", "fullName", "health"]

decision := {"allow": true, "fields": ["ethnicity"], "masks": {}}

# An empty mask would remove the base's hash; it must not.
masks["personalId"] := ""

drop := set()
`

func agencyEngine(t *testing.T, src string) *Engine {
	t.Helper()
	return loadedEngine(t, fixtureSnapshot(t, "r1", fixtureGrants(), map[string][]byte{provider: []byte(src)}))
}

func TestAgencyModuleNarrows(t *testing.T) {
	e := agencyEngine(t, narrowing)
	ctx := context.Background()

	d, err := e.Decide(ctx, ask(fields("fullName", "dateOfBirth", "personalId")))
	if err != nil {
		t.Fatal(err)
	}
	check(t, d, want{allow: true, fields: []string{"fullName", "personalId"}, grantID: "g-bhxh",
		rowScope: &catalog.RowScope{Field: "permanentResidence.provinceCode", Values: []string{"01"}},
		masks:    map[string]catalog.Mask{"fullName": catalog.MaskPartial, "personalId": catalog.MaskNullify},
		dropped:  map[string]string{"dateOfBirth": "agency_dropped"},
		codes:    []string{"agency_masked", "granted"}})

	// Dropping a part of an allowed object leaves the object's other parts.
	d, _ = e.Decide(ctx, ask(fields("permanentResidence")))
	check(t, d, want{allow: true, fields: []string{"permanentResidence.provinceCode"}, grantID: "g-bhxh",
		rowScope: &catalog.RowScope{Field: "permanentResidence.provinceCode", Values: []string{"01"}},
		dropped:  map[string]string{"permanentResidence.street": "agency_dropped"}})

	// Dropping everything asked denies.
	d, _ = e.Decide(ctx, ask(fields("dateOfBirth")))
	if d.Allow || !d.Has("no_fields_allowed") {
		t.Fatalf("all fields dropped yet %+v", d)
	}

	// deny wins over the base allow.
	d, _ = e.Decide(ctx, ask(func(in *Input) { in.Consumer.ID = portal; in.Fields = []string{"fullName"} }))
	if d.Allow || !d.Has("agency_denied") || !strings.Contains(d.Reasons[0].Message, "consumer_suspended") {
		t.Fatalf("agency deny ignored: %+v", d)
	}
}

func TestAgencyModuleCannotWiden(t *testing.T) {
	e := agencyEngine(t, widening)
	plain := loadedEngine(t, fixtureSnapshot(t, "r1", fixtureGrants(), nil))
	ctx := context.Background()
	for _, in := range []Input{
		ask(fields("fullName", "personalId", "ethnicity")),
		ask(func(in *Input) { in.Consumer.ID = portal; in.Fields = []string{"fullName", "ethnicity", "health"} }),
		ask(func(in *Input) { in.Consumer.ID = noGrant }),
		ask(func(in *Input) { in.Purpose = "9.9" }),
		ask(fields()),
	} {
		got, err := e.Decide(ctx, in)
		if err != nil {
			t.Fatal(err)
		}
		base, _ := plain.Decide(ctx, in)
		check(t, got, want{allow: base.Allow, fields: base.Fields, masks: base.Masks, rowScope: base.RowScope, grantID: base.GrantID})
	}
}

func TestAgencyModuleOfWrongShapeDenies(t *testing.T) {
	for name, src := range map[string]string{
		"deny is a boolean":  agencyPkg + "deny := true\n",
		"drop holds numbers": agencyPkg + "drop := {1, 2}\n",
		"unknown mask":       agencyPkg + `masks := {"fullName": "scramble"}` + "\n",
		"masks is a list":    agencyPkg + `masks := ["fullName"]` + "\n",
	} {
		t.Run(name, func(t *testing.T) {
			d, err := agencyEngine(t, src).Decide(context.Background(), ask(nil))
			if err != nil {
				t.Fatal(err)
			}
			if d.Allow || !d.Has("agency_policy_invalid") {
				t.Fatalf("got %+v", d)
			}
		})
	}
}

func TestAgencyModuleErrorDenies(t *testing.T) {
	// Two values for one complete rule: an evaluation error, not an allow.
	src := agencyPkg + "masks := {\"fullName\": \"hash\"} if input.mode == \"query\"\nmasks := {\"fullName\": \"partial\"} if input.purpose != \"\"\n"
	d, err := agencyEngine(t, src).Decide(context.Background(), ask(nil))
	if err == nil || d.Allow || !d.Has("policy_error") {
		t.Fatalf("got %+v, %v", d, err)
	}
	// Other providers' datasets are unaffected: the module only runs for its own.
}

func TestTimeDependentAgencyModuleIsNotCached(t *testing.T) {
	e := agencyEngine(t, agencyPkg+"deny contains \"closed at night\" if time.clock([input.time, \"Asia/Ho_Chi_Minh\"])[0] >= 22\n")
	ctx := context.Background()
	for range 3 {
		if d, _ := e.Decide(ctx, ask(nil)); !d.Allow {
			t.Fatal(d)
		}
	}
	if hits, _ := e.CacheStats(); hits != 0 {
		t.Fatalf("%d cache hits for a module that reads the time", hits)
	}
	late := ask(func(in *Input) { in.Time = t0.Add(16 * 60 * 60 * 1e9) }) // 23:00 in Hà Nội
	if d, _ := e.Decide(ctx, late); d.Allow || !d.Has("agency_denied") {
		t.Fatalf("at night: %+v", d)
	}

	// A module that never reads the time is cached.
	e = agencyEngine(t, narrowing)
	for range 3 {
		_, _ = e.Decide(ctx, ask(nil))
	}
	if hits, _ := e.CacheStats(); hits != 2 {
		t.Fatalf("%d cache hits, want 2", hits)
	}
}

func TestCompileAgencyModule(t *testing.T) {
	cases := []struct {
		name       string
		src        string
		line, col  int
		msgContain string
	}{
		{"syntax error", agencyPkg + "\ndeny contains x if {\n\tx := \n}\n", 5, 1, "unexpected }"},
		{"unknown function", agencyPkg + "\ndrop contains x if {\n\tx := no_such_function(1)\n}\n", 4, 7, "no_such_function"},
		{"network access", agencyPkg + "\ndeny contains x if {\n\tx := http.send({\"method\": \"get\", \"url\": \"http://x\"})\n}\n", 4, 7, "http.send"},
		{"clock access", agencyPkg + "\ndeny contains \"late\" if time.now_ns() > 0\n", 3, 25, "time.now_ns"},
		{"base package", "package lienthong.exchange\n\ndecision := {\"allow\": true}\n", 1, 1, "must declare package lienthong.agency.vn_gov_000_00_00_g01_csdldc"},
		{"another agency", "package lienthong.agency.vn_gov_000_00_00_g02_other\n", 1, 1, "is not allowed"},
		{"outside the namespace", "package mypolicy\n", 1, 1, "is not allowed"},
		{"import of the base", agencyPkg + "import data.lienthong.exchange\n\ndeny contains \"x\" if exchange.decision.allow\n", 2, 1, "import data.lienthong.exchange"},
		{"reference to the base", agencyPkg + "\ndeny contains \"x\" if data.lienthong.exchange.decision.allow\n", 3, 22, "data.lienthong.exchange"},
		{"reference to grants", agencyPkg + "\ndeny contains \"x\" if data.lienthong.grants[input.consumer.id]\n", 3, 22, "not allowed"},
		{"whole data document", agencyPkg + "\ndeny contains \"x\" if {\n\td := data\n\td.lienthong\n}\n", 4, 7, "whole data document"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			err := CompileAgencyModule(provider, []byte(tc.src))
			var me *ModuleError
			if !errors.As(err, &me) {
				t.Fatalf("error %v (%T) is not a *ModuleError", err, err)
			}
			if me.Line != tc.line || (tc.col != 0 && me.Column != tc.col) || me.Column == 0 {
				t.Errorf("position %d:%d, want %d:%d (%v)", me.Line, me.Column, tc.line, tc.col, err)
			}
			if !strings.Contains(me.Error(), tc.msgContain) {
				t.Errorf("message %q lacks %q", me.Error(), tc.msgContain)
			}
		})
	}
	// The example in README.md.
	readme := `package lienthong.agency.vn_gov_000_00_00_g01_csdldc

# Refuse: strings or {code, message}.
deny contains {"code": "audit_hold", "message": "portal suspended pending audit"} if {
	input.consumer.id == "VN:GOV:000.00.18.H26:DVCHN"
}

# Withhold fields (and everything below them).
drop contains "permanentResidence.street" if input.mode == "feed"

# Mask harder: hash, partial or nullify.
masks["personalId"] := "hash"
`
	for _, ok := range []string{narrowing, widening, readme,
		agencyPkg + "\nimport data.lienthong.datasets\n\ndrop contains p if {\n\tsome p, f in datasets[\"" + popRef + "\"].fields\n\tf.classification == \"personal\"\n}\n",
		agencyPkg + "\ndeny contains \"x\" if data.lienthong.systems[input.consumer.id].level < 4\n",
	} {
		if err := CompileAgencyModule(provider, []byte(ok)); err != nil {
			t.Errorf("refused a valid module: %v", err)
		}
	}
}

func TestAgencyKeys(t *testing.T) {
	if got := AgencyPackage("VN:GOV:000.00.00.G01:CSDLDC"); got != "lienthong.agency.vn_gov_000_00_00_g01_csdldc" {
		t.Fatal(got)
	}
	mods := map[string][]byte{
		"VN:GOV:000.00.00.G01:A-B": []byte("package lienthong.agency.vn_gov_000_00_00_g01_a_b\n"),
		"VN:GOV:000.00.00.G01:A_B": []byte("package lienthong.agency.vn_gov_000_00_00_g01_a_b\n"),
	}
	if _, err := BuildData(nil, nil, nil, mods); err == nil || !strings.Contains(err.Error(), "same agency package") {
		t.Fatalf("colliding agency keys accepted: %v", err)
	}
	if _, err := BuildData(nil, nil, nil, map[string][]byte{provider: []byte("package x\n")}); err == nil {
		t.Fatal("invalid agency module accepted")
	}
}

func TestTimeDependentDetection(t *testing.T) {
	for src, want := range map[string]bool{
		agencyPkg + "deny contains \"x\" if input.purpose == \"a\"\n":                   false,
		agencyPkg + "deny contains \"x\" if input.time > 0\n":                           true,
		agencyPkg + "deny contains \"x\" if input[\"time\"] > 0\n":                      true,
		agencyPkg + "deny contains \"x\" if {\n\ti := input\n\ti.mode == \"feed\"\n}\n": true,
		agencyPkg + "deny contains \"x\" if {\n\tsome k\n\tinput[k] == 1\n}\n":          true,
	} {
		mod, err := parseAgencyModule(provider, []byte(src))
		if err != nil {
			t.Fatal(err)
		}
		if got := timeDependent(mod); got != want {
			t.Errorf("timeDependent(%q) = %v, want %v", src, got, want)
		}
	}
}

func TestRunTestsWithAgencyModule(t *testing.T) {
	test := `package lienthong.agency.vn_gov_000_00_00_g01_csdldc_test

import data.lienthong.agency.vn_gov_000_00_00_g01_csdldc as agency

test_suspends_portal if {
	agency.deny with input as {"consumer": {"id": "VN:GOV:000.00.18.H26:DVCHN"}}
}

test_wrong_expectation if {
	agency.masks.fullName == "hash"
}
`
	results, err := RunTests(context.Background(), map[string][]byte{"agency.rego": []byte(narrowing), "agency_test.rego": []byte(test)})
	if err != nil {
		t.Fatal(err)
	}
	outcome := map[string]bool{}
	for _, r := range results {
		outcome[r.Package+"."+r.Name] = r.Pass
	}
	if pass, ran := outcome["lienthong.agency.vn_gov_000_00_00_g01_csdldc_test.test_suspends_portal"]; !ran || !pass {
		t.Errorf("agency test did not pass: %v", outcome)
	}
	if pass, ran := outcome["lienthong.agency.vn_gov_000_00_00_g01_csdldc_test.test_wrong_expectation"]; !ran || pass {
		t.Errorf("failing agency test not reported as failing: %v", outcome)
	}
	if pass := outcome["lienthong.exchange_test.test_allowed_fields"]; !pass {
		t.Errorf("built-in tests missing or failing: %v", outcome)
	}

	_, err = RunTests(context.Background(), map[string][]byte{"bad.rego": []byte("package x\n\np if {\n")})
	var me *ModuleError
	if !errors.As(err, &me) || me.File != "bad.rego" || me.Line == 0 {
		t.Fatalf("syntax error in an extra module: %v", err)
	}
}
