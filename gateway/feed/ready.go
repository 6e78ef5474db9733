package feed

import (
	"context"
	"errors"
	"fmt"
	"os"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/lienthong/lienthong/gateway/exchange"
	"github.com/lienthong/lienthong/internal/opsmux"
)

// Check is one named readiness check and what it found (nil Err: passed),
// as the operations listener (internal/opsmux) serves it on /readyz.
type Check = opsmux.Check

// Names of the feed router's readiness checks. A gateway running the router
// reports kafka and routing as "feed-router.kafka" and
// "feed-router.routing"; its own configuration and audit-log checks cover
// the router's, which shares its exchange core and audit log.
const (
	// CheckKafka: the router's Kafka client reaches the cluster.
	CheckKafka = "kafka"
	// CheckRouting: the router is not stuck with events waiting.
	CheckRouting = "routing"
	// CheckConfiguration: the policy the router decides with is within its
	// allowed staleness (otherwise BeginFeedBatch refuses every batch).
	CheckConfiguration = "configuration"
	// CheckAuditLog: the router's audit log can be opened for writing.
	CheckAuditLog = "audit-log"
)

// DefaultStallAfter is how long events may wait on the broker while the
// router commits nothing before it is reported stuck: twice the default
// transaction timeout, past which an open transaction of a dead session
// has been aborted and a healthy router has committed many batches.
const DefaultStallAfter = time.Minute

// probeTimeout bounds one look at the cluster, so a cluster that does not
// answer is reported within seconds rather than after the client's
// retries.
const probeTimeout = 3 * time.Second

// watch is what the router's monitor last saw: whether the cluster
// answered, the backlog it reported, and when the router last made
// progress. Readiness reads it; nothing on the routing path does.
type watch struct {
	mu      sync.Mutex
	running bool
	started time.Time
	// probed is when the last probe ended, probeErr what it found.
	probed   time.Time
	probeErr error
	// reached is when a probe last got an answer; backlog is the events
	// waiting then.
	reached time.Time
	backlog int64
	// progress is the last time the router was seen not stuck: it had
	// committed a batch since the probe before, or had nothing to route.
	progress time.Time
	batches  int64
}

// monitor looks at the cluster every p.every until ctx ends: the backlog
// of the router's consumer group on its provider topics, and whether the
// router committed since the last look. It uses a client of its own, with
// the router's brokers, TLS and SASL settings, so it answers for what the
// router's sessions can reach without touching them.
func (p *ProviderRouter) monitor(ctx context.Context) {
	cl, err := kgo.NewClient(p.kafka...)
	p.w.mu.Lock()
	p.w.running, p.w.started, p.w.progress = true, p.now(), p.now()
	if err != nil {
		p.w.probed, p.w.probeErr = p.now(), fmt.Errorf("kafka client: %w", err)
	}
	p.w.mu.Unlock()
	defer func() {
		p.w.mu.Lock()
		p.w.running = false
		p.w.mu.Unlock()
	}()
	if err != nil {
		<-ctx.Done()
		return
	}
	defer cl.Close()
	adm := kadm.NewClient(cl)
	p.look(ctx, adm)
	every(ctx, p.every, func() { p.look(ctx, adm) })
}

// look probes the cluster once and records what it found.
func (p *ProviderRouter) look(ctx context.Context, adm *kadm.Client) {
	pctx, cancel := context.WithTimeout(ctx, probeTimeout)
	backlog, err := p.backlogOnBroker(pctx, adm)
	cancel()
	if ctx.Err() != nil {
		return
	}
	batches := p.Stats().Batches
	now := p.now()
	p.w.mu.Lock()
	defer p.w.mu.Unlock()
	p.w.probed, p.w.probeErr = now, err
	if batches != p.w.batches {
		p.w.batches, p.w.progress = batches, now
	}
	if err != nil {
		return
	}
	p.w.reached, p.w.backlog = now, backlog
	if backlog == 0 {
		p.w.progress = now
	}
}

// backlogOnBroker counts the events of the provider topics that the
// router's consumer group has not committed past: per partition, the last
// stable offset (what a read-committed reader can see) less the group's
// committed offset, or less the log start where the group has committed
// nothing yet (the router then starts there). A provider topic not created
// yet holds nothing.
func (p *ProviderRouter) backlogOnBroker(ctx context.Context, adm *kadm.Client) (int64, error) {
	ends, err := adm.ListCommittedOffsets(ctx, p.topics...)
	if err != nil {
		return 0, fmt.Errorf("list end offsets: %w", err)
	}
	committed, err := adm.FetchOffsets(ctx, p.Group())
	if errors.Is(err, kerr.GroupIDNotFound) {
		committed, err = nil, nil // no lane has joined yet: nothing committed
	}
	if err != nil {
		return 0, fmt.Errorf("fetch the offsets of group %s: %w", p.Group(), err)
	}
	var (
		backlog int64
		errs    []error
		fresh   []string // topics with a partition the group never committed
	)
	ends.Each(func(o kadm.ListedOffset) {
		switch {
		case errors.Is(o.Err, kerr.UnknownTopicOrPartition):
		case o.Err != nil:
			errs = append(errs, fmt.Errorf("end offset of %s/%d: %w", o.Topic, o.Partition, o.Err))
		default:
			if c, ok := committed.Lookup(o.Topic, o.Partition); ok && c.Err == nil && c.At >= 0 {
				backlog += max(0, o.Offset-c.At)
			} else if !slices.Contains(fresh, o.Topic) {
				fresh = append(fresh, o.Topic)
			}
		}
	})
	if len(errs) > 0 {
		return 0, errors.Join(errs...)
	}
	if len(fresh) == 0 {
		return backlog, nil
	}
	starts, err := adm.ListStartOffsets(ctx, fresh...)
	if err != nil {
		return 0, fmt.Errorf("list start offsets: %w", err)
	}
	starts.Each(func(s kadm.ListedOffset) {
		if s.Err != nil {
			return
		}
		if c, ok := committed.Lookup(s.Topic, s.Partition); ok && c.Err == nil && c.At >= 0 {
			return // counted above
		}
		if e, ok := ends.Lookup(s.Topic, s.Partition); ok && e.Err == nil {
			backlog += max(0, e.Offset-s.Offset)
		}
	})
	return backlog, nil
}

