# The base decision for one exchange: may this consumer system read these
# fields of this dataset, for this purpose, in this mode, at this time?
#
# Everything is an indexed lookup. data.lienthong.grants is keyed by consumer
# system id, then dataset ref, then grant id; what each grant means for each
# path of its dataset (covered and with which masks, sensitive without a
# legal basis, narrowed to granted parts) and what each path means without a
# grant (default-shared or not) are worked out when the data is built
# (policies.BuildData). A decision is then a few lookups per asked field, and
# its cost does not grow with the number of grants. Per-record projection and
# masking are the gateway's job; this module only names paths.
#
# This module is the reference for every decision. The Go engine (package
# policies) answers the common case (the consumer named by its id, an
# explicit list of fields, exactly one grant naming the mode and purpose)
# natively, from a table it compiles out of the same data when it loads a
# revision, and evaluates this module for everything else; a differential
# test holds the native answers equal to this module's. Plain OPA (next to
# Envoy, or `opa eval` on a bundle) evaluates this module alone and decides
# the same.
package lienthong.exchange

# --- the exchange as asked ---------------------------------------------------

# Times arrive as Unix nanoseconds (the Go engine's form) or RFC 3339 text.
now := input.time if is_number(input.time)

now := time.parse_rfc3339_ns(input.time) if is_string(input.time)

dataset_ref := concat("/", [input.provider, input.dataset])

system := data.lienthong.systems[input.consumer.id]

dataset := data.lienthong.datasets[dataset_ref]

# The consumer's grants for this dataset, keyed by grant id.
default grants := {}

grants := data.lienthong.grants[input.consumer.id][dataset_ref]

known_modes := {"query", "verify", "feed"}

# A non-empty list of fields names what is asked; an empty or absent list
# asks for everything the consumer may have.
explicit if count(input.fields) > 0

all_asked if count(object.get(input, "fields", [])) == 0

input_ok if {
	is_string(input.consumer.id)
	input.consumer.id != ""
	is_string(input.provider)
	input.provider != ""
	is_string(input.dataset)
	input.dataset != ""
	known_modes[input.mode]
	is_string(input.purpose)
	is_number(now)
	fields_ok
}

fields_ok if all_asked

fields_ok if {
	is_array(input.fields)
	every p in input.fields {
		is_string(p)
		p != ""
	}
}

# --- not secure, not connected ------------------------------------------------

# The control plane's record of the consumer is authoritative; what the
# gateway adds to the input (from the certificate or a live check) can only
# make it stricter: a lower level, an earlier expiry, a revocation, a member
# that must match.
consumer_level := min({system.level, input.consumer.level}) if {
	input.consumer.level > 0
} else := system.level

assessment_until := min({system.assessment_valid_until, input_until}) if {
	input_until > 0
} else := system.assessment_valid_until

input_until := input.consumer.assessment_valid_until if {
	is_number(input.consumer.assessment_valid_until)
} else := time.parse_rfc3339_ns(input.consumer.assessment_valid_until)

not_revoked if {
	system.revoked == false
	object.get(input.consumer, "revoked", false) == false
}

member_ok if object.get(input.consumer, "member", "") == ""

member_ok if input.consumer.member == system.member

# gate is "ok" or the one code that stops the exchange before any grant is
# looked at. The first clause is the common case (the input names only the
# consumer's id); the second also weighs what the gateway said about the
# consumer; the rest find the reason, in the order a human would look.
gate := "ok" if {
	count(input.consumer) == 1
	known_modes[input.mode]
	is_array(input.fields)
	is_string(input.purpose)
	input.purpose != ""
	system.revoked == false
	now < system.assessment_valid_until
	system.level >= dataset.min_level
} else := "ok" if {
	input_ok
	input.purpose != ""
	member_ok
	not_revoked
	consumer_level > 0
	now < assessment_until
	consumer_level >= dataset.min_level
} else := "invalid_input" if {
	not input_ok
} else := "purpose_missing" if {
	input.purpose == ""
} else := "dataset_unknown" if {
	not dataset
} else := "consumer_unknown" if {
	not system
} else := "consumer_mismatch" if {
	not member_ok
} else := "system_revoked" if {
	not not_revoked
} else := "consumer_not_assessed" if {
	consumer_level <= 0
} else := "consumer_not_assessed" if {
	assessment_until <= 0
} else := "assessment_expired" if {
	now >= assessment_until
} else := "level_too_low"

gate_message := "the exchange input is malformed: consumer.id, provider, dataset and purpose must be strings, mode query, verify or feed, time nanoseconds or RFC 3339, fields a list of dotted paths" if {
	gate == "invalid_input"
} else := "every exchange must declare a purpose" if {
	gate == "purpose_missing"
} else := sprintf("dataset %s is not published", [dataset_ref]) if {
	gate == "dataset_unknown"
} else := sprintf("consumer system %s is not registered", [input.consumer.id]) if {
	gate == "consumer_unknown"
} else := sprintf("consumer system %s does not belong to member %s", [input.consumer.id, input.consumer.member]) if {
	gate == "consumer_mismatch"
} else := sprintf("consumer system %s has been revoked", [input.consumer.id]) if {
	gate == "system_revoked"
} else := sprintf("consumer system %s has no security assessment", [input.consumer.id]) if {
	gate == "consumer_not_assessed"
} else := sprintf("security assessment of %s has expired", [input.consumer.id]) if {
	gate == "assessment_expired"
} else := sprintf("assessed level %d of %s is below level %d required by %s", [consumer_level, input.consumer.id, dataset.min_level, dataset_ref]) if {
	gate == "level_too_low"
}

