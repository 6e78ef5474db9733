// Package audit records exchanges. Both gateways of an exchange write a
// record, allowed or denied, before the response is sent: a response is only
// released once its record is accepted by the sink.
package audit

import (
	"context"
	"time"
)

// Record is one exchange as one gateway saw it. It names fields, never their
// values; the subject of a query appears only as an HMAC.
type Record struct {
	Time       time.Time `json:"time"`
	ExchangeID string    `json:"exchangeId"`
	// Side is "consumer" or "provider": which gateway wrote the record.
	Side     string `json:"side"`
	Consumer string `json:"consumer"`
	Provider string `json:"provider"`
	Dataset  string `json:"dataset"`
	Mode     string `json:"mode"`
	Purpose  string `json:"purpose"`
	Case     string `json:"case,omitempty"`
	// Subject is HMAC-SHA-256 of the record id asked for, keyed per provider.
	Subject string   `json:"subject,omitempty"`
	Fields  []string `json:"fields,omitempty"`
	GrantID string   `json:"grantId,omitempty"`
	// Reasons are the decision's reason codes.
	Reasons     []string `json:"reasons,omitempty"`
	Status      int      `json:"status"`
	LatencyMS   float64  `json:"latencyMs"`
	Bytes       int64    `json:"bytes"`
	RequestHash string   `json:"requestHash,omitempty"`
	// PolicyRevision is the bundle revision that decided.
	PolicyRevision string `json:"policyRevision,omitempty"`
}

// Sink accepts audit records. Write returns only once the record is durable
// as far as the sink promises; an error means the exchange must fail.
type Sink interface {
	Write(ctx context.Context, r *Record) error
}