// Readiness runs the router's own checks, from what its monitor last saw
// (Run starts the monitor; a router not running fails both):
//
//   - kafka: the last look at the cluster, at most a few seconds old, got
//     an answer. A broker outage pauses the router (its sessions fail and
//     are retried), so it is not ready until the cluster answers again.
//   - routing: the router is not stuck. It is stuck when events have been
//     waiting on the broker for its consumer group (committed offsets
//     behind the provider partitions' last stable offsets) for longer than
//     StallAfter, during which it has committed no batch. A router with
//     nothing to route is never stuck, however long it is idle; one that
//     commits a batch now and then, however far behind, is slow, not stuck
//     (its lag metric says how slow). The backlog is the one of the last
//     look that reached the cluster.
func (p *ProviderRouter) Readiness() []Check {
	now := p.now()
	p.w.mu.Lock()
	defer p.w.mu.Unlock()
	if !p.w.running {
		notRunning := errors.New("the router is not running")
		return []Check{{Name: CheckKafka, Err: notRunning}, {Name: CheckRouting, Err: notRunning}}
	}
	return []Check{{Name: CheckKafka, Err: p.kafkaErr(now)}, {Name: CheckRouting, Err: p.routingErr(now)}}
}

// kafkaErr judges the last look at the cluster; p.w.mu is held.
func (p *ProviderRouter) kafkaErr(now time.Time) error {
	w := &p.w
	brokers := strings.Join(p.brokers, ", ")
	switch {
	case w.probed.IsZero():
		return fmt.Errorf("no answer yet from the Kafka cluster (%s)", brokers)
	case now.Sub(w.probed) > 3*(p.every+probeTimeout):
		return fmt.Errorf("the Kafka cluster (%s) has not been looked at since %s", brokers, w.probed.UTC().Format(time.RFC3339))
	case w.probeErr != nil:
		since := "never reached"
		if !w.reached.IsZero() {
			since = "last reached at " + w.reached.UTC().Format(time.RFC3339)
		}
		return fmt.Errorf("the Kafka cluster (%s) does not answer (%s); the router is paused: %w", brokers, since, w.probeErr)
	}
	return nil
}

// routingErr judges whether the router is stuck; p.w.mu is held.
func (p *ProviderRouter) routingErr(now time.Time) error {
	w := &p.w
	if w.backlog == 0 || now.Sub(w.progress) <= p.stallAfter {
		return nil
	}
	last := "no batch committed since the router started at " + w.started.UTC().Format(time.RFC3339)
	if w.batches > 0 {
		last = "no batch committed since " + w.progress.UTC().Format(time.RFC3339)
	}
	return fmt.Errorf("stuck: %d events waiting on the broker (as of %s), %s, longer than the %s allowed",
		w.backlog, w.reached.UTC().Format(time.RFC3339), last, p.stallAfter)
}

// Ready is the readiness of a process running a router alone (Run): until
// the router is built from its configuration, and once it has stopped, it
// is not ready and says so; while it runs, every check of the router and
// of its own exchange core and audit log.
type Ready struct {
	mu     sync.Mutex
	checks func() []Check
	state  error
}

// NewReady returns the readiness of a router not started yet.
func NewReady() *Ready {
	return &Ready{state: errors.New("starting: the router is loading its configuration")}
}

// Checks runs the checks, for opsmux.Handler.
func (r *Ready) Checks() []Check {
	r.mu.Lock()
	checks, state := r.checks, r.state
	r.mu.Unlock()
	if checks == nil {
		return []Check{{Name: "router", Err: state}}
	}
	return checks()
}

// Passing is each check by name and whether it passes, for the
// lienthong_feed_router_ready gauge (metrics.FeedRouter.WatchReady).
func (r *Ready) Passing() map[string]bool {
	out := map[string]bool{}
	for _, c := range r.Checks() {
		out[c.Name] = c.Err == nil
	}
	return out
}

// set makes checks the process's readiness (nil: not running, for why).
func (r *Ready) set(checks func() []Check, why error) {
	if r == nil {
		return
	}
	r.mu.Lock()
	r.checks, r.state = checks, why
	r.mu.Unlock()
}

// standaloneChecks are the checks of a router run alone: its own, then its
// exchange core's freshness (the rule BeginFeedBatch refuses by) and its
// audit log.
func standaloneChecks(p *ProviderRouter, core *exchange.Core, auditFile string) func() []Check {
	return func() []Check {
		return append(p.Readiness(),
			Check{Name: CheckConfiguration, Err: configurationErr(core)},
			Check{Name: CheckAuditLog, Err: auditLogErr(auditFile)})
	}
}

// configurationErr is the core's freshness, saying what it means for the
// router.
func configurationErr(core *exchange.Core) error {
	if err := core.Fresh(); err != nil {
		return fmt.Errorf("%w; the router routes nothing until it is renewed", err)
	}
	return nil
}

// auditLogErr: the audit file can be opened for writing, as the gateway
// checks its own.
func auditLogErr(path string) error {
	f, err := os.OpenFile(path, os.O_WRONLY, 0)
	if err != nil {
		return fmt.Errorf("audit log not writable: %w", err)
	}
	return f.Close()
}
