package sqlstore_test

import (
	"errors"
	"fmt"
	"strings"
	"sync"
	"testing"

	"github.com/lienthong/lienthong/catalog"
	"github.com/lienthong/lienthong/catalog/sqlstore"
)

// latestVersion is the newest migration this binary has.
const latestVersion = 7 // the number of files in migrations/<dialect>

func TestMigrations(t *testing.T) {
	for _, b := range backends {
		t.Run(b.name, func(t *testing.T) {
			b.available(t)
			t.Run("fresh database migrates", func(t *testing.T) {
				loc := b.fresh(t)
				s, err := b.open(t.Context(), loc)
				if err != nil {
					t.Fatal(err)
				}
				defer s.Close()
				if v, err := s.SchemaVersion(t.Context()); err != nil || v != latestVersion {
					t.Errorf("SchemaVersion = %d, %v; want %d", v, err, latestVersion)
				}
				raw := b.raw(t, loc)
				var n int
				if err := raw.QueryRow("SELECT COUNT(*) FROM schema_migrations WHERE applied_at IS NOT NULL").Scan(&n); err != nil || n != latestVersion {
					t.Errorf("schema_migrations rows: %d, %v; want %d", n, err, latestVersion)
				}
				for _, table := range []string{"members", "systems", "assessments", "datasets", "tokens",
					"access_requests", "grants", "certificates", "trail", "agency_modules", "gateways"} {
					if _, err := raw.Exec("SELECT COUNT(*) FROM " + table); err != nil {
						t.Errorf("table %s: %v", table, err)
					}
				}
			})

			t.Run("reopening is idempotent and keeps data", func(t *testing.T) {
				loc := b.fresh(t)
				for i := range 3 {
					s, err := b.open(t.Context(), loc)
					if err != nil {
						t.Fatalf("open #%d: %v", i+1, err)
					}
					code := []string{"000.00.00.G01", "000.00.00.G02", "000.00.00.G03"}[i]
					if err := s.Update(t.Context(), func(tx catalog.Tx) error {
						return tx.CreateMember(t.Context(), &catalog.Member{Code: code, Name: "m"})
					}); err != nil {
						t.Fatalf("write after open #%d: %v", i+1, err)
					}
					if ms, err := s.ListMembers(t.Context()); err != nil || len(ms) != i+1 {
						t.Errorf("after open #%d: %d members (%v), want %d", i+1, len(ms), err, i+1)
					}
					s.Close()
				}
				var n int
				if err := b.raw(t, loc).QueryRow("SELECT COUNT(*) FROM schema_migrations").Scan(&n); err != nil || n != latestVersion {
					t.Errorf("schema_migrations rows after 3 opens: %d, %v; want %d", n, err, latestVersion)
				}
			})

			t.Run("newer schema is refused", func(t *testing.T) {
				loc := b.fresh(t)
				s, err := b.open(t.Context(), loc)
				if err != nil {
					t.Fatal(err)
				}
				s.Close()
				if _, err := b.raw(t, loc).Exec("INSERT INTO schema_migrations (version, applied_at) VALUES (999, " +
					map[string]string{"sqlite": "'2030-01-01T00:00:00.000000Z'", "postgres": "now()"}[b.name] + ")"); err != nil {
					t.Fatal(err)
				}
				s, err = b.open(t.Context(), loc)
				if err == nil {
					s.Close()
					t.Fatal("opening a database of schema version 999 succeeded")
				}
				if !errors.Is(err, sqlstore.ErrSchemaTooNew) {
					t.Errorf("error %v does not match ErrSchemaTooNew", err)
				}
				var tooNew *sqlstore.SchemaTooNewError
				if !errors.As(err, &tooNew) || tooNew.Version != 999 || tooNew.Supported != latestVersion {
					t.Errorf("error %#v, want a SchemaTooNewError{999, %d}", err, latestVersion)
				}
				msg := fmt.Sprintf("database schema version 999 is newer than this binary supports (%d); upgrade lienthong", latestVersion)
				if !strings.Contains(err.Error(), msg) {
					t.Errorf("error %q does not say %q", err, msg)
				}
			})

			t.Run("concurrent opens migrate once", func(t *testing.T) {
				loc := b.fresh(t)
				var wg sync.WaitGroup
				for i := range 4 {
					wg.Go(func() {
						s, err := b.open(t.Context(), loc)
						if err != nil {
							t.Errorf("open #%d: %v", i, err)
							return
						}
						s.Close()
					})
				}
				wg.Wait()
				var n int
				if err := b.raw(t, loc).QueryRow("SELECT COUNT(*) FROM schema_migrations").Scan(&n); err != nil || n != latestVersion {
					t.Errorf("schema_migrations rows: %d, %v; want %d", n, err, latestVersion)
				}
			})
		})
	}
}