# --- grants -------------------------------------------------------------------

# A grant is usable when it is active, inside its validity period, and names
# both the declared purpose and the mode.
usable contains id if {
	some id, g in grants
	g.state == "active"
	g.valid_from <= now
	now < g.valid_until
	g.purposes[input.purpose]
	g.modes[input.mode]
}

# With several usable grants, the one that allows most of what was asked
# wins; ties go to the smallest grant id, so the answer is stable. Grants are
# never mixed: each carries its own row scope and masks.
chosen := id if {
	count(usable) == 1
	some id in usable
}

chosen := id if {
	count(usable) > 1
	best := max({n | some n in score})
	id := min({id | some id in usable; score[id] == best})
}

score[id] := count({p | some p in input.fields; answer(grants[id].view, p).grant}) if {
	some id in usable
	explicit
}

score[id] := count(grants[id].fields) if {
	some id in usable
	all_asked
}

# Without a usable grant, an empty one: default-shared fields still apply.
default grant := {"fields": [], "view": {}, "row_scope": null}

grant := grants[chosen]

# --- fields -------------------------------------------------------------------

# What a path means without the grant: default-shared master data (readable
# for a declared purpose in query mode) or not granted.
fallback := dataset.fallback.query if {
	input.mode == "query"
} else := dataset.fallback.other

unknown_field := {"fields": [], "unknown": true}

# answer is the entry for path p of a grant's view or a dataset's fallback.
# BuildData stores the id of a shared answer (data.lienthong.views); an
# answer written inline is taken as it is.
answer(m, p) := data.lienthong.views[m[p]] if is_string(m[p])

answer(m, p) := m[p] if is_object(m[p])

# answer_or is p's answer from the grant's view, else from the fallback, else
# unknown.
answer_or(view, fb, p) := a if {
	a := answer(view, p)
} else := a if {
	a := answer(fb, p)
} else := unknown_field

# outcome gives each asked path one answer: the grant's view of it if the
# grant says anything about it, else the dataset's fallback, else unknown.
# Every answer has the same shape: "fields" (the paths it allows: the path,
# its granted parts, or none), optionally "masks", "grant" (true when the
# grant allowed it) and "reason" ({code, field, message}).
outcome[p] := answer_or(grant.view, fallback, p) if {
	explicit
	some p in input.fields
}

# Without an explicit list: everything the chosen grant names, and the
# default-shared fields it says nothing about.
outcome[p] := answer_or(grant.view, {}, p) if {
	all_asked
	some p in grant.fields
}

outcome[p] := o if {
	all_asked
	input.mode == "query"
	some p in dataset.default_shared
	not answer(grant.view, p)
	o := answer(fallback, p)
}

allowed := {q | some o in outcome; some q in o.fields}

masks := {q: m | some o in outcome; some q, m in o.masks}

grant_used if {
	some o in outcome
	o.grant == true
}

# --- reasons ------------------------------------------------------------------

reason contains grant.reason if grant_used

reason contains r if {
	some o in outcome
	r := o.reason
}

reason contains {"code": "field_unknown", "field": p, "message": concat("", ["field ", p, " is not in the dataset"])} if {
	some p, o in outcome
	o.unknown
}

reason contains r if {
	count(usable) == 0
	some id, g in grants
	r := grant_problem(id, g)
}

reason contains {"code": "no_grant", "message": concat("", [
	"consumer system ", input.consumer.id, " holds no usable grant for ", dataset_ref,
	" for purpose ", input.purpose, " in mode ", input.mode,
])} if count(usable) == 0

# Fields that are not lists of strings are only explained when denying.
reason contains {"code": "invalid_input", "message": "fields must be a list of dotted paths"} if {
	count(allowed) == 0
	not fields_ok
}

grant_problem(id, g) := {"code": "grant_revoked", "message": concat("", ["grant ", id, " is not active"])} if {
	g.state != "active"
} else := {"code": "grant_not_yet_valid", "message": concat("", ["grant ", id, " is not valid yet"])} if {
	now < g.valid_from
} else := {"code": "grant_expired", "message": concat("", ["grant ", id, " has expired"])} if {
	now >= g.valid_until
} else := {"code": "purpose_not_granted", "message": concat("", ["grant ", id, " does not name purpose ", input.purpose])} if {
	not g.purposes[input.purpose]
} else := {"code": "mode_not_granted", "message": concat("", ["grant ", id, " does not allow mode ", input.mode])} if {
	not g.modes[input.mode]
}

# --- the decision -------------------------------------------------------------

# The engine adds when the decision expires (the next grant or assessment
# boundary) from the same data.
default decision := {
	"allow": false,
	"fields": [],
	"masks": {},
	"row_scope": null,
	"grant_id": "",
	"reasons": [{"code": "denied_by_default", "message": "no rule allowed this exchange"}],
}

decision := {
	"allow": true,
	"fields": allowed,
	"masks": masks,
	"row_scope": row_scope,
	"grant_id": grant_id,
	"reasons": reason,
} if {
	gate == "ok"
	count(allowed) > 0
}

decision := {
	"allow": false,
	"fields": [],
	"masks": {},
	"row_scope": null,
	"grant_id": "",
	"reasons": reason,
} if {
	gate == "ok"
	count(allowed) == 0
}

decision := {
	"allow": false,
	"fields": [],
	"masks": {},
	"row_scope": null,
	"grant_id": "",
	"reasons": [{"code": gate, "message": gate_message}],
} if gate != "ok"

default row_scope := null

row_scope := grant.row_scope if grant_used

default grant_id := ""

grant_id := chosen if grant_used
