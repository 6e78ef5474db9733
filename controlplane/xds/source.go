package xds

import (
	"context"
	"encoding/json"
	"fmt"
	"slices"
	"time"

	"github.com/lienthong/lienthong/catalog"
	"github.com/lienthong/lienthong/controlplane/xds/ir"
	"github.com/lienthong/lienthong/federation"
)

// This file is the one place the xDS server reads the catalog.

// input is what shapes the edges, taken from one federation snapshot: the
// catalog as one consistent read (catalog.Store.View) at one revision, the
// same value the gateways' configuration, trust and member bundles are
// built from, so Envoy edges never describe another catalog than native
// gateways do. The revision is the trail position the model reflects.
// The slices are copied: the snapshot is shared and never changed, and the
// model keeps pointers into its input.
func input(snap *federation.Snapshot, now time.Time) (ir.Input, int64) {
	return ir.Input{Gateways: slices.Clone(snap.Gateways), Datasets: slices.Clone(snap.Datasets),
		Grants: slices.Clone(snap.Grants), Systems: slices.Clone(snap.Systems), Now: now}, snap.Revision
}

// readSnapshot reads a federation snapshot through r, inside one View when r
// is a whole store: the Syncer's fallback when Config.Snapshot is not set.
func readSnapshot(ctx context.Context, r catalog.Reader) (*federation.Snapshot, error) {
	st, ok := r.(catalog.Store)
	if !ok {
		return federation.Read(ctx, r)
	}
	var snap *federation.Snapshot
	err := st.View(ctx, func(r catalog.Reader) error {
		var err error
		snap, err = federation.Read(ctx, r)
		return err
	})
	return snap, err
}

// grantChanges reads the trail after seq. When every entry is a grant
// approval or revocation (or a write that does not shape edges), it returns
// the grants as they now stand, so the model is updated in place; ok is
// false when something else changed and the edges must be rebuilt.
func grantChanges(ctx context.Context, r catalog.Reader, after int64) (grants []catalog.Grant, last int64, ok bool, err error) {
	last = after
	for {
		entries, err := r.ListTrail(ctx, catalog.TrailFilter{AfterSeq: last, Limit: 500})
		if err != nil {
			return nil, 0, false, fmt.Errorf("xds: read trail: %w", err)
		}
		if len(entries) == 0 {
			return grants, last, true, nil
		}
		for _, e := range entries {
			last = e.Seq
			switch e.Action {
			case "access.approve", "grant.revoke":
				var g catalog.Grant
				if err := json.Unmarshal(e.After, &g); err != nil || g.ID == "" {
					return nil, 0, false, nil
				}
				grants = append(grants, g)
			case "access.request", "access.refused", "access.withdrawn", "token.create", "token.revoke",
				"member.create", "system.create", "policy.module.put", "policy.module.delete":
				// Shapes no edge.
			default:
				return nil, 0, false, nil
			}
		}
	}
}
