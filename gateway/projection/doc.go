// Package projection is the provider gateway's response filter: it streams a
// backend's JSON answer (one record object, or an array of record objects)
// and writes out only the fields the policy decision allows, with the
// decision's masks applied. It is what enforces invariant 1 of the design
// guide on the query path: a consumer never receives a field it holds no
// grant for, whatever the backend sends — nested objects, arrays, duplicate
// keys, escaped key names and keys the dataset does not declare included.
//
// # Declared properties
//
// The gateway compiles plans against the dataset's Schema (NewSchema,
// LoadSchema; one per dataset version), with Schema.Plan or, cached per
// policy revision, grant and decision, Schema.CachedPlan. Such a plan
// admits ONLY the properties the schema declares, at every depth: also
// inside a subtree granted whole and inside array items. A field granted
// whole therefore passes its declared members and nothing else; a backend
// that adds "religion" or "Ethnicity" inside a granted object has them
// dropped and counted (Stats.Undeclared). Keys are compared exactly after
// unescaping, so case variants are other keys and escaped spellings are
// the key they spell. A granted path the schema does not declare admits
// nothing.
//
// Every value the plan reaches must have its declared type (null fits any
// type; whether a field may be null is the Validator's concern): an object
// where a string is declared, an array where an object is, or a string item
// in an array whose items declare properties refuses the record with
// ErrWrongType (and ErrInvalidRecord), so nothing leaves in a shape no one
// granted. An array whose items declare no properties passes string, number
// and boolean items. An object whose schema declares no properties (a
// free-form object, a map of additionalProperties) declares nothing to
// admit, so it passes as {}: a dataset that means to share such data must
// declare its members.
//
// NewPlan compiles a decision without a schema: it enforces the grant but
// passes whatever lies inside a subtree granted whole. It is kept for data
// that has no schema; the gateway never uses it.
//
// # Decode once, project for many
//
// Project streams one answer through one plan. Decode reads an answer (or
// an event) once, with the same checks, into Records, which any number of
// plans then project, concurrently if need be, with ProjectRecords: a feed
// router delivering one event to five subscribers decodes it once. Row
// scopes (RowScopeFilter) and dotted-path lookups (Lookup) of records in
// encoding/json's form live here too.
//
// # Verify claims
//
// Plan.CanVerify decides whether a verify claim on a path may be compared
// with the stored value under the verify decision's plan: only on a path
// allowed whole where no mask applies (none at it, above it or below it).
// A field a grant masks cannot be verified, since repeated claims would
// reveal it, unless a verify grant names it unmasked.
//
// # Paths
//
// A Plan is compiled once per decision from its allowed dotted paths and
// masks (see NewPlan and Schema.Plan). Paths are dotted from the record root and arrays are
// transparent, as in catalog.Field: the items of array `relatives` have their
// names at `relatives.fullName`. Granting a path allows its whole subtree;
// granting a deeper path allows only that path, and its ancestors are emitted
// as containers holding just the allowed parts.
//
// Keys are compared after JSON unescaping ("\u006eame" is name) and written
// out re-encoded canonically. A key that is empty or contains a dot can never
// be named by a dotted path, so it is always dropped, even inside a subtree
// granted as a whole: otherwise the key "a.b" would be indistinguishable from
// the path a → b to anyone reading the output or writing a mask.
//
// # Masks
//
// A mask applies to the value at its path, after that value's own allowed
// parts have been projected and masked, and only where the value is
// allowed to leave at all:
//
//   - nullify: null.
//   - hash: "hmac-sha256:" and the hex HMAC-SHA-256, under the provider's key
//     (Masker), of the value's canonical JSON (keys sorted, no white space,
//     numbers normalised: 1, 1.0 and 10e-1 hash alike). Objects and arrays
//     are hashed whole, over their allowed parts only. Stable, so records
//     can still be joined on a hashed field.
//   - partial: for a string, or a number's literal, the last characters
//     (runes; at most Masker's count and never more than half of them), the
//     others replaced by '*'; null for booleans, objects and arrays.
//
// Null stays null under every mask. A mask on an array path masks the array
// as a whole; a mask on a path below it (relatives.personalId) masks that
// key in every item.
//
// # Errors and partial output
//
// Project reads and writes one top-level record at a time, so memory is
// bounded by the largest single record and not by the length of an array.
// The price is that on error (duplicate key, invalid JSON, too deep, too
// large, an invalid record, a failed write) the records before the failing
// one may already have been written to dst. THE CALLER MUST DISCARD dst's
// content whenever Project returns an error; the gateway buffers or spools
// the output and answers 502 instead. No byte of the failing record itself
// is ever written.
//
// Errors never quote keys or values of the backend's answer: they may be
// logged, and a key can itself be data.
package projection
