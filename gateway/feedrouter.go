package gateway

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"

	"github.com/lienthong/lienthong/catalog"
	"github.com/lienthong/lienthong/gateway/exchange"
	"github.com/lienthong/lienthong/gateway/feed"
)

// FeedRouterConfig runs the feed router (gateway/feed) inside the gateway
// process, as a door onto the gateway's own exchange core: it decides with
// the policy the gateway pulls, under the gateway's staleness rule, masks
// with the gateway's masking key, and writes each delivery's record to the
// gateway's audit log under the federation's subject key, so feed records
// index like query records. `lienthong feed-router` runs the same router
// alone.
type FeedRouterConfig struct {
	// ID names the router: its Kafka transactional id and static group
	// member. Keep it across restarts, so the broker fences a dead
	// instance and aborts its open transaction (default "router-" and the
	// gateway's system id).
	ID string `json:"id,omitempty"`
	// Provider is the member's provider system whose datasets are routed.
	Provider string `json:"provider"`
	// Datasets are the codes of the provider's datasets to route (default:
	// each of its datasets that declares event types, as configured when
	// the gateway starts).
	Datasets []string `json:"datasets,omitempty"`
	// MaxBatch bounds the events of one transaction (default 1000).
	MaxBatch int `json:"maxBatch,omitempty"`
	// Lanes is how many transactional sessions route side by side
	// (feed.RouterConfig.Lanes; default 1, at most feed.MaxLanes). Changing
	// it re-shares the provider partitions among the lanes at the next
	// start; delivery stays exactly once.
	Lanes int `json:"lanes,omitempty"`
	// StallAfter is how long events may wait on the broker while the
	// router commits nothing before /readyz reports feed-router.routing
	// failing (default 1m, feed.DefaultStallAfter).
	StallAfter Duration `json:"stallAfter,omitempty"`
}

// newFeedRouter prepares the configured feed router (nil when none); Run
// runs it in the background, with its subscribers' lag in the gateway's
// metrics, and stops it before closing the audit log.
func (g *Gateway) newFeedRouter(ctx context.Context) (*feed.ProviderRouter, error) {
	if g.cfg.Feeds == nil || g.cfg.Feeds.Router == nil {
		return nil, nil
	}
	rc := g.cfg.Feeds.Router
	if rc.Provider == "" {
		return nil, errors.New("feeds.router.provider: required: the provider system whose datasets are routed")
	}
	if exchange.MemberOf(rc.Provider) != g.cfg.Member {
		return nil, fmt.Errorf("feeds.router.provider: %s is not a system of member %s, which this gateway serves", rc.Provider, g.cfg.Member)
	}
	if rc.Lanes < 0 || rc.Lanes > feed.MaxLanes {
		return nil, fmt.Errorf("feeds.router.lanes: %d is not between 1 and %d", rc.Lanes, feed.MaxLanes)
	}
	if strings.Contains(rc.ID, feed.LaneSeparator) {
		return nil, fmt.Errorf("feeds.router.id: %q may not contain %q, which only the ids of the router's lanes carry", rc.ID, feed.LaneSeparator)
	}
	st := g.sync.current.Load()
	if st == nil {
		return nil, errors.New("feeds.router: no configuration to route with")
	}
	var datasets []*feed.Dataset
	for ref, d := range st.documents {
		if d.info.Provider != rc.Provider || (len(rc.Datasets) > 0 && !slices.Contains(rc.Datasets, d.info.Code)) {
			continue
		}
		if len(rc.Datasets) == 0 {
			if types, err := catalog.EventTypes(d.document); err != nil || len(types) == 0 {
				continue
			}
		}
		ds, err := feed.NewDataset(ctx, rc.Provider, d.document)
		if err != nil {
			return nil, fmt.Errorf("feeds.router: dataset %s: %w", ref, err)
		}
		datasets = append(datasets, ds)
	}
	for _, code := range rc.Datasets {
		if !slices.ContainsFunc(datasets, func(d *feed.Dataset) bool { return d.Code == code }) {
			return nil, fmt.Errorf("feeds.router.datasets: %s publishes no dataset %q at this gateway", rc.Provider, code)
		}
	}
	if len(datasets) == 0 {
		return nil, fmt.Errorf("feeds.router: %s publishes no dataset that declares event types (info.x-events)", rc.Provider)
	}
	id := rc.ID
	if id == "" {
		id = "router-" + g.cfg.System
	}
	var lag feed.LagGauge
	if !g.metricsOff {
		lag = g.metrics
	}
	router, err := feed.NewProviderRouter(feed.ProviderRouterConfig{ID: id, Provider: rc.Provider, Core: g.core, Kafka: g.cfg.Feeds.Kafka,
		Datasets: datasets, Log: g.log.With("component", "feed-router"), MaxBatch: rc.MaxBatch, Lanes: rc.Lanes, Lag: lag,
		StallAfter: rc.StallAfter.Duration})
	if err != nil {
		return nil, fmt.Errorf("feeds.router: %w", err)
	}
	g.log.Info("feed router configured", "id", id, "provider", rc.Provider, "datasets", len(datasets))
	return router, nil
}

// FeedRouterStats returns the counters of the feed router the gateway runs
// (feeds.router), and false when it runs none: a hook for metrics.
func (g *Gateway) FeedRouterStats() (feed.RouterStats, bool) {
	if g.feedRouter == nil {
		return feed.RouterStats{}, false
	}
	return g.feedRouter.Stats(), true
}

// feedRouterCheckPrefix names, in the gateway's readiness, the checks of
// the feed router it runs.
const feedRouterCheckPrefix = "feed-router."

// feedRouterChecks are the readiness checks of the feed router the gateway
// runs (none when it runs none): feed-router.kafka, the cluster answers,
// and feed-router.routing, the router is not stuck (feed.ProviderRouter
// Readiness). The router decides with the gateway's exchange core and
// writes the gateway's audit log, so the gateway's configuration and
// audit-log checks are the router's too: they are not repeated. They do
// not gate the gateway's /readyz (FeedsReadyGroup).
func (g *Gateway) feedRouterChecks() []Check {
	if g.feedRouter == nil {
		return nil
	}
	checks := g.feedRouter.Readiness()
	out := make([]Check, len(checks))
	for i, c := range checks {
		out[i] = Check{Name: feedRouterCheckPrefix + c.Name, Err: c.Err}
	}
	return out
}

// FeedsReadyGroup is the group (opsmux.Check.Group) of the feed router's
// checks on the gateway's operations and health listeners: /readyz lists
// them marked not gating, /readyz/feeds fails for them. A broker outage
// pauses feeds, not queries, so a load balancer that probes /readyz keeps
// sending queries to a gateway whose router waits for Kafka; whoever
// watches feeds probes /readyz/feeds.
const FeedsReadyGroup = "feeds"

// opsGroup is the readiness group of a check of the gateway: its feed
// router's are FeedsReadyGroup, the rest gate /readyz.
func opsGroup(c Check) string {
	if isFeedRouterCheck(c) {
		return FeedsReadyGroup
	}
	return ""
}

// isFeedRouterCheck: the feed router's checks do not hold back the
// gateway's start. The router only starts with the gateway, and a broker
// outage pauses feeds, not queries: the gateway serves, not ready, until
// the cluster answers.
func isFeedRouterCheck(c Check) bool { return strings.HasPrefix(c.Name, feedRouterCheckPrefix) }
