package exchange

// The feed door's stages. A feed router reads a provider's change events
// and, for each consumer system subscribed to the dataset, has the core
// decide (the same Decide the query door calls, in feed mode), project and
// mask the event's data (the same cached plan and row-scope filter as
// Filter, over data decoded once per event), and record the delivery
// through the same audit sink, under the same subject key. The door itself
// only reads Kafka and writes Kafka.

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"maps"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/lienthong/lienthong/audit"
	"github.com/lienthong/lienthong/catalog"
	"github.com/lienthong/lienthong/gateway/projection"
	"github.com/lienthong/lienthong/policies"
)

// FeedBatch is the core pinned at one snapshot, for one batch of events:
// every event of the batch is decided at the same policy revision, so
// within a partition revisions only move forward and a grant change applies
// from the first batch after the revision that carries it.
type FeedBatch struct {
	c    *Core
	snap *Snapshot
	rev  string

	// mu guards what the batch works out once and keeps: subscribers by
	// dataset, admissions and plans by consumer and dataset.
	mu       sync.Mutex
	subs     map[string][]FeedSubscriber
	admitted map[deliveryKey]admitted
	plans    map[planKey]applied
	// denied holds the refusal of each subscriber (by admission key) whose
	// decision denied in this batch.
	denied map[deliveryKey]*Refusal
}

// FeedSubscriber is one consumer system's subscription to a dataset's feed:
// an active grant in feed mode.
type FeedSubscriber struct {
	Consumer string
	// Purpose is the grant's purpose the decision is asked for (the first
	// in code order when it names several).
	Purpose string
	GrantID string
}

// FeedEvent is what the core needs of one change event.
type FeedEvent struct {
	// Provider is the event's source system; Dataset the dataset code.
	Provider, Dataset string
	// ID is the event id, unique per source.
	ID string
	// Subject is the id of the record the event is about.
	Subject string
}

// FeedDelivery is what one subscriber receives of one event, with the audit
// record Record submits.
type FeedDelivery struct {
	// ExchangeID is derived from the event and the consumer (FeedExchangeID),
	// so a batch redone after a crash delivers and audits under the same id.
	ExchangeID string
	Consumer   string
	// Subject replaces the event's subject for the consumer: the record id
	// may be a field the consumer holds no grant for, or receives masked,
	// so consumers get the provider's keyed hash of it (the Masker's), which
	// keeps per-subject order and relates events of one record without
	// revealing its id.
	Subject string
	// Data is the event's data projected and masked for the consumer.
	Data []byte
	// Fields are the fields the decision allowed.
	Fields   []string
	GrantID  string
	Revision string
	rec      audit.Record
}

// BeginFeedBatch pins the snapshot in force for one batch. It refuses when
// the configuration is missing or stale, as Admit does: the door then pauses
// and delivers nothing, rather than deciding with an old policy.
func (c *Core) BeginFeedBatch() (*FeedBatch, *Refusal) {
	snap, ref := c.fresh()
	if ref != nil {
		return nil, ref
	}
	return &FeedBatch{c: c, snap: snap, rev: snap.Engine.Revision(),
		subs: map[string][]FeedSubscriber{}, admitted: map[deliveryKey]admitted{}, plans: map[planKey]applied{},
		denied: map[deliveryKey]*Refusal{}}, nil
}

// Revision is the policy revision the batch is decided at.
func (b *FeedBatch) Revision() string { return b.rev }

