package gateway

import (
	"context"
	"fmt"

	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/lienthong/lienthong/adapters"
	"github.com/lienthong/lienthong/adapters/postgres"
)

// openPostgres connects a dataset served from a PostgreSQL table or view,
// checking at start that the mapped table and columns exist.
func (g *Gateway) openPostgres(ctx context.Context, b Backend) (adapters.Adapter, error) {
	pool, err := pgxpool.New(ctx, b.Postgres.DSN)
	if err != nil {
		return nil, fmt.Errorf("postgres backend: %w", err)
	}
	g.pools = append(g.pools, pool)
	a, err := postgres.New(pool, postgres.Mapping{Table: b.Postgres.Table, Key: b.Postgres.Key, ListPath: b.Postgres.ListPath, Columns: b.Postgres.Columns})
	if err != nil {
		return nil, fmt.Errorf("postgres backend: %w", err)
	}
	if err := a.Check(ctx); err != nil {
		return nil, fmt.Errorf("postgres backend: %w", err)
	}
	return a, nil
}
