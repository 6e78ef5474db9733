# Unit tests of the base decision. Each rule has a case that allows and one
# that denies or drops. Fixtures have the shape BuildData produces.
package lienthong.exchange_test

import data.lienthong.exchange

# 2026-01-01T00:00:00Z and one day, in nanoseconds.
t0 := 1767225600000000000

day := 86400000000000

provider := "VN:GOV:000.00.00.G01:CSDLDC"

ref := "VN:GOV:000.00.00.G01:CSDLDC/population"

bhxh := "VN:GOV:000.00.00.G12:BHXH"

portal := "VN:GOV:000.00.18.H26:DVCHN"

field(cls, lineage) := {"classification": cls, "sensitive": cls == "sensitive", "default_shared": false, "lineage": lineage}

shared(lineage) := {"classification": "public", "sensitive": false, "default_shared": true, "lineage": lineage}

systems := {
	bhxh: {"member": "000.00.00.G12", "level": 3, "assessment_valid_until": t0 + (365 * day), "revoked": false},
	portal: {"member": "000.00.18.H26", "level": 3, "assessment_valid_until": t0 + (30 * day), "revoked": false},
	"VN:GOV:000.00.18.H26:LOW": {"member": "000.00.18.H26", "level": 2, "assessment_valid_until": t0 + (365 * day), "revoked": false},
	"VN:GOV:000.00.18.H26:OLD": {"member": "000.00.18.H26", "level": 4, "assessment_valid_until": t0 - day, "revoked": false},
	"VN:GOV:000.00.18.H26:CUT": {"member": "000.00.18.H26", "level": 4, "assessment_valid_until": t0 + (365 * day), "revoked": true},
	"VN:GOV:000.00.18.H26:NEW": {"member": "000.00.18.H26", "level": 0, "assessment_valid_until": 0, "revoked": false},
}

population := {
	"min_level": 3,
	"default_shared": ["nationality", "administrativeUnit"],
	"fields": {
		"fullName": field("personal", ["fullName"]),
		"dateOfBirth": field("personal", ["dateOfBirth"]),
		"personalId": field("personal", ["personalId"]),
		"ethnicity": field("sensitive", ["ethnicity"]),
		"religion": field("sensitive", ["religion"]),
		"permanentResidence": field("personal", ["permanentResidence"]),
		"permanentResidence.provinceCode": field("internal", ["permanentResidence", "permanentResidence.provinceCode"]),
		"permanentResidence.street": field("personal", ["permanentResidence", "permanentResidence.street"]),
		"nationality": shared(["nationality"]),
		"administrativeUnit": shared(["administrativeUnit"]),
		"administrativeUnit.code": shared(["administrativeUnit", "administrativeUnit.code"]),
		"health": {"classification": "personal", "sensitive": true, "default_shared": false, "lineage": ["health"]},
		"health.insuranceNo": field("personal", ["health", "health.insuranceNo"]),
		"health.diagnosis": field("sensitive", ["health", "health.diagnosis"]),
	},
}

datasets := {ref: object.union(population, {"fallback": fallback_of(population.fields)})}

# fallback_of is what BuildData puts in a dataset: each path's answer when no
# grant says anything about it.
fallback_of(fields) := {
	"query": {p: fallback_entry(p, f.default_shared) | some p, f in fields},
	"other": {p: fallback_entry(p, false) | some p, _ in fields},
}

fallback_entry(p, true) := {"fields": [p], "reason": {"code": "default_shared", "field": p, "message": "default-shared"}}

fallback_entry(p, false) := {"fields": [], "reason": {"code": "field_not_granted", "field": p, "message": "not granted"}}

# grant shapes a grant as BuildData does: the named paths and the grant's
# view of every path of the dataset it says something about.
# extra replaces whole keys (object.union would merge the purposes sets).
grant(id, named, extra) := object.union(
	object.remove(
		{
			"id": id,
			"fields": sort([p | some p, _ in named]),
			"view": view(named, object.get(extra, "legal_basis", "Law on Residence 2020, art. 37")),
			"reason": {"code": "granted", "message": concat("", ["grant ", id, " allows the exchange"])},
			"purposes": {"1.001234": true},
			"modes": {"query": true, "verify": true},
			"legal_basis": "Law on Residence 2020, art. 37",
			"row_scope": null,
			"valid_from": t0 - (10 * day),
			"valid_until": t0 + (10 * day),
			"state": "active",
		},
		object.keys(extra),
	),
	extra,
)

