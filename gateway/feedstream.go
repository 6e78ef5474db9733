package gateway

import (
	"context"
	"crypto/x509"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kgo"
	"github.com/twmb/franz-go/pkg/kmsg"

	"github.com/lienthong/lienthong/audit"
	"github.com/lienthong/lienthong/catalog"
	"github.com/lienthong/lienthong/gateway/feed"
	"github.com/lienthong/lienthong/gateway/feed/broker"
	"github.com/lienthong/lienthong/internal/problem"
)

// serveFeedStream answers GET /feeds/{provider}/{dataset} on the outbound
// listener: the calling system's own feed of a dataset (its topic
// deliver.<caller>.<provider>.<dataset>, as the provider's router wrote
// it, read_committed) as Server-Sent Events, for agencies that run no
// Kafka client. Each event's SSE id is a cursor naming the next offset of
// every partition read so far; sending it back as Last-Event-ID resumes
// right after that event, with nothing skipped or repeated.
func (g *Gateway) serveFeedStream(w http.ResponseWriter, r *http.Request) {
	fail := func(status int, kind, detail string) { problem.Write(w, r, problem.New(status, kind, detail)) }
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
	if g.cfg.Feeds == nil {
		fail(http.StatusNotFound, "feeds-not-configured", "this gateway has no Kafka configured for change feeds")
		return
	}
	cursor, err := parseCursor(r.Header.Get("Last-Event-ID"))
	if err != nil {
		fail(http.StatusBadRequest, "invalid-last-event-id", err.Error())
		return
	}
	topic := broker.DeliverTopic(caller, r.PathValue("provider"), r.PathValue("dataset"))
	opts, err := g.cfg.Feeds.Kafka.Options()
	if err != nil {
		fail(http.StatusServiceUnavailable, "feeds-unavailable", "the change-feed client could not be started")
		return
	}
	ctx, cancel := context.WithTimeout(r.Context(), 10*time.Second)
	partitions, err := topicPartitions(ctx, opts, topic)
	cancel()
	switch {
	case errors.Is(err, kerr.UnknownTopicOrPartition):
		fail(http.StatusNotFound, "no-feed", "no feed of this dataset has been delivered to "+caller)
		return
	case err != nil:
		w.Header().Set("Retry-After", "5")
		fail(http.StatusServiceUnavailable, "broker-unavailable", "Kafka could not be reached")
		return
	}
	start := map[int32]kgo.Offset{}
	for _, p := range partitions {
		if off, ok := cursor[p]; ok {
			start[p] = kgo.NewOffset().At(off)
		} else {
			start[p] = kgo.NewOffset().AtStart()
		}
	}
	cl, err := kgo.NewClient(append(opts, kgo.ConsumePartitions(map[string]map[int32]kgo.Offset{topic: start}),
		kgo.FetchIsolationLevel(kgo.ReadCommitted()), kgo.FetchMaxWait(500*time.Millisecond))...)
	if err != nil {
		fail(http.StatusServiceUnavailable, "feeds-unavailable", "the change-feed client could not be started")
		return
	}
	defer cl.Close()
	w.Header().Set("Content-Type", "text/event-stream")
	w.Header().Set("Cache-Control", "no-store")
	w.WriteHeader(http.StatusOK)
	rc := http.NewResponseController(w)
	_ = rc.Flush()
	for r.Context().Err() == nil {
		pctx, cancel := context.WithTimeout(r.Context(), 15*time.Second)
		fs := cl.PollFetches(pctx)
		cancel()
		_ = rc.SetWriteDeadline(time.Now().Add(30 * time.Second))
		recs := fs.Records()
		// Each event is recorded on this side too before it is passed on.
		receipts := make([]*audit.Receipt, 0, len(recs))
		for _, rec := range recs {
			a := g.feedRecord(caller, r.PathValue("provider"), r.PathValue("dataset"), rec)
			receipts = append(receipts, g.sink.Submit(&a, audit.CommitSoon))
		}
		for _, rc := range receipts {
			if err := rc.Wait(r.Context()); err != nil {
				g.log.Error("feed stream: audit record refused; closing the stream", "error", err.Error())
				return
			}
		}
		n := 0
		for _, rec := range recs {
			cursor[rec.Partition] = rec.Offset + 1
			// A delivered event is one line of JSON; the data field cannot
			// hold a newline, so one SSE data line carries it whole.
			fmt.Fprintf(w, "id: %s\nevent: change\ndata: %s\n\n", formatCursor(cursor), strings.ReplaceAll(string(rec.Value), "\n", ""))
			n++
		}
		if n == 0 {
			fmt.Fprint(w, ": keep-alive\n\n")
		}
		if rc.Flush() != nil {
			return
		}
	}
}

