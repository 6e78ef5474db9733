// Package audit records exchanges. Both gateways of an exchange write records,
// allowed or denied, and release an answer only once the exchange is durably
// in their log.
//
// An exchange that reaches a backend or a peer gateway is written twice. Its
// intent record (who asks whom for which fields of which subject, why, under
// which grant, bound by the request hash) is submitted before the gateway
// acts, so its write overlaps the work, and the answer waits until it is
// durable. Its outcome record (status, fields returned, bytes, latency) is
// accepted by the sink before the answer is released and is made durable by
// the sink's next commit. An exchange refused before that point has only an
// outcome record, and the answer waits until it is durable. So every answered
// exchange is in the log; after a crash, an intent without an outcome is an
// exchange whose answer may have been released, with its outcome unknown.
package audit

import (
	"context"
	"time"
)

// Phase says which of an exchange's records a Record is.
type Phase string

const (
	// Intent is written before a gateway acts on an exchange.
	Intent Phase = "intent"
	// Outcome is the exchange's final record.
	Outcome Phase = "outcome"
)

// Record is one exchange as one gateway saw it. It names fields, never their
// values; the data subject appears only as an HMAC (see SubjectKey).
type Record struct {
	Time       time.Time `json:"time"`
	ExchangeID string    `json:"exchangeId"`
	// Side is "consumer" or "provider": which gateway wrote the record.
	Side  string `json:"side"`
	Phase Phase  `json:"phase"`
	// Consumer, Provider are system ids; Dataset is the dataset code.
	Consumer string `json:"consumer"`
	Provider string `json:"provider"`
	Dataset  string `json:"dataset"`
	Mode     string `json:"mode"`
	Purpose  string `json:"purpose"`
	Case     string `json:"case,omitempty"`
	// Subject names the data subject the exchange is about (the record id
	// asked for), as SubjectKey.Subject computes it; Subjects names each
	// record of a list answer the same way, in answer order.
	Subject  string   `json:"subject,omitempty"`
	Subjects []string `json:"subjects,omitempty"`
	// Fields are, in an intent, the fields the decision allowed; in an
	// outcome, the fields returned.
	Fields  []string `json:"fields,omitempty"`
	GrantID string   `json:"grantId,omitempty"`
	// Reasons are the decision's reason codes.
	Reasons []string `json:"reasons,omitempty"`
	// Status is the HTTP status answered (0 in an intent).
	Status      int     `json:"status"`
	LatencyMS   float64 `json:"latencyMs"`
	Bytes       int64   `json:"bytes"`
	RequestHash string  `json:"requestHash,omitempty"`
	// PolicyRevision is the bundle revision that decided.
	PolicyRevision string `json:"policyRevision,omitempty"`
}

// Commit says how soon a submitted record must reach the disk.
type Commit int

const (
	// CommitNow records are made durable at once, since someone waits for
	// them (group-committed with whatever else is queued).
	CommitNow Commit = iota
	// CommitSoon records ride the next commit, or are made durable within
	// the sink's commit delay when none comes: an exchange's outcome, once
	// its intent is durable, needs no disk flush of its own.
	CommitSoon
)

// Sink accepts audit records.
type Sink interface {
	// Submit accepts r without waiting for I/O: the sink copies what it
	// needs, so the caller may change r afterwards. The receipt reports when
	// r is durable, or that it was refused or lost.
	Submit(r *Record, c Commit) *Receipt
}

// Receipt reports the fate of one submitted record.
type Receipt struct {
	done chan struct{}
	err  error
	pos  Position
	// sum is pos's hash, for a receipt settleChained settled: written out
	// in hex only if Position is asked for.
	sum    Hash
	hexSum bool
}

// NewReceipt returns a receipt its sink settles with Settle.
func NewReceipt() *Receipt { return &Receipt{done: make(chan struct{})} }

// Refused returns a receipt already settled with err: the sink did not
// accept the record.
func Refused(err error) *Receipt { return &Receipt{done: settledChan, err: err} }

// settledChan is the done channel of receipts settled when made, closed
// once for all of them.
var settledChan = func() chan struct{} {
	c := make(chan struct{})
	close(c)
	return c
}()

// Settle records the outcome of the write (nil: durable). A sink calls it
// exactly once.
func (r *Receipt) Settle(err error) {
	r.err = err
	close(r.done)
}

// SettleAt records that the write is durable at position p of a chained
// log. A sink calls it (or Settle) exactly once.
func (r *Receipt) SettleAt(p Position) {
	r.pos = p
	close(r.done)
}

// settleChained is SettleAt for a file sink, which has the entry's hash
// in binary: most receipts are never asked their position.
func (r *Receipt) settleChained(seq uint64, sum Hash) {
	r.setChained(seq, sum)
	close(r.done)
}

// setChained records the position settleChained does, for a receipt whose
// done channel other receipts share: whoever settles the last of them
// closes it.
func (r *Receipt) setChained(seq uint64, sum Hash) {
	r.pos.Seq, r.sum, r.hexSum = seq, sum, true
}

// Position returns where the record is in its log (seq and entry hash),
// once Wait has returned nil; the zero Position for a sink that keeps no
// chain.
func (r *Receipt) Position() Position {
	select {
	case <-r.done:
		p := r.pos
		if r.hexSum {
			p.Hash = HexHash(r.sum)
		}
		return p
	default:
		return Position{}
	}
}

// Wait returns once the record is durable (nil) or lost (the error), or when
// ctx ends. It may be called any number of times.
func (r *Receipt) Wait(ctx context.Context) error {
	select {
	case <-r.done:
		return r.err
	case <-ctx.Done():
		return ctx.Err()
	}
}

// Settled reports whether the record's fate is known (durable, refused or
// lost), so a caller can skip arming a timeout for a wait that cannot block.
func (r *Receipt) Settled() bool {
	select {
	case <-r.done:
		return true
	default:
		return false
	}
}

// Failed returns the error if the record is already known to be refused or
// lost, and nil while its write is pending or once it is durable: a caller
// that does not wait can still tell a sink that turned it away.
func (r *Receipt) Failed() error {
	select {
	case <-r.done:
		return r.err
	default:
		return nil
	}
}

// Write submits r and waits until it is durable.
func Write(ctx context.Context, s Sink, r *Record) error {
	return s.Submit(r, CommitNow).Wait(ctx)
}
