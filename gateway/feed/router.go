package feed

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"runtime"
	"sync"
	"time"

	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/lienthong/lienthong/gateway/feed/broker"
	"github.com/lienthong/lienthong/gateway/feed/event"
)

// Record headers the router writes on every delivered record.
const (
	HeaderExchangeID = "lienthong-exchange-id"
	HeaderRevision   = "lienthong-policy-revision"
	HeaderGrant      = "lienthong-grant"
	// HeaderReason is on dead-letter records: why the event was not routed.
	HeaderReason = "lienthong-reason"
)

// Router routes the provider topics of one provider's datasets.
type Router struct {
	id       string
	core     Core
	kafka    []kgo.Opt
	byTopic  map[string]*Dataset
	log      *slog.Logger
	maxBatch int
	workers  int
	backoff  time.Duration
	// txnTimeout bounds how long a transaction may stay open on the broker
	// after the router dies in it (a restart aborts it sooner).
	txnTimeout time.Duration
}

// RouterConfig are the router's parts.
type RouterConfig struct {
	// ID names the router: its transactional id and its static group
	// member id. A restarted router must keep its id, so the broker fences
	// the dead one and aborts its open transaction.
	ID       string
	Core     Core
	Kafka    broker.Config
	Datasets []*Dataset
	Log      *slog.Logger
	// MaxBatch bounds the events of one transaction (default 1000).
	MaxBatch int
	// TransactionTimeout (default 30s).
	TransactionTimeout time.Duration
}

// NewRouter prepares a router; Run starts it.
func NewRouter(cfg RouterConfig) (*Router, error) {
	if cfg.ID == "" {
		return nil, errors.New("feed: the router needs an id")
	}
	opts, err := cfg.Kafka.Options()
	if err != nil {
		return nil, err
	}
	r := &Router{id: cfg.ID, core: cfg.Core, kafka: opts, byTopic: map[string]*Dataset{}, log: cfg.Log,
		maxBatch: cfg.MaxBatch, backoff: time.Second, workers: max(2, runtime.GOMAXPROCS(0)), txnTimeout: cfg.TransactionTimeout}
	if r.log == nil {
		r.log = slog.Default()
	}
	if r.maxBatch <= 0 {
		r.maxBatch = 1000
	}
	if r.txnTimeout <= 0 {
		r.txnTimeout = 30 * time.Second
	}
	for _, d := range cfg.Datasets {
		r.byTopic[broker.PublishTopic(d.Provider, d.Code)] = d
	}
	if len(r.byTopic) == 0 {
		return nil, errors.New("feed: the router has no datasets")
	}
	return r, nil
}

// Run routes until ctx ends. A broker outage pauses it: a session that
// fails is closed (its transaction aborted, so nothing half-done is ever
// read) and a new one resumes from the committed offsets.
func (r *Router) Run(ctx context.Context) error {
	for ctx.Err() == nil {
		err := r.session(ctx)
		if ctx.Err() != nil {
			return nil
		}
		r.log.Warn("feed router paused; retrying", "error", err.Error(), "retry_in", r.backoff)
		select {
		case <-ctx.Done():
		case <-time.After(r.backoff):
		}
	}
	return nil
}

