package gateway

import (
	"context"
	"crypto/x509"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"strconv"
	"sync"
	"time"

	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/lienthong/lienthong/gateway/feed"
	"github.com/lienthong/lienthong/gateway/feed/broker"
	"github.com/lienthong/lienthong/gateway/feed/event"
	"github.com/lienthong/lienthong/internal/problem"
)

// FeedsConfig connects the gateway to Kafka for change feeds.
type FeedsConfig struct {
	Kafka broker.Config `json:"kafka"`
	// DeliveryTimeout bounds how long a publish waits for Kafka to
	// acknowledge a batch before answering 503 (default 10s).
	DeliveryTimeout Duration `json:"deliveryTimeout,omitempty"`
	// Router, when set, runs the feed router of one of the member's
	// provider systems inside the gateway (see FeedRouterConfig).
	Router *FeedRouterConfig `json:"router,omitempty"`
}

// deliveryTimeout is DeliveryTimeout, 10 s when unset.
func (c *FeedsConfig) deliveryTimeout() time.Duration {
	if c.DeliveryTimeout.Duration <= 0 {
		return 10 * time.Second
	}
	return c.DeliveryTimeout.Duration
}

// MaxEventsPerBatch bounds one POST /feeds/{dataset}/events.
const MaxEventsPerBatch = 500

// publisher holds the gateway's Kafka producer and the checked datasets,
// made on first use.
type publisher struct {
	once     sync.Once
	err      error
	cl       *kgo.Client
	mu       sync.Mutex
	datasets map[string]*feed.Dataset // by document digest
}

// servePublish answers POST /feeds/{dataset}/events: a provider system
// publishes a batch of change events of one of its datasets. The whole
// batch is checked first (each event against the dataset's schema and
// declared types) and refused whole if one is wrong; it is answered 202
// only once Kafka has acknowledged every event (acks=all, idempotent
// producer), and 503 with Retry-After when Kafka cannot take it.
func (g *Gateway) servePublish(w http.ResponseWriter, r *http.Request) {
	fail := func(status int, kind, detail string, errs ...problem.FieldError) {
		p := problem.New(status, kind, detail)
		p.Errors = errs
		problem.Write(w, r, p)
	}
	var chain []*x509.Certificate
	if r.TLS != nil {
		chain = r.TLS.PeerCertificates
	}
	caller, ref := g.core.Caller(chain)
	if ref != nil {
		ref.Instance = r.URL.Path
		writeRefusal(w, ref)
		return
	}
	st := g.sync.current.Load()
	code := r.PathValue("dataset")
	ds, ok := st.documents[caller+"/"+code]
	if !ok {
		fail(http.StatusForbidden, "not-the-provider", fmt.Sprintf("system %s publishes no dataset %q at this gateway", caller, code))
		return
	}
	if g.cfg.Feeds == nil {
		fail(http.StatusNotFound, "feeds-not-configured", "this gateway has no Kafka configured for change feeds")
		return
	}
	pub := g.feedPublisher()
	if pub.err != nil {
		fail(http.StatusServiceUnavailable, "feeds-unavailable", "the change-feed producer could not be started")
		return
	}
	checker, err := pub.dataset(r.Context(), caller, ds)
	if err != nil {
		g.log.Error("feed dataset", "dataset", caller+"/"+code, "error", err.Error())
		fail(http.StatusInternalServerError, "internal", "the dataset's document could not be prepared for feeds")
		return
	}
	body, err := io.ReadAll(http.MaxBytesReader(w, r.Body, 64<<20))
	if err != nil {
		fail(http.StatusRequestEntityTooLarge, "too-large", "the batch exceeds 64 MiB")
		return
	}
	var raws []json.RawMessage
	if err := json.Unmarshal(body, &raws); err != nil {
		fail(http.StatusBadRequest, "invalid-batch", "the body must be a JSON array of CloudEvents (structured JSON)",
			problem.FieldError{Pointer: "", Message: "not a JSON array"})
		return
	}
	if len(raws) == 0 || len(raws) > MaxEventsPerBatch {
		fail(http.StatusBadRequest, "invalid-batch", fmt.Sprintf("a batch holds 1 to %d events; this one holds %d", MaxEventsPerBatch, len(raws)))
		return
	}
	recs := make([]*kgo.Record, len(raws))
	topic := broker.PublishTopic(caller, code)
	for i, raw := range raws {
		ev, err := event.Parse(raw)
		if err == nil {
			err = checker.Check(ev)
		}
		var value []byte
		if err == nil {
			value, err = ev.Marshal()
		}
		if err != nil {
			var e *event.Error
			pointer, msg := "/"+strconv.Itoa(i), "invalid event"
			if errors.As(err, &e) {
				pointer, msg = pointer+e.Pointer, e.Reason
			}
			fail(http.StatusUnprocessableEntity, "invalid-event",
				fmt.Sprintf("event %d of the batch is refused, and with it the whole batch; nothing was published", i),
				problem.FieldError{Pointer: pointer, Message: msg})
			return
		}
		recs[i] = &kgo.Record{Topic: topic, Key: []byte(ev.Subject), Value: value}
	}
	ctx, cancel := context.WithTimeout(r.Context(), g.cfg.Feeds.deliveryTimeout())
	defer cancel()
	if err := produceAll(ctx, pub.cl, recs); err != nil {
		g.log.Warn("feed publish not acknowledged", "dataset", caller+"/"+code, "events", len(recs), "error", err.Error())
		w.Header().Set("Retry-After", "5")
		fail(http.StatusServiceUnavailable, "broker-unavailable", "Kafka did not acknowledge the batch; nothing is confirmed, publish it again (events are identified by id)")
		return
	}
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(http.StatusAccepted)
	_ = json.NewEncoder(w).Encode(map[string]any{"accepted": len(recs), "topic": topic})
}

func (g *Gateway) feedPublisher() *publisher {
	p := &g.feeds
	p.once.Do(func() {
		opts, err := g.cfg.Feeds.Kafka.Options()
		if err != nil {
			p.err = err
			return
		}
		p.cl, p.err = kgo.NewClient(append(append(opts, broker.ProducerOptions()...),
			kgo.RecordDeliveryTimeout(g.cfg.Feeds.deliveryTimeout()))...)
		p.datasets = map[string]*feed.Dataset{}
	})
	return p
}

func (p *publisher) dataset(ctx context.Context, provider string, ds *dataset) (*feed.Dataset, error) {
	p.mu.Lock()
	defer p.mu.Unlock()
	if d, ok := p.datasets[ds.info.Digest]; ok {
		return d, nil
	}
	d, err := feed.NewDataset(ctx, provider, ds.document)
	if err != nil {
		return nil, err
	}
	p.datasets[ds.info.Digest] = d
	return d, nil
}

// produceAll produces recs and waits until Kafka acknowledged every one, or
// one failed, or ctx ended (franz-go keeps retrying a buffered record past
// its caller's context, so the wait is bounded here: a record acknowledged
// after the 503 is published twice at most, under the same event id).
func produceAll(ctx context.Context, cl *kgo.Client, recs []*kgo.Record) error {
	done := make(chan error, len(recs))
	for _, r := range recs {
		cl.Produce(ctx, r, func(_ *kgo.Record, err error) { done <- err })
	}
	for range recs {
		select {
		case err := <-done:
			if err != nil {
				return err
			}
		case <-ctx.Done():
			return ctx.Err()
		}
	}
	return nil
}