view(named, legal) := {p: e |
	some p, f in population.fields
	e := entry(named, legal, p, f)
}

entry(named, legal, p, f) := {"fields": [], "reason": {"code": "sensitive_without_legal_basis", "field": p, "message": "sensitive"}} if {
	covers(named, f.lineage)
	f.sensitive
	legal == ""
} else := object.union({"fields": [p], "grant": true}, masks_within(named, [p])) if {
	covers(named, f.lineage)
} else := object.union({"fields": parts, "grant": true, "reason": {"code": "field_narrowed", "field": p, "message": "narrowed"}}, masks_within(named, parts)) if {
	parts := sort([q |
		some q, _ in named
		startswith(q, concat("", [p, "."]))
		legal_ok(legal, population.fields[q])
	])
	count(parts) > 0
}

legal_ok(legal, _) if legal != ""

legal_ok(_, f) if not f.sensitive

# masks_within gives the masks at or below any of the paths, if there are any.
masks_within(named, paths) := {"masks": ms} if {
	own := {p: m |
		some p in paths
		m := strongest(named, population.fields[p].lineage)
		m != ""
	}
	below := {q: m |
		some q, _ in named
		some p in paths
		within(q, p)
		m := strongest(named, population.fields[q].lineage)
		m != ""
	}
	ms := object.union(own, below)
	count(ms) > 0
} else := {}

within(q, p) if q == p

within(q, p) if startswith(q, concat("", [p, "."]))

covers(named, lineage) if {
	some a in lineage
	named[a]
}

rank := {"": 0, "partial": 1, "hash": 2, "nullify": 3}

strongest(named, lineage) := ["", "partial", "hash", "nullify"][max({rank[named[a]] | some a in lineage; named[a]})]

grants := {
	bhxh: {ref: {"g-bhxh": grant(
		"g-bhxh",
		{"fullName": "", "dateOfBirth": "", "personalId": "hash", "permanentResidence": "", "permanentResidence.street": "partial", "religion": ""},
		{"row_scope": {"field": "permanentResidence.provinceCode", "values": ["01"]}},
	)}},
	portal: {ref: {
		"g-portal-nolb": grant("g-portal-nolb", {"fullName": "", "ethnicity": "", "health": ""}, {"legal_basis": ""}),
		"g-portal-old": grant("g-portal-old", {"fullName": ""}, {"purposes": {"2.000001": true}, "valid_until": t0 - day}),
		"g-portal-later": grant("g-portal-later", {"fullName": ""}, {"purposes": {"2.000002": true}, "valid_from": t0 + day}),
		"g-portal-gone": grant("g-portal-gone", {"fullName": ""}, {"purposes": {"2.000003": true}, "state": "revoked"}),
		"g-portal-leaf": grant("g-portal-leaf", {"permanentResidence.provinceCode": "", "administrativeUnit.code": "nullify"}, {"purposes": {"2.000004": true}}),
	}},
}

ask(overrides) := object.union(
	{
		"consumer": {"id": bhxh},
		"provider": provider,
		"dataset": "population",
		"fields": ["fullName", "dateOfBirth"],
		"mode": "query",
		"purpose": "1.001234",
		"time": t0,
	},
	overrides,
)

decide(inp) := d if {
	d := exchange.decision with input as inp
		with data.lienthong.systems as systems
		with data.lienthong.datasets as datasets
		with data.lienthong.grants as grants
}

codes(d) := {r.code | some r in d.reasons}

paths(d) := {p | some p in d.fields}

dropped(d, code) := {r.field | some r in d.reasons; r.code == code}

# --- deny by default ------------------------------------------------------------

test_no_grant_denies if {
	d := decide(ask({"consumer": {"id": "VN:GOV:000.00.18.H26:LOW"}}))
	not d.allow
	codes(d) == {"level_too_low"}
}

