package xds

import (
	"context"
	"encoding/json"
	"fmt"
	"time"

	"github.com/lienthong/lienthong/catalog"
	"github.com/lienthong/lienthong/controlplane/xds/ir"
)

// This file is the one place the xDS server reads the catalog. It uses
// the Reader methods every store has; a consistent view of the store can
// replace them here alone.

// readInput reads what shapes the edges, at a revision read first, so the
// input is at least as new as the revision it names.
func readInput(ctx context.Context, r catalog.Reader, now time.Time) (ir.Input, int64, error) {
	rev, err := r.Revision(ctx)
	if err != nil {
		return ir.Input{}, 0, fmt.Errorf("xds: read revision: %w", err)
	}
	gws, err := r.ListGateways(ctx)
	if err != nil {
		return ir.Input{}, 0, fmt.Errorf("xds: read gateways: %w", err)
	}
	ds, err := r.ListDatasets(ctx, catalog.DatasetFilter{})
	if err != nil {
		return ir.Input{}, 0, fmt.Errorf("xds: read datasets: %w", err)
	}
	grants, err := r.ListGrants(ctx, catalog.GrantFilter{State: catalog.GrantActive})
	if err != nil {
		return ir.Input{}, 0, fmt.Errorf("xds: read grants: %w", err)
	}
	systems, err := r.ListSystems(ctx, catalog.SystemFilter{})
	if err != nil {
		return ir.Input{}, 0, fmt.Errorf("xds: read systems: %w", err)
	}
	return ir.Input{Gateways: gws, Datasets: ds, Grants: grants, Systems: systems, Now: now}, rev, nil
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
