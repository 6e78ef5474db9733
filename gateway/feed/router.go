// Package feed is the feed router: the door of the exchange core
// (gateway/exchange) through which change events reach consumers. It reads
// each dataset's provider topic and, for every consumer system holding an
// active grant in feed mode, has the core decide, project and mask the event
// and record the delivery (exchange.FeedBatch), then writes the result to
// that consumer's topic — all of one batch in one Kafka transaction with the
// consumed offsets, so a crash neither loses nor repeats a delivery. The
// router holds no policy, projection or audit logic of its own.
package feed

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"runtime"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/lienthong/lienthong/gateway/exchange"
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
	core     *exchange.Core
	kafka    []kgo.Opt
	byTopic  map[string]*Dataset
	log      *slog.Logger
	maxBatch int
	workers  int
	lanes    int
	backoff  time.Duration
	// txnTimeout bounds how long a transaction may stay open on the broker
	// after the router dies in it (a restart aborts it sooner).
	txnTimeout time.Duration

	// topics caches deliverTopic.
	topics sync.Map

	events, deliveries, deadLetters, batches atomic.Int64
	// reusedMemory counts the batches written in their lane's memory of
	// the batch before (a test holds reuse to being real and harmless).
	reusedMemory atomic.Int64
	// lagMu guards lag: per provider partition, the events not yet routed
	// as of the last committed batch that read it.
	lagMu sync.Mutex
	lag   map[string]int64
}

// RouterStats counts what the router committed since it started, for
// metrics and health checks. Counts hold no identifier or value.
type RouterStats struct {
	// Events are provider events consumed in committed transactions;
	// Deliveries the consumer records and DeadLetters the dead-lettered
	// events among them; Batches the committed transactions.
	Events, Deliveries, DeadLetters, Batches int64
	// Lag is the number of provider events behind the partitions' high
	// watermarks, summed, as of each partition's last committed batch: the
	// router's backlog.
	Lag int64
}

// Stats returns the router's counters.
func (r *Router) Stats() RouterStats {
	st := RouterStats{Events: r.events.Load(), Deliveries: r.deliveries.Load(), DeadLetters: r.deadLetters.Load(), Batches: r.batches.Load()}
	r.lagMu.Lock()
	for _, n := range r.lag {
		st.Lag += n
	}
	r.lagMu.Unlock()
	return st
}

// Backlog returns, per dataset code, the provider events not yet routed as
// of the last committed batch that read each of its partitions. Every
// subscriber of a dataset shares it: one transaction delivers an event to
// all of them, so a consumer's lag is its dataset's backlog.
func (r *Router) Backlog() map[string]int64 {
	out := map[string]int64{}
	r.lagMu.Lock()
	defer r.lagMu.Unlock()
	for key, n := range r.lag {
		topic := key[:strings.LastIndexByte(key, '/')]
		if d := r.byTopic[topic]; d != nil {
			out[d.Code] += n
		}
	}
	return out
}

// RouterConfig are the router's parts.
type RouterConfig struct {
	// ID names the router: its transactional id and its static group
	// member id. A restarted router must keep its id, so the broker fences
	// the dead one and aborts its open transaction. It may not contain
	// LaneSeparator, which only the ids of its lanes carry, so no router's
	// id is another router's lane.
	ID string
	// Core is the exchange core that decides, projects, masks and audits
	// every delivery.
	Core *exchange.Core
	// Kafka is how the router reaches the cluster (brokers, TLS, SASL).
	Kafka broker.Config
	// Datasets are the datasets whose provider topics are routed.
	Datasets []*Dataset
	// Log receives pauses and dead letters, never event data (default
	// slog.Default()).
	Log *slog.Logger
	// MaxBatch bounds the events of one transaction (default 1000).
	MaxBatch int
	// TransactionTimeout is how long the broker lets a transaction stay
	// open before aborting it (default 30s): what a router that died in
	// one holds its partitions back for, unless it restarts sooner.
	TransactionTimeout time.Duration
	// Lanes is how many transactional sessions route side by side (default
	// DefaultLanes), each a member of the router's consumer group owning
	// its share of the provider partitions, with its own transactional id:
	// while one lane waits for its audit records to be durable and its
	// transaction to commit, another routes. At most MaxLanes. Changing it
	// re-shares the partitions among the lanes; delivery stays exactly
	// once, since every lane reads from the group's committed offsets.
	// After a clean stop no transaction is open; after a crash, the open
	// transaction of a lane no longer started is only aborted by the
	// broker after TransactionTimeout (nothing is lost or repeated; its
	// partitions wait), while a lane started again fences it at once.
	Lanes int
}

