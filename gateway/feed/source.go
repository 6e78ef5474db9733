package feed

import (
	"bytes"
	"context"
	"fmt"
	"os"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"github.com/lienthong/lienthong/gateway/exchange"
	"github.com/lienthong/lienthong/policies"
)

// BundleSource is the exchange core's configuration for a router running
// alone (`lienthong feed-router`): the signed policy bundle its provider's
// gateway keeps at <stateDir>/policy-bundle.tar.gz, read again whenever the
// file changes, and the routed datasets' documents. A bundle older than the
// one in force, or one that does not verify, is refused and the one in force
// kept.
//
// The gateway rewrites the bundle only when its revision changes, so the
// file's age says nothing about staleness: Current reports it fresh, and a
// router alone takes its freshness from the gateway's signed configuration
// instead (gatewaySource, freshness.go). A router run inside the gateway
// (gateway feeds.router) shares the gateway's snapshot and with it the
// gateway's staleness rule.
type BundleSource struct {
	path     string
	key      policies.VerificationKey
	datasets map[string]*exchange.Dataset
	cur      atomic.Pointer[exchange.Snapshot]

	mu   sync.Mutex // serialises Reload
	mod  time.Time
	size int64
}

// OpenBundleSource loads the bundle at path, verified with key, for the
// routed datasets.
func OpenBundleSource(ctx context.Context, path string, key policies.VerificationKey, datasets []*Dataset) (*BundleSource, error) {
	bs := &BundleSource{path: path, key: key, datasets: map[string]*exchange.Dataset{}}
	for _, d := range datasets {
		bs.datasets[d.Provider+"/"+d.Code] = d.core
	}
	if _, err := bs.Reload(ctx); err != nil {
		return nil, err
	}
	return bs, nil
}

// Current is the snapshot in force, reported fresh (see BundleSource).
func (bs *BundleSource) Current() (*exchange.Snapshot, time.Time) {
	return bs.cur.Load(), time.Now()
}

// Revision is the policy revision in force.
func (bs *BundleSource) Revision() string {
	if s := bs.cur.Load(); s != nil {
		return s.Engine.Revision()
	}
	return ""
}

// Reload loads the file if it changed since the last load, and reports
// whether a new revision came into force.
func (bs *BundleSource) Reload(ctx context.Context) (bool, error) {
	bs.mu.Lock()
	defer bs.mu.Unlock()
	fi, err := os.Stat(bs.path)
	if err != nil {
		return false, fmt.Errorf("feed: policy bundle: %w", err)
	}
	if fi.ModTime().Equal(bs.mod) && fi.Size() == bs.size {
		return false, nil
	}
	raw, err := os.ReadFile(bs.path)
	if err != nil {
		return false, fmt.Errorf("feed: policy bundle: %w", err)
	}
	snap, err := policies.LoadBundle(bytes.NewReader(raw), bs.key)
	if err != nil {
		return false, fmt.Errorf("feed: policy bundle %s: %w", bs.path, err)
	}
	bs.mod, bs.size = fi.ModTime(), fi.Size()
	if prev := bs.Revision(); prev != "" {
		if prev == snap.Revision {
			return false, nil
		}
		if olderRevision(snap.Revision, prev) {
			return false, fmt.Errorf("feed: policy bundle revision %s is older than the one in force (%s); refused", snap.Revision, prev)
		}
	}
	eng := policies.NewEngine()
	if err := eng.Load(ctx, snap); err != nil {
		return false, fmt.Errorf("feed: policy bundle %s: %w", snap.Revision, err)
	}
	bs.cur.Store(&exchange.Snapshot{Engine: eng, Datasets: bs.datasets, Policy: snap.Data, RevokedSystem: map[string]bool{}})
	return true, nil
}

func olderRevision(a, b string) bool {
	x, errA := strconv.ParseInt(a, 10, 64)
	y, errB := strconv.ParseInt(b, 10, 64)
	return errA == nil && errB == nil && x < y
}
