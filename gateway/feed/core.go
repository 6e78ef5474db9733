// Package feed is the feed router: the door of the exchange core through
// which change events reach consumers. It reads each dataset's provider
// topic and, for every consumer system holding an active grant in feed mode,
// has the core decide, project and mask the event and record the delivery,
// then writes the result to that consumer's topic — all of one batch in one
// Kafka transaction with the consumed offsets, so a crash neither loses nor
// repeats a delivery.
//
// The router holds no policy, projection or audit logic of its own: it sees
// the core only through Core (core.go). corebridge.go implements Core over
// the policy engine, the projection package and the audit sink until the
// exchange core provides it.
package feed

import (
	"context"
	"errors"
	"fmt"

	"github.com/lienthong/lienthong/audit"
	"github.com/lienthong/lienthong/gateway/feed/event"
)

// Core is what the router needs from the exchange core.
type Core interface {
	// View returns the policy in force now, pinned: everything asked of
	// the view is answered at its one revision.
	View(ctx context.Context) (View, error)
}

// View is the exchange core at one policy revision.
type View interface {
	// Revision is the policy bundle revision the view decides with.
	Revision() string
	// Subscribers lists, sorted by consumer, the consumer systems holding
	// an active grant in feed mode on the dataset at this revision.
	Subscribers(provider, dataset string) []Subscriber
	// Deliver decides the event for one subscriber (mode feed, row scope
	// applied) and projects and masks its data. A *Refusal error says why
	// nothing is delivered (a denial is audited here); any other error is
	// the core failing (the batch is retried).
	Deliver(ctx context.Context, sub Subscriber, dataset string, ev *event.Event) (*Delivery, error)
	// Record submits the audit record of a delivery the router is about to
	// produce (it is not called for an event dead-lettered after some of
	// its deliveries were prepared). The router commits the transaction
	// only once the receipt says the record is durable.
	Record(d *Delivery) *audit.Receipt
}

// Subscriber is one consumer system's feed subscription to a dataset.
type Subscriber struct {
	Consumer string
	// Purpose is the purpose code the grant was given for; decisions are
	// asked for it.
	Purpose string
	GrantID string
}

// Delivery is what one subscriber receives of one event.
type Delivery struct {
	// ExchangeID is derived from the event and the consumer, so a batch
	// redone after a crash audits and delivers under the same id.
	ExchangeID string
	// Consumer is the subscriber the delivery is for.
	Consumer string
	// Subject replaces the event's subject for the consumer: the record id
	// may be a field the consumer holds no grant for, or one it receives
	// masked (a personal ID), so consumers get the provider's keyed hash
	// of it, stable per provider, which keeps per-subject order and lets
	// them relate events of one record without learning its id.
	Subject string
	// Data is the event's data projected and masked for the consumer.
	Data []byte
	// Fields are the fields delivered (the decision's allowed fields).
	Fields   []string
	GrantID  string
	Revision string
	// record is the audit record Record submits (the stand-in core's; the
	// exchange core keeps its own).
	record audit.Record
}

// Refusal says why an event is not delivered to a subscriber.
type Refusal struct {
	// Code is denied (the decision refused), out-of-scope (the record is
	// outside the grant's row scope) or poison (the data cannot be
	// projected: the event goes to the dead-letter topic).
	Code   string
	Reason string
}

// Refusal codes.
const (
	RefusedDenied     = "denied"
	RefusedOutOfScope = "out-of-scope"
	RefusedPoison     = "poison"
)

func (r *Refusal) Error() string { return fmt.Sprintf("feed: %s: %s", r.Code, r.Reason) }

// refusalCode returns the code of a *Refusal, or "".
func refusalCode(err error) string {
	var r *Refusal
	if errors.As(err, &r) {
		return r.Code
	}
	return ""
}
