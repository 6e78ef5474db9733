// Package policies decides exchanges: may a consumer system read these fields
// of a provider's dataset, for this purpose, in this mode, now?
//
// The rules are Rego modules (rego/exchange.rego, OPA v1 syntax) with their
// own Rego unit tests (rego/exchange_test.rego, run by RunTests). The Go side
// builds the policy data from catalog types (BuildData), prepares the query
// and compiles a native table of the common case once per revision
// (Engine.Load), answers decisions with a bounded, time-aware cache
// (Engine.Decide), lets a provider narrow decisions on its datasets with its
// own module (CompileAgencyModule), and ships everything to gateways as
// signed OPA bundles (BuildBundle, LoadBundle).
//
// # Policy data
//
// The data lives at data.lienthong (the bundle's data.json holds it under
// "lienthong") and is indexed so that a decision is a handful of lookups,
// whatever the number of grants:
//
//	systems[<system id>]                  {member, level, assessment_valid_until, revoked}
//	datasets[<provider id>/<code>]        {min_level, fields, default_shared, fallback, agency?}
//	  fields[<path>]                      {classification, sensitive, default_shared, lineage}
//	  fallback.query|other[<path>]        id of the answer when no grant covers the path
//	grants[<consumer id>][<dataset ref>][<grant id>]
//	                                      {id, fields, view, reason, purposes, modes,
//	                                       legal_basis, row_scope, valid_from, valid_until, state}
//	  view[<path>]                        id of the grant's answer for the path
//	views[<answer id>]                    an answer, written once however many use it
//	agencies[<agency key>]                <provider system id>
//
// Times are Unix nanoseconds; purposes and modes are sets ({code: true}).
// An answer (FieldView) is {fields, masks?, grant?, reason?}: the paths it
// allows, the masks holding at or below them, whether a grant allowed them,
// and why, when it narrows, relies on default sharing or allows nothing.
// BuildData works these answers out once per revision (coverage of a path by
// a granted ancestor, the strongest mask on the way down, sensitive data
// without a legal basis, objects of which only parts are granted), which is
// what keeps the rules free of string work and walks. Answers are shared by
// id (derived from their content): most grants give the same few answers for
// a path, so the data holds each once. The rules also accept an answer
// written inline in place of its id.
//
// # Two evaluators, one meaning
//
// The common case (the consumer named by its id only, an explicit list of
// fields, exactly one active grant naming the mode and purpose, within its
// period and the consumer's assessment) is decided by a native Go evaluator,
// from a table the engine compiles out of this same data when it loads a
// revision: which grant applies to each (consumer, dataset, mode, purpose),
// and each path's answer with and without it, interned and ready to merge.
// The Rego decides everything else (denials and their reasons, several
// grants, unknown fields, "everything I may have", what the gateway adds
// about the consumer) and is the reference: a differential test and a fuzz
// target hold every native answer deep-equal to the Rego's. Plain OPA,
// given a bundle, evaluates the Rego alone and decides the same.
//
// Per-record projection and masking are not done here: a Decision names the
// allowed paths and masks, and the gateway applies them.
package policies
