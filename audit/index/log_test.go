package index_test

import (
	"context"
	"path/filepath"
	"testing"
	"time"

	"github.com/lienthong/lienthong/audit"
	"github.com/lienthong/lienthong/audit/index"
	"github.com/lienthong/lienthong/audit/index/indextest"
	"github.com/lienthong/lienthong/catalog/sqlstore"
	"github.com/lienthong/lienthong/catalog/storetest"
)

const (
	mps        = "000.00.00.G01"
	vss        = "000.00.00.G14"
	hcm        = "000.00.79.H29"
	population = "VN:GOV:000.00.00.G01:CSDLDC"
	insurance  = "VN:GOV:000.00.00.G14:BHXH"
	portal     = "VN:GOV:000.00.79.H29:DVC"
	gwMPS      = "VN:GOV:000.00.00.G01:GW"
	gwVSS      = "VN:GOV:000.00.00.G14:GW"
)

// testLog is a gateway's log as the tests write it.
type testLog = indextest.Log

func newTestLog(t *testing.T, gateway string) *testLog { return indextest.New(t, gateway) }

// exchange returns a provider-side allowed outcome record.
func exchange(id, consumer, provider, subject string, at time.Time) audit.Record {
	return indextest.Outcome(id, consumer, provider, subject, at)
}

// opener opens a fresh catalog database (migrated) and the index over it.
type opener func(t *testing.T, opts ...index.Option) *index.SQLStore

// backends runs fn on SQLite and on PostgreSQL (which skips unless
// LIENTHONG_POSTGRES_DSN is set, and fails under LIENTHONG_REQUIRE_SERVICES=1).
func backends(t *testing.T, fn func(t *testing.T, open opener)) {
	t.Run("sqlite", func(t *testing.T) { fn(t, openSQLite) })
	t.Run("postgres", func(t *testing.T) { fn(t, openPostgres) })
}

func openPostgres(t *testing.T, opts ...index.Option) *index.SQLStore {
	t.Helper()
	st, err := sqlstore.OpenPostgres(context.Background(), storetest.FreshPostgresDatabase(t))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { st.Close() })
	ix, err := index.New(st.DB(), st.Dialect(), opts...)
	if err != nil {
		t.Fatal(err)
	}
	return ix
}

func openSQLite(t *testing.T, opts ...index.Option) *index.SQLStore {
	t.Helper()
	st, err := sqlstore.OpenSQLite(context.Background(), filepath.Join(t.TempDir(), "catalog.db"))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { st.Close() })
	ix, err := index.New(st.DB(), st.Dialect(), opts...)
	if err != nil {
		t.Fatal(err)
	}
	return ix
}
