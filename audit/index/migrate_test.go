package index_test

import (
	"context"
	"fmt"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/lienthong/lienthong/audit/index"
	"github.com/lienthong/lienthong/catalog/sqlstore"
	"github.com/lienthong/lienthong/catalog/storetest"
)

// An index built before the tracker listed every outcome held only the
// provider side's allowed ones: migration 6 adds the others (a refusal, a
// consumer gateway's record) from the records already indexed, on both
// dialects, and a second run adds nothing twice.
func TestMigrationAddsEarlierOutcomesToTheTracker(t *testing.T) {
	for _, b := range []struct {
		name string
		loc  func(t *testing.T) string
		open func(ctx context.Context, loc string) (*sqlstore.Store, error)
	}{
		{"sqlite", func(t *testing.T) string { return filepath.Join(t.TempDir(), "catalog.db") }, sqlstore.OpenSQLite},
		{"postgres", func(t *testing.T) string { return storetest.FreshPostgresDatabase(t) }, sqlstore.OpenPostgres},
	} {
		t.Run(b.name, func(t *testing.T) {
			ctx := context.Background()
			loc := b.loc(t)
			subject := fmt.Sprintf("%064x", 7)
			base := time.Date(2026, 11, 20, 8, 0, 0, 0, time.UTC)
			open := func() (*sqlstore.Store, *index.SQLStore) {
				st, err := b.open(ctx, loc)
				if err != nil {
					t.Fatal(err)
				}
				ix, err := index.New(st.DB(), st.Dialect())
				if err != nil {
					t.Fatal(err)
				}
				return st, ix
			}
			st, ix := open()
			provider := newTestLog(t, gwMPS)
			provider.Record(exchange("x-allowed", insurance, population, subject, base))
			denied := exchange("x-denied", insurance, population, subject, base.Add(time.Minute))
			denied.Status = 403
			provider.Record(denied)
			consumer := newTestLog(t, gwVSS)
			failed := exchange("x-failed", insurance, population, subject, base.Add(2*time.Minute))
			failed.Side, failed.Status = "consumer", 502
			consumer.Record(failed)
			for _, l := range []*testLog{provider, consumer} {
				l.Checkpoint()
				if err := ix.EnrolKey(ctx, l.Gateway, l.Public(), false); err != nil {
					t.Fatal(err)
				}
				if _, err := ix.Ingest(ctx, l.Gateway, l.Lines); err != nil {
					t.Fatal(err)
				}
			}
			list := func(ix *index.SQLStore) string {
				p, err := ix.Disclosures(ctx, subject, 10, "")
				if err != nil {
					t.Fatal(err)
				}
				var ids []string
				for _, d := range p.Items {
					ids = append(ids, d.ExchangeID)
				}
				return strings.Join(ids, ",")
			}
			const want = "x-failed,x-denied,x-allowed"
			if got := list(ix); got != want {
				t.Fatalf("before: %s", got)
			}
			// Make it the index version 5 left: only the allowed
			// provider-side outcome in the tracker's table.
			for _, q := range []string{
				`DELETE FROM audit_disclosures WHERE NOT EXISTS (SELECT 1 FROM audit_records r WHERE r.gateway = audit_disclosures.gateway
					AND r.seq = audit_disclosures.seq AND r.side = 'provider' AND r.status = 200)`,
			} {
				if _, err := st.DB().ExecContext(ctx, q); err != nil {
					t.Fatal(err)
				}
			}
			backTo5(t, st)
			if got := list(ix); got != "x-allowed" {
				t.Fatalf("as version 5 left it: %s", got)
			}
			st.Close()
			for range 2 {
				st, ix = open()
				if got := list(ix); got != want {
					t.Fatalf("after the migration: %s, want %s", got, want)
				}
				backTo5(t, st)
				st.Close()
			}
		})
	}
}

// backTo5 makes the schema version 5 again, so the next open runs 6 and
// what follows it: it forgets versions 6 and up, and undoes 7 (its
// columns), which cannot run twice.
func backTo5(t *testing.T, st *sqlstore.Store) {
	t.Helper()
	ctx := context.Background()
	for _, col := range []string{"log_head", "head_at", "shipped_at", "lag", "growing_since"} {
		if _, err := st.DB().ExecContext(ctx, "ALTER TABLE audit_gateways DROP COLUMN "+col); err != nil {
			t.Fatal(err)
		}
	}
	if _, err := st.DB().ExecContext(ctx, `DELETE FROM schema_migrations WHERE version >= 6`); err != nil {
		t.Fatal(err)
	}
}
