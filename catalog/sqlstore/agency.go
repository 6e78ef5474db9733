package sqlstore

import (
	"context"
	"fmt"

	"github.com/lienthong/lienthong/catalog"
)

const agencyCols = "provider, source, digest, updated_at, updated_by"

func scanAgencyModule(r rowScanner) (catalog.AgencyModule, error) {
	var m catalog.AgencyModule
	err := r.Scan(&m.Provider, &m.Source, &m.Digest, scanTime(&m.UpdatedAt), &m.UpdatedBy)
	return m, err
}

// GetAgencyModule returns a provider's module, or ErrNotFound.
func (r reader) GetAgencyModule(ctx context.Context, provider string) (*catalog.AgencyModule, error) {
	m, err := scanAgencyModule(r.q.QueryRowContext(ctx, "SELECT "+agencyCols+" FROM agency_modules WHERE provider = $1", provider))
	if err != nil {
		return nil, fmt.Errorf("get policy module of %s: %w", provider, notFoundErr(err))
	}
	return &m, nil
}

// ListAgencyModules returns every module, ordered by provider.
func (r reader) ListAgencyModules(ctx context.Context) ([]catalog.AgencyModule, error) {
	ms, err := queryList(ctx, r.q, scanAgencyModule, "SELECT "+agencyCols+" FROM agency_modules ORDER BY provider")
	if err != nil {
		return nil, fmt.Errorf("list policy modules: %w", err)
	}
	return ms, nil
}

// PutAgencyModule creates or replaces a provider's module (an upsert both
// dialects spell the same); ErrNotFound if the provider system does not exist.
func (t *tx) PutAgencyModule(ctx context.Context, m *catalog.AgencyModule) error {
	err := t.write(ctx, func() error {
		_, err := t.q.ExecContext(ctx, "INSERT INTO agency_modules ("+agencyCols+") VALUES ($1, $2, $3, $4, $5)"+
			" ON CONFLICT (provider) DO UPDATE SET source = excluded.source, digest = excluded.digest,"+
			" updated_at = excluded.updated_at, updated_by = excluded.updated_by",
			m.Provider, m.Source, m.Digest, t.d.time(m.UpdatedAt), m.UpdatedBy)
		return t.d.insertErr(err, "system "+m.Provider+" does not exist")
	})
	if err != nil {
		return fmt.Errorf("put policy module of %s: %w", m.Provider, err)
	}
	return nil
}

// DeleteAgencyModule removes a provider's module; ErrNotFound if it has none.
func (t *tx) DeleteAgencyModule(ctx context.Context, provider string) error {
	err := t.write(ctx, func() error {
		return mustAffect(t.q.ExecContext(ctx, "DELETE FROM agency_modules WHERE provider = $1", provider))
	})
	if err != nil {
		return fmt.Errorf("delete policy module of %s: %w", provider, err)
	}
	return nil
}
