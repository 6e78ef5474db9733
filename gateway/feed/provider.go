package feed

import (
	"context"
	"fmt"
	"log/slog"
	"sync"
	"time"

	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/lienthong/lienthong/gateway/exchange"
	"github.com/lienthong/lienthong/gateway/feed/broker"
)

// LagGauge receives each subscriber's lag: how many change events of a
// dataset the router has not yet delivered to the consumer. The gateway's
// and the standalone router's metrics (gateway/metrics) are both one.
type LagGauge interface {
	SetFeedLag(consumer, dataset string, lag int64)
}

// ProviderRouterConfig is a provider system's feed router: the parts of
// RouterConfig, the provider, and where its subscribers' lag goes.
type ProviderRouterConfig struct {
	// ID names the router (RouterConfig.ID): keep it across restarts, so
	// the broker fences a dead instance's sessions and aborts their
	// transactions.
	ID string
	// Provider is the provider system whose datasets are routed; every
	// dataset must be one of its.
	Provider string
	// Core decides, projects, masks and audits every delivery: a gateway's
	// own core, or NewCore's for a router running alone.
	Core *exchange.Core
	// Kafka is how the router and its readiness monitor reach the cluster
	// (brokers, TLS, SASL): the same settings, so the monitor answers for
	// what the router can reach.
	Kafka broker.Config
	// Datasets are the provider's datasets to route, each with its event
	// types and schema, which the router checks events against.
	Datasets []*Dataset
	// Log receives the router's warnings (pauses, dead letters), never an
	// event's data (default slog.Default()).
	Log *slog.Logger
	// MaxBatch bounds the events of one transaction (default 1000): a
	// larger batch commits less often but redoes more after a crash.
	MaxBatch int
	// Lanes is how many transactional sessions route side by side
	// (RouterConfig.Lanes; default DefaultLanes, at most MaxLanes).
	Lanes int
	// Lag, when set, is given each subscriber's lag every second while the
	// router runs (nil: not reported).
	Lag LagGauge
	// StallAfter is how long events may wait while the router commits
	// nothing before Readiness reports it stuck (default
	// DefaultStallAfter).
	StallAfter time.Duration
}

// ProviderRouter is the feed router of one provider system together with
// the report of its subscribers' lag. A gateway that runs the router
// (feeds.router) and `lienthong feed-router` build it the same way, so
// both route, and report, alike.
type ProviderRouter struct {
	*Router
	provider string
	core     *exchange.Core
	lag      LagGauge
	every    time.Duration

	// What the readiness monitor (ready.go) needs: the router's Kafka
	// settings, its provider topics, and what it last saw.
	kafka      []kgo.Opt
	brokers    []string
	topics     []string
	stallAfter time.Duration
	now        func() time.Time
	w          watch
}

// lagEvery is how often a ProviderRouter sets its subscribers' lag.
const lagEvery = time.Second

// NewProviderRouter prepares the router of cfg.Provider's datasets; Run
// starts it.
func NewProviderRouter(cfg ProviderRouterConfig) (*ProviderRouter, error) {
	for _, d := range cfg.Datasets {
		if d.Provider != cfg.Provider {
			return nil, fmt.Errorf("feed: dataset %s/%s is not one of %s, whose router this is", d.Provider, d.Code, cfg.Provider)
		}
	}
	r, err := NewRouter(RouterConfig{ID: cfg.ID, Core: cfg.Core, Kafka: cfg.Kafka, Datasets: cfg.Datasets,
		Log: cfg.Log, MaxBatch: cfg.MaxBatch, Lanes: cfg.Lanes})
	if err != nil {
		return nil, err
	}
	opts, err := cfg.Kafka.Options()
	if err != nil {
		return nil, err
	}
	p := &ProviderRouter{Router: r, provider: cfg.Provider, core: cfg.Core, lag: cfg.Lag, every: lagEvery,
		kafka: opts, brokers: cfg.Kafka.Brokers, stallAfter: cfg.StallAfter, now: time.Now}
	if p.stallAfter <= 0 {
		p.stallAfter = DefaultStallAfter
	}
	for _, d := range cfg.Datasets {
		p.topics = append(p.topics, broker.PublishTopic(d.Provider, d.Code))
	}
	return p, nil
}

// Run routes, reports the lag and watches the router's readiness
// (Readiness) until ctx ends.
func (p *ProviderRouter) Run(ctx context.Context) error {
	ctx, stop := context.WithCancel(ctx)
	var wg sync.WaitGroup
	wg.Go(func() { p.monitor(ctx) })
	if p.lag != nil {
		wg.Go(func() { every(ctx, p.every, p.reportLag) })
	}
	err := p.Router.Run(ctx)
	stop()
	wg.Wait()
	return err
}

// every calls fn every interval until ctx ends (the router's periodic
// work: reporting lag, looking at the cluster, reloading the policy).
func every(ctx context.Context, interval time.Duration, fn func()) {
	t := time.NewTicker(interval)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
			fn()
		}
	}
}

// reportLag sets, for each consumer subscribed to a routed dataset at the
// configuration in force, the router's backlog of that dataset: one
// transaction delivers an event to every subscriber, so they share it. A
// stale configuration leaves the last values (the staleness metric says
// why).
func (p *ProviderRouter) reportLag() {
	b, ref := p.core.BeginFeedBatch()
	if ref != nil {
		return
	}
	for dataset, n := range p.Backlog() {
		for _, s := range b.Subscribers(p.provider, dataset) {
			p.lag.SetFeedLag(s.Consumer, dataset, n)
		}
	}
}