// Subscribers lists, sorted by consumer, the consumer systems holding an
// active grant in feed mode on the dataset within its validity, whose
// system is not revoked. A revoked grant is absent from the policy data of
// the revision that revokes it, so it stops here. The decision checks
// everything else (level, assessment, purpose) for each event.
func (b *FeedBatch) Subscribers(provider, dataset string) []FeedSubscriber {
	ref := provider + "/" + dataset
	b.mu.Lock()
	defer b.mu.Unlock()
	if subs, ok := b.subs[ref]; ok {
		return subs
	}
	var subs []FeedSubscriber
	if pd := b.snap.Policy; pd != nil {
		now := b.c.cfg.Now().UnixNano()
		for consumer, byRef := range pd.Grants {
			if b.snap.RevokedSystem[consumer] {
				continue
			}
			var best *policies.GrantData
			for id := range byRef[ref] {
				g := byRef[ref][id]
				if !g.Modes[string(catalog.ModeFeed)] || g.State != string(catalog.GrantActive) ||
					now < g.ValidFrom || now >= g.ValidUntil || len(g.Purposes) == 0 {
					continue
				}
				if best == nil || g.ID < best.ID {
					best = &g
				}
			}
			if best == nil {
				continue
			}
			purposes := make([]string, 0, len(best.Purposes))
			for p := range best.Purposes {
				purposes = append(purposes, p)
			}
			slices.Sort(purposes)
			subs = append(subs, FeedSubscriber{Consumer: consumer, Purpose: purposes[0], GrantID: best.ID})
		}
	}
	slices.SortFunc(subs, func(x, y FeedSubscriber) int { return strings.Compare(x.Consumer, y.Consumer) })
	b.subs[ref] = subs
	return subs
}

// FeedData is one event ready for its subscribers: its data decoded and
// validated once, and the names of its subject, worked out once.
type FeedData struct {
	ev   FeedEvent
	recs *projection.Records
	// subject names the data subject in audit records (the subject key);
	// keyed names it to consumers (the provider's masking key).
	subject, keyed string
	hash           string
	// size is the data's length in bytes.
	size int
}

// DecodeEvent decodes and validates an event's data once, against the
// dataset as this batch's snapshot publishes it, for every subscriber's
// projection. It refuses (not recorded: no consumer is involved yet) data
// that is not one record object of the dataset's schema, or a dataset the
// snapshot does not publish; such an event can never be delivered.
func (b *FeedBatch) DecodeEvent(ev FeedEvent, data []byte) (*FeedData, *Refusal) {
	ds := b.snap.Datasets[ev.Provider+"/"+ev.Dataset]
	if ds == nil {
		return nil, refusal(statusNotFound, KindUnknownDataset, "the configuration in force publishes no dataset "+ev.Provider+"/"+ev.Dataset)
	}
	if t := bytes.TrimLeft(data, " \t\r\n"); len(t) == 0 || t[0] != '{' {
		return nil, refusal(statusBadRequest, KindInvalidInput, "the event's data is not one record object")
	}
	recs, err := projection.Decode(bytes.NewReader(data), projection.Options{MaxBytes: b.c.cfg.MaxResponseBytes, Validator: ds.Validator})
	if err != nil {
		detail := "the event's data does not match the dataset (" + projectionFault(err) + ")"
		// Where and which rule, for the provider's operator: schema
		// pointers and keywords, never a value.
		var re *projection.RecordError
		if errors.As(err, &re) && len(re.Problems) > 0 {
			p := re.Problems[0]
			detail += ": /data" + p.Pointer
			if p.Keyword != "" {
				detail += " (" + p.Keyword + ")"
			}
		}
		return nil, refusal(statusBadRequest, KindInvalidInput, detail)
	}
	return &FeedData{ev: ev, recs: recs, subject: b.c.subject(ev.Subject),
		keyed: b.c.cfg.Masker.Hash([]byte(strconv.Quote(ev.Subject))), hash: FeedEventHash(ev.Provider, ev.ID), size: len(data)}, nil
}

