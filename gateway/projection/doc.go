// Package projection is the provider gateway's response filter: it streams a
// backend's JSON answer (one record object, or an array of record objects)
// and writes out only the fields the policy decision allows, with the
// decision's masks applied. It is what enforces invariant 1 of the design
// guide on the query path: a consumer never receives a field it holds no
// grant for, whatever the backend sends — nested objects, arrays, duplicate
// keys and escaped key names included.
//
// # Paths
//
// A Plan is compiled once per decision from its allowed dotted paths and
// masks (see NewPlan). Paths are dotted from the record root and arrays are
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