// topicPartitions asks the brokers for a topic's partitions.
func topicPartitions(ctx context.Context, opts []kgo.Opt, topic string) ([]int32, error) {
	cl, err := kgo.NewClient(opts...)
	if err != nil {
		return nil, err
	}
	defer cl.Close()
	req := kmsg.NewPtrMetadataRequest()
	t := kmsg.NewMetadataRequestTopic()
	t.Topic = kmsg.StringPtr(topic)
	req.Topics = append(req.Topics, t)
	req.AllowAutoTopicCreation = false
	resp, err := req.RequestWith(ctx, cl)
	if err != nil {
		return nil, err
	}
	if len(resp.Topics) != 1 {
		return nil, errors.New("metadata: no answer for the topic")
	}
	if err := kerr.ErrorForCode(resp.Topics[0].ErrorCode); err != nil {
		return nil, err
	}
	var ps []int32
	for _, p := range resp.Topics[0].Partitions {
		ps = append(ps, p.Partition)
	}
	slices.Sort(ps)
	return ps, nil
}

// maxCursorPartitions bounds a Last-Event-ID.
const maxCursorPartitions = 1024

// parseCursor reads "p:offset,p:offset" ("" is the start of every partition).
func parseCursor(s string) (map[int32]int64, error) {
	c := map[int32]int64{}
	if s == "" {
		return c, nil
	}
	parts := strings.Split(s, ",")
	if len(parts) > maxCursorPartitions {
		return nil, errors.New("Last-Event-ID names too many partitions")
	}
	for _, part := range parts {
		ps, os, ok := strings.Cut(part, ":")
		p, err1 := strconv.ParseInt(ps, 10, 32)
		off, err2 := strconv.ParseInt(os, 10, 64)
		if !ok || err1 != nil || err2 != nil || p < 0 || off < 0 {
			return nil, errors.New(`Last-Event-ID must be an id this gateway sent ("<partition>:<offset>,…")`)
		}
		if _, dup := c[int32(p)]; dup {
			return nil, errors.New("Last-Event-ID names a partition twice")
		}
		c[int32(p)] = off
	}
	return c, nil
}

func formatCursor(c map[int32]int64) string {
	ps := make([]int32, 0, len(c))
	for p := range c {
		ps = append(ps, p)
	}
	slices.Sort(ps)
	var b strings.Builder
	for i, p := range ps {
		if i > 0 {
			b.WriteByte(',')
		}
		fmt.Fprintf(&b, "%d:%d", p, c[p])
	}
	return b.String()
}

// feedRecord is the consumer side's audit record of one streamed event,
// under the exchange id the provider's router gave the delivery.
func (g *Gateway) feedRecord(consumer, provider, dataset string, rec *kgo.Record) audit.Record {
	a := audit.Record{Time: time.Now().UTC(), Side: "consumer", Phase: audit.Outcome, Consumer: consumer, Provider: provider,
		Dataset: dataset, Mode: string(catalog.ModeFeed), Status: http.StatusOK, Bytes: int64(len(rec.Value))}
	for _, h := range rec.Headers {
		switch h.Key {
		case feed.HeaderExchangeID:
			a.ExchangeID = string(h.Value)
		case feed.HeaderRevision:
			a.PolicyRevision = string(h.Value)
		case feed.HeaderGrant:
			a.GrantID = string(h.Value)
		}
	}
	var ev struct {
		Subject string                     `json:"subject"`
		Data    map[string]json.RawMessage `json:"data"`
	}
	if json.Unmarshal(rec.Value, &ev) == nil {
		a.Subject = ev.Subject // already the provider's keyed hash
		for k := range ev.Data {
			a.Fields = append(a.Fields, k)
		}
		slices.Sort(a.Fields)
	}
	return a
}