test_no_grant_at_all_denies if {
	d := decide(ask({"consumer": {"id": "VN:GOV:000.00.18.H26:OLD"}, "time": t0 - (2 * day)}))
	not d.allow
	paths(d) == set()
	"no_grant" in codes(d)
	"field_not_granted" in codes(d)
}

test_default_decision_without_data if {
	d := exchange.decision with input as ask({})
		with data.lienthong.systems as {}
		with data.lienthong.datasets as {}
		with data.lienthong.grants as {}
	not d.allow
	codes(d) == {"dataset_unknown"}
}

test_invalid_input_denies if {
	d := decide(ask({"mode": "write"}))
	not d.allow
	codes(d) == {"invalid_input"}
	d2 := decide(ask({"time": "yesterday"}))
	codes(d2) == {"invalid_input"}
	d3 := decide(ask({"fields": [1]}))
	codes(d3) == {"invalid_input"}
}

test_missing_purpose_denies if {
	d := decide(ask({"purpose": ""}))
	codes(d) == {"purpose_missing"}
}

# --- allowed fields, masks, row scope ---------------------------------------------

test_allowed_fields if {
	d := decide(ask({}))
	d.allow
	paths(d) == {"dateOfBirth", "fullName"}
	d.grant_id == "g-bhxh"
	"granted" in codes(d)
}

test_masks if {
	d := decide(ask({"fields": ["fullName", "personalId", "permanentResidence"]}))
	d.allow
	d.masks == {"personalId": "hash", "permanentResidence.street": "partial"}
}

test_mask_on_leaf_below_requested_ancestor if {
	d := decide(ask({"fields": ["permanentResidence.street"]}))
	paths(d) == {"permanentResidence.street"}
	d.masks == {"permanentResidence.street": "partial"}
}

test_row_scope if {
	d := decide(ask({}))
	d.row_scope == {"field": "permanentResidence.provinceCode", "values": ["01"]}
	p := decide(ask({"consumer": {"id": portal}}))
	p.row_scope == null
}

test_rfc3339_time if {
	d := decide(ask({"time": "2026-01-01T00:00:00Z"}))
	d.allow
	late := decide(ask({"time": "2027-01-01T00:00:00Z"}))
	not late.allow
}

# --- purpose, mode, validity -------------------------------------------------------

test_purpose_mismatch if {
	d := decide(ask({"purpose": "9.999999"}))
	not d.allow
	"purpose_not_granted" in codes(d)
}

test_mode_mismatch if {
	d := decide(ask({"mode": "feed"}))
	not d.allow
	"mode_not_granted" in codes(d)
	v := decide(ask({"mode": "verify"}))
	v.allow
}

test_expired_grant if {
	d := decide(ask({"consumer": {"id": portal}, "purpose": "2.000001", "fields": ["fullName"]}))
	not d.allow
	"grant_expired" in codes(d)
	still := decide(ask({"consumer": {"id": portal}, "purpose": "2.000001", "fields": ["fullName"], "time": t0 - (2 * day)}))
	still.allow
}

test_expired_at_exact_boundary if {
	d := decide(ask({"time": t0 + (10 * day)}))
	not d.allow
	"grant_expired" in codes(d)
	ok := decide(ask({"time": (t0 + (10 * day)) - 1}))
	ok.allow
}

test_not_yet_valid_grant if {
	d := decide(ask({"consumer": {"id": portal}, "purpose": "2.000002", "fields": ["fullName"]}))
	not d.allow
	"grant_not_yet_valid" in codes(d)
	later := decide(ask({"consumer": {"id": portal}, "purpose": "2.000002", "fields": ["fullName"], "time": t0 + (2 * day)}))
	later.allow
}

test_revoked_grant_never_allows if {
	d := decide(ask({"consumer": {"id": portal}, "purpose": "2.000003", "fields": ["fullName"]}))
	not d.allow
	"grant_revoked" in codes(d)
}

# --- not secure, not connected -----------------------------------------------------

test_assessment_expired if {
	d := decide(ask({"time": t0 + (400 * day)}))
	not d.allow
	codes(d) == {"assessment_expired"}
}