// session runs one transactional session until it fails or ctx ends.
func (r *Router) session(ctx context.Context) error {
	topics := make([]string, 0, len(r.byTopic))
	for t := range r.byTopic {
		topics = append(topics, t)
	}
	opts := append(append([]kgo.Opt{}, r.kafka...), broker.ProducerOptions()...)
	opts = append(opts,
		kgo.TransactionalID(r.id),
		kgo.TransactionTimeout(r.txnTimeout),
		kgo.ConsumerGroup("lienthong-feed-router."+r.id),
		kgo.InstanceID(r.id),
		kgo.SessionTimeout(10*time.Second),
		kgo.ConsumeTopics(topics...),
		kgo.FetchIsolationLevel(kgo.ReadCommitted()),
		kgo.RequireStableFetchOffsets(),
		kgo.FetchMaxWait(100*time.Millisecond),
	)
	sess, err := kgo.NewGroupTransactSession(opts...)
	if err != nil {
		return fmt.Errorf("feed: kafka session: %w", err)
	}
	defer sess.Close()
	for ctx.Err() == nil {
		fetches := sess.PollRecords(ctx, r.maxBatch)
		if ctx.Err() != nil {
			return nil
		}
		var fetchErr error
		fetches.EachError(func(topic string, p int32, err error) {
			if !errors.Is(err, context.Canceled) {
				fetchErr = fmt.Errorf("fetch %s/%d: %w", topic, p, err)
			}
		})
		recs := fetches.Records()
		if len(recs) == 0 {
			if fetchErr != nil {
				return fetchErr
			}
			continue
		}
		if err := r.batch(ctx, sess, recs); err != nil {
			return err
		}
	}
	return nil
}

// batch routes recs in one transaction: every delivery, every dead letter
// and the consumed offsets commit together or not at all.
func (r *Router) batch(ctx context.Context, sess *kgo.GroupTransactSession, recs []*kgo.Record) error {
	began := time.Now()
	if err := sess.Begin(); err != nil {
		return fmt.Errorf("feed: begin transaction: %w", err)
	}
	var (
		mu         sync.Mutex
		produceErr error
		receipts   []auditReceipt
	)
	promise := func(_ *kgo.Record, err error) {
		if err != nil {
			mu.Lock()
			produceErr = errors.Join(produceErr, err)
			mu.Unlock()
		}
	}
	// Records are routed concurrently (each is independent) and produced
	// in their consumed order, which keeps every subject's order.
	type routed struct {
		out []*kgo.Record
		rs  []auditReceipt
		err error
	}
	// One policy revision decides the whole batch, so within a partition
	// revisions only move forward: an event after one decided by a new
	// revision is never decided by an older one.
	view, err := r.core.View(ctx)
	if err != nil {
		_, _ = sess.End(ctx, kgo.TryAbort)
		return err
	}
	results := make([]routed, len(recs))
	var wg sync.WaitGroup
	workers := min(r.workers, len(recs))
	for w := 0; w < workers; w++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := w; i < len(recs); i += workers {
				res := &results[i]
				res.out, res.rs, res.err = r.route(ctx, view, recs[i])
			}
		}()
	}
	wg.Wait()
	routedOnly := time.Now()
	var routeErr error
	for _, res := range results {
		if res.err != nil {
			routeErr = res.err
			break
		}
		receipts = append(receipts, res.rs...)
		for _, o := range res.out {
			sess.Produce(ctx, o, promise)
		}
	}
	// Every record must be acknowledged before the commit is even tried:
	// a transaction with a failed produce is aborted, never committed.
	if routeErr == nil {
		if err := sess.Client().Flush(ctx); err != nil {
			routeErr = fmt.Errorf("feed: flush: %w", err)
		}
		mu.Lock()
		if produceErr != nil {
			routeErr = fmt.Errorf("feed: produce: %w", produceErr)
		}
		mu.Unlock()
	}
	produced := time.Now()
	commit := kgo.TryCommit
	if routeErr == nil {
		// The deliveries are acknowledged only by the commit, so their
		// audit records must be durable before it.
		wctx, cancel := context.WithTimeout(ctx, 30*time.Second)
		for _, rc := range receipts {
			if err := rc.Wait(wctx); err != nil {
				routeErr = fmt.Errorf("feed: audit: %w", err)
				break
			}
		}
		cancel()
	}
	if routeErr != nil {
		commit = kgo.TryAbort
	}
	routedAt := time.Now()
	committed, err := sess.End(ctx, commit)
	r.log.Debug("feed batch", "events", len(recs), "route_ms", routedOnly.Sub(began).Milliseconds(), "produce_ms", produced.Sub(routedOnly).Milliseconds(), "audit_ms", routedAt.Sub(produced).Milliseconds(), "end_ms", time.Since(routedAt).Milliseconds())
	switch {
	case err != nil:
		return fmt.Errorf("feed: end transaction: %w", err)
	case routeErr != nil:
		return routeErr
	case !committed:
		r.log.Info("feed transaction aborted (rebalance); redoing from the committed offsets")
	}
	return nil
}

