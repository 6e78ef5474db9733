// Package index is the federation-wide audit index the control plane keeps:
// gateways ship their hash-chained logs (package audit) entry by entry, the
// index checks each shipment against the chain and the gateway's signed
// checkpoints as it arrives, and answers auditors (exchanges by party,
// dataset, purpose, status, subject, time; the member × member flow matrix)
// and citizens (who read my record).
//
// The index is a copy: the gateways' logs are the evidence, and the index
// can be rebuilt from them by feeding them through the same Ingest path
// (lienthong audit reindex). Its tables live in the catalog's database
// (the catalog's migrations create them, so there is one schema version and
// one backup), but package catalog knows nothing of them: this package owns
// the SQL, and catalog stays free of audit imports.
package index

import (
	"crypto/ed25519"
	"errors"
	"fmt"
	"time"

	"github.com/lienthong/lienthong/audit"
)

// Position is where a gateway's shipped chain stands at the control plane:
// the seq it expects next and the hash of the entry before it.
type Position struct {
	Next uint64 `json:"next"`
	Head string `json:"head"`
}

// AlertKind names what went wrong with a shipment.
type AlertKind string

// The alerts the index raises. Each is logged at error level, stored, and
// listed by the alerts API.
const (
	// AlertGap: entries were skipped (first seq past the next expected).
	AlertGap AlertKind = "audit-gap"
	// AlertFork: a seq already held arrived with different bytes.
	AlertFork AlertKind = "audit-fork"
	// AlertChain: an entry's prev does not name the entry before it.
	AlertChain AlertKind = "audit-chain"
	// AlertCheckpoint: a checkpoint's signature, head or root does not verify.
	AlertCheckpoint AlertKind = "audit-checkpoint"
	// AlertKey: a genesis names a key other than the enrolled one, or a
	// different key is enrolled over an existing one.
	AlertKey AlertKind = "audit-key"
)

// Alert is one stored alert.
type Alert struct {
	ID      int64     `json:"id"`
	At      time.Time `json:"at"`
	Gateway string    `json:"gateway"`
	// Member is the agency the gateway belongs to, for scoping.
	Member string    `json:"member"`
	Seq    uint64    `json:"seq"`
	Kind   AlertKind `json:"kind"`
	Detail string    `json:"detail"`
}

// ShipError is a refused shipment: what kind of alert it raised, at which
// seq, and why. The API answers it as a 409 problem whose type is Kind.
type ShipError struct {
	Kind    AlertKind
	Gateway string
	Seq     uint64
	Detail  string
}

func (e *ShipError) Error() string {
	return fmt.Sprintf("%s: gateway %s seq %d: %s", e.Kind, e.Gateway, e.Seq, e.Detail)
}

// ErrInvalid wraps a shipment that cannot be read at all (a malformed entry
// or checkpoint): the API answers 400, and no alert is raised.
var ErrInvalid = errors.New("invalid audit shipment")

// Exchange is one exchange record as one gateway logged it, as auditors see it.
type Exchange struct {
	Gateway string `json:"gateway"`
	Seq     uint64 `json:"seq"`
	audit.Record
}

// Query selects exchange records for an auditor. Zero values match
// everything; Scope, when set, keeps only exchanges that member took part
// in (as consumer or provider): the caller sets it from the auditor's token.
type Query struct {
	Scope    string
	Consumer string
	Provider string
	Dataset  string
	Purpose  string
	// Status matches the answered HTTP status exactly (0: any).
	Status int
	// Subject is the subject HMAC (never a personal ID).
	Subject string
	// Phase defaults to outcome records; "intent" or "any" widen it.
	Phase string
	// From (inclusive) and Until (exclusive) bound the record time.
	From, Until time.Time
	// Limit caps a page (default 100, at most 1000); Cursor continues one.
	Limit  int
	Cursor string
}

// Page is one page of answers, newest first; Next is the cursor of the
// following page, "" at the end.
type Page[T any] struct {
	Items []T    `json:"items"`
	Next  string `json:"next,omitempty"`
}

// Flow is one cell of the flow matrix: what flowed from a provider member to
// a consumer member in a period. Exchanges are counted once however many of
// their records were shipped.
type Flow struct {
	Consumer string `json:"consumer"`
	Provider string `json:"provider"`
	// Exchanges is the number of distinct exchanges.
	Exchanges int64 `json:"exchanges"`
	// Records is the number of subject records disclosed: per allowed
	// exchange, the subjects it named.
	Records int64 `json:"records"`
	// Bytes is the answer bytes, the largest any of an exchange's records reports.
	Bytes int64 `json:"bytes"`
	// Denials is the number of exchanges refused by policy (status 403).
	Denials int64 `json:"denials"`
}

// Disclosure is one entry of a citizen's tracker: an exchange that asked for
// the citizen's record, as one gateway's outcome record tells it. It is the
// provider gateway's record when the index holds one, else the consumer
// gateway's (an exchange refused before it left, or whose provider record
// has not arrived yet). Status and Reasons say whether anything was
// disclosed: a 2xx status disclosed Fields.
type Disclosure struct {
	Time       time.Time `json:"time"`
	ExchangeID string    `json:"exchangeId"`
	// Side is the side of the gateway whose record this is.
	Side     string   `json:"side"`
	Consumer string   `json:"consumer"`
	Provider string   `json:"provider"`
	Dataset  string   `json:"dataset"`
	Fields   []string `json:"fields"`
	Purpose  string   `json:"purpose"`
	GrantID  string   `json:"grantId,omitempty"`
	Status   int      `json:"status"`
	Reasons  []string `json:"reasons,omitempty"`
	// Gateway and Seq locate the record in the gateway's log, so the
	// citizen (or anyone on their behalf) can ask for its inclusion proof.
	Gateway string `json:"gateway"`
	Seq     uint64 `json:"seq"`
}

// enrolledKey checks a key is an Ed25519 public key.
func enrolledKey(b []byte) (ed25519.PublicKey, error) {
	if len(b) != ed25519.PublicKeySize {
		return nil, fmt.Errorf("%w: checkpoint key is %d bytes, want %d (Ed25519)", ErrInvalid, len(b), ed25519.PublicKeySize)
	}
	return ed25519.PublicKey(b), nil
}
