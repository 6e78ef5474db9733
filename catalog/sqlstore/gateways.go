package sqlstore

import (
	"context"
	"fmt"

	"github.com/lienthong/lienthong/catalog"
)

const gatewayCols = "member, system, address, updated_at"

func scanGateway(r rowScanner) (catalog.Gateway, error) {
	var g catalog.Gateway
	err := r.Scan(&g.Member, &g.System, &g.Address, scanTime(&g.UpdatedAt))
	return g, err
}

// GetGateway returns a member's gateway, or ErrNotFound.
func (r reader) GetGateway(ctx context.Context, member string) (*catalog.Gateway, error) {
	g, err := scanGateway(r.q.QueryRowContext(ctx, "SELECT "+gatewayCols+" FROM gateways WHERE member = $1", member))
	if err != nil {
		return nil, fmt.Errorf("get gateway of %s: %w", member, notFoundErr(err))
	}
	return &g, nil
}

// ListGateways returns every gateway, ordered by member.
func (r reader) ListGateways(ctx context.Context) ([]catalog.Gateway, error) {
	gs, err := queryList(ctx, r.q, scanGateway, "SELECT "+gatewayCols+" FROM gateways ORDER BY member")
	if err != nil {
		return nil, fmt.Errorf("list gateways: %w", err)
	}
	return gs, nil
}

// PutGateway creates or replaces a member's gateway registration.
func (t *tx) PutGateway(ctx context.Context, g *catalog.Gateway) error {
	err := t.write(ctx, func() error {
		_, err := t.q.ExecContext(ctx, "INSERT INTO gateways ("+gatewayCols+") VALUES ($1, $2, $3, $4)"+
			" ON CONFLICT (member) DO UPDATE SET system = excluded.system, address = excluded.address, updated_at = excluded.updated_at",
			g.Member, g.System, g.Address, t.d.time(g.UpdatedAt))
		return t.d.insertErr(err, "member "+g.Member+" or system "+g.System+" does not exist")
	})
	if err != nil {
		return fmt.Errorf("put gateway of %s: %w", g.Member, err)
	}
	return nil
}