type auditReceipt interface {
	Wait(context.Context) error
}

// route turns one provider record into the records of its consumers, or a
// dead letter. An error means the core failed: the batch is aborted.
func (r *Router) route(ctx context.Context, view View, rec *kgo.Record) ([]*kgo.Record, []auditReceipt, error) {
	ds := r.byTopic[rec.Topic]
	if ds == nil {
		return nil, nil, fmt.Errorf("feed: record from unexpected topic %s", rec.Topic)
	}
	ev, err := event.Parse(rec.Value)
	if err == nil {
		err = ds.Check(ev)
	}
	if err != nil {
		return []*kgo.Record{r.deadLetter(ds, rec, "invalid event: "+err.Error())}, nil, nil
	}
	// Every delivery is prepared before any is recorded, so an event that
	// turns out to be poison for one subscriber leaves no audit record of
	// deliveries to the others that never happen.
	var deliveries []*Delivery
	for _, sub := range view.Subscribers(ds.Provider, ds.Code) {
		d, err := view.Deliver(ctx, sub, ds.Code, ev)
		switch refusalCode(err) {
		case "":
			if err != nil {
				return nil, nil, err
			}
			deliveries = append(deliveries, d)
		case RefusedPoison:
			return []*kgo.Record{r.deadLetter(ds, rec, err.Error())}, nil, nil
		}
	}
	var out []*kgo.Record
	var receipts []auditReceipt
	var envelope []byte
	for _, d := range deliveries {
		if envelope == nil {
			// The envelope is the same for every consumer: written once,
			// each consumer's data spliced in.
			bare := *ev
			bare.Subject, bare.Data = d.Subject, json.RawMessage(`{}`)
			b, err := bare.Marshal()
			if err != nil || !bytes.HasSuffix(b, []byte(`"data":{}}`)) {
				return []*kgo.Record{r.deadLetter(ds, rec, "the delivered event cannot be written")}, nil, nil
			}
			envelope = b[:len(b)-3]
		}
		value := make([]byte, 0, len(envelope)+len(d.Data)+1)
		value = append(append(append(value, envelope...), d.Data...), '}')
		out = append(out, &kgo.Record{
			Topic: broker.DeliverTopic(d.Consumer, ds.Provider, ds.Code),
			Key:   []byte(d.Subject),
			Value: value,
			Headers: []kgo.RecordHeader{
				{Key: HeaderExchangeID, Value: []byte(d.ExchangeID)},
				{Key: HeaderRevision, Value: []byte(d.Revision)},
				{Key: HeaderGrant, Value: []byte(d.GrantID)},
			},
		})
	}
	for _, d := range deliveries {
		receipts = append(receipts, view.Record(d))
	}
	return out, receipts, nil
}

// deadLetter keeps an event the router could not route, with the reason,
// for the provider's operator; the partition moves on.
func (r *Router) deadLetter(ds *Dataset, rec *kgo.Record, reason string) *kgo.Record {
	r.log.Warn("feed event dead-lettered", "topic", rec.Topic, "partition", rec.Partition, "offset", rec.Offset, "reason", reason)
	return &kgo.Record{
		Topic: broker.DeadLetterTopic(ds.Provider, ds.Code),
		Key:   rec.Key,
		Value: rec.Value,
		Headers: []kgo.RecordHeader{
			{Key: HeaderReason, Value: []byte(reason)},
			{Key: "lienthong-source", Value: fmt.Appendf(nil, "%s/%d/%d", rec.Topic, rec.Partition, rec.Offset)},
		},
	}
}