test_input_may_only_shorten_assessment if {
	d := decide(ask({"consumer": {"id": bhxh, "assessment_valid_until": t0 - 1}}))
	codes(d) == {"assessment_expired"}
	longer := decide(ask({"consumer": {"id": bhxh, "assessment_valid_until": t0 + (9999 * day)}, "time": t0 + (400 * day)}))
	codes(longer) == {"assessment_expired"}
}

test_level_too_low if {
	d := decide(ask({"consumer": {"id": "VN:GOV:000.00.18.H26:LOW"}}))
	codes(d) == {"level_too_low"}
	lowered := decide(ask({"consumer": {"id": bhxh, "level": 2}}))
	codes(lowered) == {"level_too_low"}
	raised := decide(ask({"consumer": {"id": "VN:GOV:000.00.18.H26:LOW", "level": 5}}))
	codes(raised) == {"level_too_low"}
}

test_system_revoked if {
	d := decide(ask({"consumer": {"id": "VN:GOV:000.00.18.H26:CUT"}}))
	codes(d) == {"system_revoked"}
	by_input := decide(ask({"consumer": {"id": bhxh, "revoked": true}}))
	codes(by_input) == {"system_revoked"}
}

test_consumer_not_assessed if {
	d := decide(ask({"consumer": {"id": "VN:GOV:000.00.18.H26:NEW"}}))
	codes(d) == {"consumer_not_assessed"}
}

test_consumer_unknown_and_mismatch if {
	d := decide(ask({"consumer": {"id": "VN:GOV:000.00.99.Z99:NOBODY"}}))
	codes(d) == {"consumer_unknown"}
	m := decide(ask({"consumer": {"id": bhxh, "member": "000.00.18.H26"}}))
	codes(m) == {"consumer_mismatch"}
	same := decide(ask({"consumer": {"id": bhxh, "member": "000.00.00.G12"}}))
	same.allow
}

test_dataset_unknown if {
	d := decide(ask({"dataset": "land"}))
	codes(d) == {"dataset_unknown"}
}

# --- sensitive data needs a legal basis ---------------------------------------------

test_sensitive_with_legal_basis_allowed if {
	d := decide(ask({"fields": ["religion"]}))
	d.allow
	paths(d) == {"religion"}
}

test_sensitive_without_legal_basis_dropped if {
	d := decide(ask({"consumer": {"id": portal}, "fields": ["fullName", "ethnicity"]}))
	d.allow
	paths(d) == {"fullName"}
	dropped(d, "sensitive_without_legal_basis") == {"ethnicity"}
}

test_object_containing_sensitive_without_legal_basis_dropped if {
	d := decide(ask({"consumer": {"id": portal}, "fields": ["health"]}))
	not d.allow
	dropped(d, "sensitive_without_legal_basis") == {"health"}

	# its non-sensitive leaf, asked by name, is fine
	leaf := decide(ask({"consumer": {"id": portal}, "fields": ["health.insuranceNo"]}))
	paths(leaf) == {"health.insuranceNo"}
}

test_only_sensitive_asked_without_legal_basis_denies if {
	d := decide(ask({"consumer": {"id": portal}, "fields": ["ethnicity"]}))
	not d.allow
	"sensitive_without_legal_basis" in codes(d)
}

# --- default-shared master data -----------------------------------------------------

test_default_shared_without_grant if {
	d := decide(ask({"consumer": {"id": portal}, "purpose": "3.000001", "fields": ["nationality", "fullName"]}))
	d.allow
	paths(d) == {"nationality"}
	d.grant_id == ""
	"default_shared" in codes(d)
	dropped(d, "field_not_granted") == {"fullName"}
}

test_default_shared_needs_query_mode if {
	d := decide(ask({"consumer": {"id": portal}, "purpose": "3.000001", "fields": ["nationality"], "mode": "verify"}))
	not d.allow
}

test_default_shared_needs_connectivity if {
	d := decide(ask({"consumer": {"id": "VN:GOV:000.00.18.H26:LOW"}, "purpose": "3.000001", "fields": ["nationality"]}))
	codes(d) == {"level_too_low"}
}

test_default_shared_needs_purpose if {
	d := decide(ask({"consumer": {"id": portal}, "purpose": "", "fields": ["nationality"]}))
	codes(d) == {"purpose_missing"}
}

