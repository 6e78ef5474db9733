package service

import (
	"context"
	"fmt"
	"sync"

	"github.com/lienthong/lienthong/catalog"
	"github.com/lienthong/lienthong/federation"
)

// snapshotCache keeps the snapshot of the newest revision read: gateways
// poll often and the catalog rarely changes, so the usual poll costs one
// revision query instead of reading the catalog.
type snapshotCache struct {
	mu   sync.Mutex
	snap *federation.Snapshot
}

// Snapshot returns the federation snapshot of the catalog's current
// revision, read in one store View. Everything issued to the data plane
// (gateway configuration, trust, policy bundles) is built from it, so they
// never describe two different catalogs. Concurrent callers share one read.
func (s *Service) Snapshot(ctx context.Context) (*federation.Snapshot, error) {
	rev, err := s.store.Revision(ctx)
	if err != nil {
		return nil, fmt.Errorf("federation snapshot: %w", err)
	}
	c := &s.snapshots
	c.mu.Lock()
	defer c.mu.Unlock()
	// Revisions only grow: a cached snapshot at least as new is current.
	if c.snap != nil && c.snap.Revision >= rev {
		return c.snap, nil
	}
	var snap *federation.Snapshot
	err = s.store.View(ctx, func(r catalog.Reader) error {
		var err error
		snap, err = federation.Read(ctx, r)
		return err
	})
	if err != nil {
		return nil, err
	}
	c.snap = snap
	return snap, nil
}
