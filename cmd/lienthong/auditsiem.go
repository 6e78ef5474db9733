package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/url"
	"os"
	"strconv"
	"strings"
	"time"

	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/lienthong/lienthong/audit/index"
	"github.com/lienthong/lienthong/controlplane/client"
	"github.com/lienthong/lienthong/gateway/feed/broker"
	"github.com/lienthong/lienthong/internal/durable"
)

// siemOptions say where `lienthong audit export --kafka-topic` sends the
// audit index's records, and where it keeps its place.
type siemOptions struct {
	topic       string
	brokers     string
	kafkaConfig string
	state       string
	poll        time.Duration
	once        bool
}

// kafka is the broker configuration: the file's (the same JSON as the feed
// router's "kafka" object: brokers, tls, sasl), with --kafka-brokers over
// its brokers.
func (o siemOptions) kafka() (broker.Config, error) {
	var cfg broker.Config
	if o.kafkaConfig != "" {
		b, err := os.ReadFile(o.kafkaConfig)
		if err != nil {
			return cfg, fmt.Errorf("--kafka-config: %w", err)
		}
		dec := json.NewDecoder(strings.NewReader(string(b)))
		dec.DisallowUnknownFields()
		if err := dec.Decode(&cfg); err != nil {
			return cfg, fmt.Errorf("--kafka-config %s: %w", o.kafkaConfig, err)
		}
	}
	if o.brokers != "" {
		cfg.Brokers = strings.Split(o.brokers, ",")
	}
	return cfg, nil
}

// exportToKafka follows the control plane's audit feed (GET /v1/audit/feed)
// and produces each record to the topic, keyed by its gateway (so one
// gateway's records keep their order in one partition), with the gateway
// and seq also as headers for the SIEM to drop a repeat. The feed's cursor
// is stored in the state file only once Kafka acknowledged every record
// before it (all in-sync replicas, idempotent producer): after a crash the
// exporter resumes there, so no record is lost, and at most the page in
// flight is produced again. With once it stops when it has caught up;
// otherwise it polls until ctx ends, riding out an unreachable control
// plane or broker.
func exportToKafka(ctx context.Context, c *client.Client, o siemOptions, log *slog.Logger) (int, error) {
	cfg, err := o.kafka()
	if err != nil {
		return 0, err
	}
	opts, err := cfg.Options()
	if err != nil {
		return 0, err
	}
	kc, err := kgo.NewClient(append(append(opts, broker.ProducerOptions()...), kgo.DefaultProduceTopic(o.topic))...)
	if err != nil {
		return 0, fmt.Errorf("kafka: %w", err)
	}
	defer kc.Close()
	cursor := ""
	if b, err := os.ReadFile(o.state); err == nil {
		cursor = strings.TrimSpace(string(b))
	} else if !errors.Is(err, os.ErrNotExist) {
		return 0, fmt.Errorf("--state: %w", err)
	}
	total, backoff := 0, o.poll
	for {
		n, next, err := exportPage(ctx, c, kc, cursor)
		total += n
		if err == nil && next != cursor {
			err = durable.WriteFile(o.state, []byte(next+"\n"), 0o600)
			if err == nil {
				cursor = next
			}
		}
		if ctx.Err() != nil {
			return total, nil // stopped (a signal): the state holds the place
		}
		if err != nil && o.once {
			return total, err
		}
		wait := o.poll
		switch {
		case err != nil:
			// The cursor stays: the page is asked for and produced again.
			log.Warn("audit export to kafka: will retry", "error", err.Error(), "retry_in", backoff.String())
			wait, backoff = backoff, min(2*backoff, time.Minute)
		case n > 0:
			wait, backoff = 0, o.poll // more may be waiting
		case o.once:
			return total, nil
		}
		if wait > 0 {
			select {
			case <-ctx.Done():
				return total, nil
			case <-time.After(wait):
			}
		}
	}
}

// exportPage produces one page of the feed after cursor and returns how
// many records it produced and the cursor after them.
func exportPage(ctx context.Context, c *client.Client, kc *kgo.Client, cursor string) (int, string, error) {
	var page index.FeedPage
	if err := c.Do(ctx, http.MethodGet, "/v1/audit/feed?limit=1000&cursor="+url.QueryEscape(cursor), nil, &page); err != nil {
		return 0, cursor, fmt.Errorf("audit feed: %w", err)
	}
	if len(page.Items) == 0 {
		return 0, page.Cursor, nil
	}
	recs := make([]*kgo.Record, len(page.Items))
	for i, x := range page.Items {
		v, err := json.Marshal(x)
		if err != nil {
			return 0, cursor, err
		}
		recs[i] = &kgo.Record{Key: []byte(x.Gateway), Value: v, Headers: []kgo.RecordHeader{
			{Key: "lienthong-gateway", Value: []byte(x.Gateway)}, {Key: "lienthong-seq", Value: []byte(strconv.FormatUint(x.Seq, 10))}}}
	}
	if err := kc.ProduceSync(ctx, recs...).FirstErr(); err != nil {
		return 0, cursor, fmt.Errorf("kafka: produce: %w", err)
	}
	return len(recs), page.Cursor, nil
}

// siemFlags adds the Kafka export's flags to `audit export`.
func siemFlags(f interface {
	StringVar(*string, string, string, string)
	DurationVar(*time.Duration, string, time.Duration, string)
	BoolVar(*bool, string, bool, string)
}, o *siemOptions) {
	f.StringVar(&o.topic, "kafka-topic", "", "follow the audit index and produce every record to this Kafka topic (for a SIEM)")
	f.StringVar(&o.brokers, "kafka-brokers", "", "Kafka seed brokers, comma-separated (over those of --kafka-config)")
	f.StringVar(&o.kafkaConfig, "kafka-config", "", `Kafka connection as JSON, as the feed router's "kafka" object: brokers, tls, sasl`)
	f.StringVar(&o.state, "state", "", "file that keeps the export's place across restarts (required with --kafka-topic)")
	f.DurationVar(&o.poll, "poll", 2*time.Second, "how often to look for new records once caught up")
	f.BoolVar(&o.once, "once", false, "stop once every record so far is produced, instead of following")
}

// runSIEMExport checks the Kafka export's flags and runs it.
func runSIEMExport(ctx context.Context, g *globals, o siemOptions, filtered bool, stderr io.Writer) error {
	switch {
	case filtered:
		return errors.New("--kafka-topic exports every record the token may see; query flags and --out do not apply")
	case o.state == "":
		return errors.New("--kafka-topic needs --state FILE, where the export keeps its place")
	case o.poll <= 0:
		return errors.New("--poll must be positive")
	}
	c, err := g.client()
	if err != nil {
		return err
	}
	log := slog.New(slog.NewTextHandler(stderr, nil))
	n, err := exportToKafka(ctx, c, o, log)
	fmt.Fprintf(stderr, "%d records produced to Kafka topic %s\n", n, o.topic)
	return err
}