// Deliver admits the delivery as AdmitDelivery does (at the batch's
// snapshot, once per subscriber and dataset: admission reads nothing of the
// event), decides the event for the subscriber with Decide (mode feed), and
// projects and masks its decoded data with the decision's cached plan and
// row scope. A refused admission or decision is recorded, as for a query,
// once per batch and subscriber.
// A record outside the grant's row scope is refused with KindNotFound and a
// projection that fails with KindBadBackendAnswer, neither recorded: nothing
// reached the consumer. The delivery's record is submitted by Record.
func (b *FeedBatch) Deliver(ctx context.Context, sub FeedSubscriber, fd *FeedData) (*FeedDelivery, *Refusal) {
	c := b.c
	key := admissionKey(sub, fd.ev)
	x, ref := b.admit(ctx, sub, fd.ev, key)
	if ref != nil {
		return nil, ref
	}
	x.rec.Subject, x.rec.RequestHash = fd.subject, fd.hash
	// A feed decision reads nothing of the event, so a subscriber denied
	// once is denied for the rest of the batch: the denial is decided and
	// recorded (a durable write) once per batch, not once per event.
	b.mu.Lock()
	denied := b.denied[key]
	b.mu.Unlock()
	if denied != nil {
		return nil, denied
	}
	d, ref := c.Decide(ctx, x, nil)
	if ref == nil && len(d.Fields) == 0 {
		ref = c.Refuse(ctx, x, statusForbidden, KindAccessDenied, "the decision allows no field of the feed")
	}
	if ref != nil {
		if ref.Kind == KindAccessDenied {
			b.mu.Lock()
			b.denied[key] = ref
			b.mu.Unlock()
		}
		return nil, ref
	}
	plan, keep, err := b.projector(x)
	if err != nil {
		c.cfg.Log.Error("projection plan refused the decision", "exchange", x.rec.ExchangeID, "fault", "plan")
		return nil, refusal(statusInternalServerError, KindInternal, "the decision could not be applied")
	}
	var buf bytes.Buffer
	// The projection is at most about the event's data in size (masks
	// aside): one allocation instead of a growing buffer's several.
	buf.Grow(fd.size)
	stats, err := plan.ProjectRecords(&buf, fd.recs, keep)
	if err != nil {
		return nil, refusal(statusBadGateway, KindBadBackendAnswer, "the event's data cannot be projected ("+projectionFault(err)+")")
	}
	if stats.Records == 0 {
		return nil, refusal(statusNotFound, KindNotFound, "the record is outside the grant's row scope")
	}
	x.rec.Time = c.cfg.Now().UTC()
	x.rec.Phase, x.rec.Status = audit.Outcome, statusOK
	x.rec.Fields, x.rec.Bytes = d.Fields, int64(buf.Len())
	x.rec.LatencyMS = float64(time.Since(x.start).Microseconds()) / 1000
	return &FeedDelivery{
		ExchangeID: x.rec.ExchangeID, Consumer: sub.Consumer, Subject: fd.keyed,
		Data: buf.Bytes(), Fields: d.Fields, GrantID: d.GrantID, Revision: b.rev, rec: x.rec,
	}, nil
}

// admitted is one subscriber's admission at a batch's snapshot: the
// exchange each of its deliveries starts from, or the refusal.
type admitted struct {
	x   *Exchange
	ref *Refusal
}

// admit returns a new exchange for delivering ev to sub, admitted once per
// batch, subscriber and dataset (a refusal is recorded once); key is
// admissionKey(sub, ev).
func (b *FeedBatch) admit(ctx context.Context, sub FeedSubscriber, ev FeedEvent, key deliveryKey) (*Exchange, *Refusal) {
	b.mu.Lock()
	a, ok := b.admitted[key]
	b.mu.Unlock()
	if !ok {
		x, ref := b.c.admitDelivery(ctx, Request{Consumer: sub.Consumer, Provider: ev.Provider, Dataset: ev.Dataset, Purpose: sub.Purpose,
			Mode: catalog.ModeFeed, ExchangeID: FeedExchangeID(ev.Provider, ev.ID, sub.Consumer)}, b.snap)
		a = admitted{x: x, ref: ref}
		b.mu.Lock()
		b.admitted[key] = a
		b.mu.Unlock()
	}
	if a.ref != nil {
		return nil, a.ref
	}
	x := *a.x
	x.start, x.decision, x.intent = time.Now(), nil, nil
	x.rec.ExchangeID, x.rec.Reasons = FeedExchangeID(ev.Provider, ev.ID, sub.Consumer), nil
	return &x, nil
}