test_grant_mask_wins_over_default_shared if {
	d := decide(ask({"consumer": {"id": portal}, "purpose": "2.000004", "fields": ["administrativeUnit.code"]}))
	paths(d) == {"administrativeUnit.code"}
	d.masks == {"administrativeUnit.code": "nullify"}
}

# --- coverage of paths ------------------------------------------------------------------

test_ancestor_covers_leaf if {
	d := decide(ask({"fields": ["permanentResidence.provinceCode"]}))
	d.allow
	paths(d) == {"permanentResidence.provinceCode"}
}

test_leaf_grant_does_not_cover_sibling if {
	d := decide(ask({"consumer": {"id": portal}, "purpose": "2.000004", "fields": ["permanentResidence.street"]}))
	not d.allow
	dropped(d, "field_not_granted") == {"permanentResidence.street"}
}

test_asking_for_object_with_leaf_grant_narrows if {
	d := decide(ask({"consumer": {"id": portal}, "purpose": "2.000004", "fields": ["permanentResidence"]}))
	d.allow
	paths(d) == {"permanentResidence.provinceCode"}
	"field_narrowed" in codes(d)
}

test_unknown_field_dropped if {
	d := decide(ask({"fields": ["fullName", "shoeSize"]}))
	d.allow
	paths(d) == {"fullName"}
	dropped(d, "field_unknown") == {"shoeSize"}
}

test_uncovered_fields_dropped_not_failed if {
	d := decide(ask({"fields": ["fullName", "ethnicity", "nationality"]}))
	d.allow
	paths(d) == {"fullName", "nationality"}
	dropped(d, "field_not_granted") == {"ethnicity"}
	"default_shared" in codes(d)
}

test_empty_request_gets_everything_allowed if {
	d := decide(ask({"fields": []}))
	d.allow
	paths(d) == {"administrativeUnit", "dateOfBirth", "fullName", "nationality", "permanentResidence", "permanentResidence.street", "personalId", "religion"}
	not "field_not_granted" in codes(d)
}

test_empty_request_skips_sensitive_without_legal_basis if {
	d := decide(object.remove(ask({"consumer": {"id": portal}}), ["fields"]))
	paths(d) == {"administrativeUnit", "fullName", "nationality"}
	dropped(d, "sensitive_without_legal_basis") == {"ethnicity", "health"}
}

# --- several grants -------------------------------------------------------------------------

test_best_covering_grant_chosen if {
	two := object.union(grants, {bhxh: {ref: {
		"g-a": grant("g-a", {"fullName": ""}, {}),
		"g-b": grant("g-b", {"fullName": "", "dateOfBirth": ""}, {}),
	}}})
	d := exchange.decision with input as ask({})
		with data.lienthong.systems as systems
		with data.lienthong.datasets as datasets
		with data.lienthong.grants as two
	d.grant_id == "g-b"
	paths(d) == {"dateOfBirth", "fullName"}

	tie := exchange.decision with input as ask({"fields": ["fullName"]})
		with data.lienthong.systems as systems
		with data.lienthong.datasets as datasets
		with data.lienthong.grants as two
	tie.grant_id == "g-a"
}

# --- answers shared by id -------------------------------------------------------

# BuildData writes each answer once, in data.lienthong.views, and grants and
# fallbacks name it by id; the rules read both forms alike.
test_answers_by_id if {
	views := {"v-full": {"fields": ["fullName"], "grant": true}, "v-no": {"fields": [], "reason": {"code": "field_not_granted", "field": "dateOfBirth", "message": "not granted"}}}
	g := object.union(grant("g-bhxh", {"fullName": ""}, {}), {"view": {"fullName": "v-full"}})
	ds := object.union(datasets[ref], {"fallback": {"query": {"dateOfBirth": "v-no"}, "other": {}}})
	d := exchange.decision with input as ask({})
		with data.lienthong.systems as systems
		with data.lienthong.datasets as {ref: ds}
		with data.lienthong.grants as {bhxh: {ref: {"g-bhxh": g}}}
		with data.lienthong.views as views
	d.allow
	paths(d) == {"fullName"}
	codes(d) == {"granted", "field_not_granted"}
}
