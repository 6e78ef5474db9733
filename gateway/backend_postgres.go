package gateway

import (
	"context"
	"errors"

	"github.com/lienthong/lienthong/adapters"
)

// openPostgres connects a PostgreSQL-backed dataset.
func (g *Gateway) openPostgres(ctx context.Context, b Backend) (adapters.Adapter, error) {
	return nil, errors.New("postgres backends are not wired yet")
}