// MaxLanes bounds RouterConfig.Lanes: more sessions than a provider topic
// has partitions (the embedded broker makes 3, a real cluster's topics
// rarely more than a few dozen) would sit idle, each holding a connection
// and a transactional id.
const MaxLanes = 64

// LaneSeparator joins a router's id and a lane number into the lane's
// transactional id (lane 0 keeps the router's id). Router ids may not
// contain it, so a lane's id can never be another router's.
const LaneSeparator = "/"

// stopEndTimeout bounds how long a stopping router waits to end its open
// transaction. Ending it lets a restart resume at once; when the broker
// does not answer in this time it is unreachable anyway, and giving up is
// safe: the transaction stays open on the broker, which aborts it when the
// router's next session with the same id starts (fencing) or after
// TransactionTimeout, so nothing it holds is ever read or committed.
const stopEndTimeout = 5 * time.Second

// DefaultLanes is the default number of transactional sessions. One: on
// two cores the router is bound by CPU, and more lanes measured slower
// (docs/feeds.md, Throughput); a machine with cores to spare can give each
// provider partition its own lane.
const DefaultLanes = 1

// NewRouter prepares a router; Run starts it.
func NewRouter(cfg RouterConfig) (*Router, error) {
	if cfg.ID == "" {
		return nil, errors.New("feed: the router needs an id")
	}
	if strings.Contains(cfg.ID, LaneSeparator) {
		return nil, fmt.Errorf("feed: router id %q contains %q, which only the ids of its lanes carry", cfg.ID, LaneSeparator)
	}
	if cfg.Lanes < 0 || cfg.Lanes > MaxLanes {
		return nil, fmt.Errorf("feed: lanes must be between 1 and %d, not %d", MaxLanes, cfg.Lanes)
	}
	if cfg.Core == nil {
		return nil, errors.New("feed: the router needs the exchange core")
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
	r.lanes = cfg.Lanes
	if r.lanes <= 0 {
		r.lanes = DefaultLanes
	}
	for _, d := range cfg.Datasets {
		r.byTopic[broker.PublishTopic(d.Provider, d.Code)] = d
	}
	if len(r.byTopic) == 0 {
		return nil, errors.New("feed: the router has no datasets")
	}
	return r, nil
}

// Run routes until ctx ends, in Lanes sessions side by side. A broker
// outage pauses it: a session that fails is closed (its transaction
// aborted, so nothing half-done is ever read) and a new one resumes from
// the committed offsets.
func (r *Router) Run(ctx context.Context) error {
	var wg sync.WaitGroup
	for lane := range r.lanes {
		wg.Go(func() { r.runLane(ctx, lane) })
	}
	wg.Wait()
	return nil
}

// Group is the Kafka consumer group every lane of the router joins: its
// committed offsets are how far the router has routed.
func (r *Router) Group() string { return "lienthong-feed-router." + r.id }

// LaneIDs are the transactional ids (and static member ids) of the
// router's lanes: lane 0 keeps the router's own id, which a router of one
// session used; lane n is the id, LaneSeparator and "lane" n.
func (r *Router) LaneIDs() []string {
	ids := make([]string, r.lanes)
	for lane := range ids {
		ids[lane] = r.laneID(lane)
	}
	return ids
}

func (r *Router) laneID(lane int) string {
	if lane == 0 {
		return r.id
	}
	return fmt.Sprintf("%s%slane%d", r.id, LaneSeparator, lane)
}

// runLane runs one lane's sessions until ctx ends.
func (r *Router) runLane(ctx context.Context, lane int) {
	for ctx.Err() == nil {
		err := r.session(ctx, r.laneID(lane))
		if ctx.Err() != nil {
			return
		}
		r.log.Warn("feed router paused; retrying", "lane", lane, "error", err.Error(), "retry_in", r.backoff)
		select {
		case <-ctx.Done():
		case <-time.After(r.backoff):
		}
	}
}

// session runs one transactional session of the lane with id until it
// fails or ctx ends.
func (r *Router) session(ctx context.Context, id string) error {
	topics := make([]string, 0, len(r.byTopic))
	for t := range r.byTopic {
		topics = append(topics, t)
	}
	opts := append(append([]kgo.Opt{}, r.kafka...), broker.ProducerOptions()...)
	opts = append(opts,
		kgo.TransactionalID(id),
		kgo.TransactionTimeout(r.txnTimeout),
		kgo.ConsumerGroup(r.Group()),
		kgo.InstanceID(id),
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
	var mem laneMemory
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
		committed, err := r.batch(ctx, sess, recs, &mem)
		if err != nil {
			return err
		}
		if committed {
			r.noteLag(fetches)
		}
	}
	return nil
}

// noteLag records, per partition read by a committed batch, how far its
// last record is behind the partition's high watermark.
func (r *Router) noteLag(fetches kgo.Fetches) {
	r.lagMu.Lock()
	defer r.lagMu.Unlock()
	if r.lag == nil {
		r.lag = map[string]int64{}
	}
	fetches.EachPartition(func(p kgo.FetchTopicPartition) {
		if n := len(p.Records); n > 0 {
			r.lag[fmt.Sprintf("%s/%d", p.Topic, p.Partition)] = max(0, p.HighWatermark-(p.Records[n-1].Offset+1))
		}
	})
}

// batch routes recs in one transaction: every delivery, every dead letter
// and the consumed offsets commit together or not at all. Records are
// routed concurrently (each is independent) and produced as soon as they
// and every record before them are routed, in consumed order, which keeps
// every subject's order. The batch's audit records go to the sink as one
// group, whose one durable write overlaps the flush of the produced records;
// the transaction commits only once both are done. The consumer records
// are written in the lane's memory.
func (r *Router) batch(ctx context.Context, sess *kgo.GroupTransactSession, recs []*kgo.Record, mem *laneMemory) (bool, error) {
	began := time.Now()
	// One policy revision decides the whole batch, so within a partition
	// revisions only move forward: an event after one decided by a new
	// revision is never decided by an older one.
	fb, ref := r.core.BeginFeedBatch()
	if ref != nil {
		return false, fmt.Errorf("feed: %s", ref.Detail)
	}
	if err := sess.Begin(); err != nil {
		return false, fmt.Errorf("feed: begin transaction: %w", err)
	}
	var (
		mu         sync.Mutex
		produceErr error
		// handed counts the records handed to the client, finished
		// those it is done with (their promise called).
		handed   int64
		finished atomic.Int64
	)
	promise := func(_ *kgo.Record, err error) {
		if err != nil {
			mu.Lock()
			produceErr = errors.Join(produceErr, err)
			mu.Unlock()
		}
		finished.Add(1)
	}
	results := make([]routed, len(recs))
	ready := make([]chan struct{}, len(recs))
	for i := range ready {
		ready[i] = make(chan struct{})
	}
	workers := min(r.workers, len(recs))
	mems, reused := mem.begin(workers)
	if reused {
		r.reusedMemory.Add(1)
	}
	for w := 0; w < workers; w++ {
		go func() {
			for i := w; i < len(recs); i += workers {
				results[i] = r.route(ctx, fb, recs[i], &mems[w])
				close(ready[i])
			}
		}()
	}
	var (
		routeErr   error
		deliveries []*exchange.FeedDelivery
		dead       int64
	)
	for i := range recs {
		<-ready[i]
		res := &results[i]
		if routeErr != nil {
			continue // wait for every worker before leaving
		}
		if res.err != nil {
			routeErr = res.err
			continue
		}
		deliveries = append(deliveries, res.deliveries...)
		if res.dead {
			dead++
		}
		for _, o := range res.out {
			handed++
			sess.Produce(ctx, o, promise)
		}
	}
	routed := time.Now()
	var audited exchange.FeedRecords
	if routeErr == nil {
		audited = fb.Record(deliveries)
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
	if routeErr == nil {
		// The deliveries are acknowledged only by the commit, so their
		// audit records must be durable before it.
		wctx, cancel := context.WithTimeout(ctx, 30*time.Second)
		routeErr = audited.Wait(wctx)
		cancel()
	}
	commit := kgo.TryCommit
	if routeErr != nil {
		commit = kgo.TryAbort
	}
	auditedAt := time.Now()
	// The transaction is ended even when ctx has ended (the router
	// stopping): left open, its offsets pending, it would hold back the
	// next session's start until the broker times it out. A stopping
	// router waits for that at most stopEndTimeout (why that is safe: see
	// there).
	ectx, cancelEnd := context.WithTimeout(context.WithoutCancel(ctx), r.txnTimeout)
	stopping := context.AfterFunc(ctx, func() { time.AfterFunc(stopEndTimeout, cancelEnd) })
	committed, err := sess.End(ectx, commit)
	stopping()
	cancelEnd()
	mem.finished(finished.Load() == handed)
	r.log.Debug("feed batch", "events", len(recs), "deliveries", len(deliveries), "route_ms", routed.Sub(began).Milliseconds(),
		"flush_ms", produced.Sub(routed).Milliseconds(), "audit_ms", auditedAt.Sub(produced).Milliseconds(), "end_ms", time.Since(auditedAt).Milliseconds())
	switch {
	case err != nil:
		return false, fmt.Errorf("feed: end transaction: %w", err)
	case routeErr != nil:
		return false, routeErr
	case !committed:
		r.log.Info("feed transaction aborted (rebalance); redoing from the committed offsets")
		return false, nil
	}
	r.events.Add(int64(len(recs)))
	r.deliveries.Add(int64(len(deliveries)))
	r.deadLetters.Add(dead)
	r.batches.Add(1)
	return true, nil
}

// routed is what one provider record becomes: the records to produce and
// the deliveries among them, to audit; or the core failing (err), which
// aborts the batch.
type routed struct {
	out        []*kgo.Record
	deliveries []*exchange.FeedDelivery
	// dead: out is the event's dead letter.
	dead bool
	err  error
}

// route turns one provider record into the records of its consumers, or a
// dead letter. Every delivery is prepared before any is recorded, so an
// event that turns out to be poison for one subscriber leaves no audit
// record of deliveries to the others that never happen. The consumer
// records are written in mem (nil: newly allocated memory).
func (r *Router) route(ctx context.Context, fb *exchange.FeedBatch, rec *kgo.Record, mem *recordMemory) routed {
	ds := r.byTopic[rec.Topic]
	if ds == nil {
		return routed{err: fmt.Errorf("feed: record from unexpected topic %s", rec.Topic)}
	}
	ev, err := event.Parse(rec.Value)
	if err == nil {
		err = ds.CheckEnvelope(ev)
	}
	if err != nil {
		return r.deadLetter(ds, rec, "invalid event: "+err.Error())
	}
	fe := exchange.FeedEvent{Provider: ds.Provider, Dataset: ds.Code, ID: ev.ID, Subject: ev.Subject}
	// The data is decoded and validated once, for every subscriber.
	data, ref := fb.DecodeEvent(fe, ev.Data)
	if ref != nil {
		return r.deadLetter(ds, rec, "invalid event: "+ref.Detail)
	}
	subs := fb.Subscribers(ds.Provider, ds.Code)
	deliveries := make([]*exchange.FeedDelivery, 0, len(subs))
	for _, sub := range subs {
		d, ref := fb.Deliver(ctx, sub, data)
		switch {
		case ref == nil:
			deliveries = append(deliveries, d)
		case ref.Kind == exchange.KindBadBackendAnswer:
			// Poison: the data cannot be projected for this subscriber.
			return r.deadLetter(ds, rec, ref.Detail)
		case ref.Status >= 500:
			// The core failed (policy evaluation, the audit log): the
			// batch is aborted and redone.
			return routed{err: fmt.Errorf("feed: %s: %s", ref.Kind, ref.Detail)}
		default:
			// Refused for this subscriber (denied, recorded by the core)
			// or outside its grant's row scope: nothing for it.
		}
	}
	if len(deliveries) == 0 {
		return routed{}
	}
	// The envelope is the same for every consumer (the subject is the
	// keyed one for all): written once, each consumer's data spliced in.
	bare := *ev
	bare.Subject = deliveries[0].Subject
	var envelope [512]byte
	env := bare.AppendEnvelope(envelope[:0])
	// The records, their headers and their bytes (values, key and header
	// values) are carved from the worker's memory; the key is the same for
	// every consumer.
	if mem == nil {
		mem = &recordMemory{}
	}
	size := len(bare.Subject)
	for _, d := range deliveries {
		size += len(env) + len(d.Data) + 1 + len(d.ExchangeID) + len(d.Revision) + len(d.GrantID)
	}
	buf := mem.bytes.take(size)[:0]
	take := func(from int) []byte { return buf[from:len(buf):len(buf)] }
	buf = append(buf, bare.Subject...)
	key := take(0)
	recs := mem.records.take(len(deliveries))
	headers := mem.headers.take(3 * len(deliveries))
	out := mem.out.take(len(deliveries))
	for i, d := range deliveries {
		from := len(buf)
		buf = append(append(append(buf, env...), d.Data...), '}')
		value := take(from)
		h := headers[3*i : 3*i+3 : 3*i+3]
		from = len(buf)
		buf = append(buf, d.ExchangeID...)
		h[0] = kgo.RecordHeader{Key: HeaderExchangeID, Value: take(from)}
		from = len(buf)
		buf = append(buf, d.Revision...)
		h[1] = kgo.RecordHeader{Key: HeaderRevision, Value: take(from)}
		from = len(buf)
		buf = append(buf, d.GrantID...)
		h[2] = kgo.RecordHeader{Key: HeaderGrant, Value: take(from)}
		recs[i] = kgo.Record{Topic: r.deliverTopic(d.Consumer, ds), Key: key, Value: value, Headers: h}
		out[i] = &recs[i]
	}
	return routed{out: out, deliveries: deliveries}
}

// deliverTopic is broker.DeliverTopic, worked out once per consumer and
// dataset.
func (r *Router) deliverTopic(consumer string, ds *Dataset) string {
	key := topicKey{consumer, ds}
	if t, ok := r.topics.Load(key); ok {
		return t.(string)
	}
	t := broker.DeliverTopic(consumer, ds.Provider, ds.Code)
	r.topics.Store(key, t)
	return t
}

// topicKey names a consumer's topic of a dataset.
type topicKey struct {
	consumer string
	ds       *Dataset
}

// deadLetter keeps an event the router could not route, with the reason,
// for the provider's operator; the partition moves on.
func (r *Router) deadLetter(ds *Dataset, rec *kgo.Record, reason string) routed {
	r.log.Warn("feed event dead-lettered", "topic", rec.Topic, "partition", rec.Partition, "offset", rec.Offset, "reason", reason)
	return routed{dead: true, out: []*kgo.Record{{
		Topic: broker.DeadLetterTopic(ds.Provider, ds.Code),
		Key:   rec.Key,
		Value: rec.Value,
		Headers: []kgo.RecordHeader{
			{Key: HeaderReason, Value: []byte(reason)},
			{Key: "lienthong-source", Value: fmt.Appendf(nil, "%s/%d/%d", rec.Topic, rec.Partition, rec.Offset)},
		},
	}}}
}