// deliveryKey names a subscriber's deliveries of one dataset in a batch.
type deliveryKey struct{ consumer, purpose, provider, dataset string }

// admissionKey is the deliveryKey of sub's deliveries of ev's dataset (a
// struct, not a joined string: it is worked out for every delivery).
func admissionKey(sub FeedSubscriber, ev FeedEvent) deliveryKey {
	return deliveryKey{sub.Consumer, sub.Purpose, ev.Provider, ev.Dataset}
}

// planKey names a consumer's plan of a dataset in a batch.
type planKey struct{ consumer, provider, dataset string }

// applied is a decision's plan and row filter, kept for the batch.
type applied struct {
	grant string
	// fields, masks and scope are the decision the plan was made for.
	fields []string
	masks  map[string]catalog.Mask
	scope  *catalog.RowScope
	plan   *projection.Plan
	keep   func(any) bool
}

// projector is Core.projector (the dataset schema's cached plan and the
// row-scope filter), remembered for the batch per consumer and dataset
// while the decision stays the same, as it does within one revision
// unless an agency module reads the time.
func (b *FeedBatch) projector(x *Exchange) (*projection.Plan, func(any) bool, error) {
	d := x.decision
	key := planKey{x.rec.Consumer, x.rec.Provider, x.rec.Dataset}
	b.mu.Lock()
	a, ok := b.plans[key]
	b.mu.Unlock()
	if ok && a.grant == d.GrantID && a.scope == d.RowScope && slices.Equal(a.fields, d.Fields) && maps.Equal(a.masks, d.Masks) {
		return a.plan, a.keep, nil
	}
	plan, keep, err := b.c.projector(x, true)
	if err != nil {
		return nil, nil, err
	}
	b.mu.Lock()
	b.plans[key] = applied{grant: d.GrantID, fields: d.Fields, masks: d.Masks, scope: d.RowScope, plan: plan, keep: keep}
	b.mu.Unlock()
	return plan, keep, nil
}

// FeedRecords are the audit records of a batch's deliveries, submitted.
type FeedRecords []*audit.Receipt

// Record submits the audit records of deliveries the door is about to make,
// as one group: every record rides the commit the last one asks for, so a
// batch costs one durable write. The door must not acknowledge (commit) the
// deliveries before Wait returns nil.
func (b *FeedBatch) Record(ds []*FeedDelivery) FeedRecords {
	out := make(FeedRecords, len(ds))
	for i, d := range ds {
		commit := audit.CommitSoon
		if i == len(ds)-1 {
			commit = audit.CommitNow
		}
		out[i] = b.c.cfg.Sink.Submit(&d.rec, commit)
	}
	return out
}

// Wait returns once every record is durable, or the first failure.
func (r FeedRecords) Wait(ctx context.Context) error {
	for _, rc := range r {
		if err := rc.Wait(ctx); err != nil {
			return fmt.Errorf("audit record of a delivery: %w", err)
		}
	}
	return nil
}

// FeedExchangeID is the exchange id of one event's delivery to one
// consumer: the same on every attempt, so a redone batch is recognisably
// the same exchange.
func FeedExchangeID(provider, eventID, consumer string) string {
	// Worked out for every delivery: one allocation, the string.
	var in [256]byte
	h := sha256.Sum256(append(append(append(append(append(in[:0], provider...), 0), eventID...), 0), consumer...))
	var id [3 + 32]byte
	copy(id[:], "fx-")
	hex.Encode(id[3:], h[:16])
	return string(id[:])
}

// FeedEventHash binds a delivery's audit record to its event (the request
// hash of a query): SHA-256 of the source and the event id.
func FeedEventHash(provider, eventID string) string {
	h := sha256.Sum256([]byte(provider + "\x00" + eventID))
	return hex.EncodeToString(h[:])
}
