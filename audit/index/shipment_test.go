package index_test

import (
	"context"
	"database/sql"
	"errors"
	"path/filepath"
	"strconv"
	"testing"

	"github.com/lienthong/lienthong/audit/index"
	"github.com/lienthong/lienthong/catalog/sqlstore"
	"github.com/lienthong/lienthong/catalog/storetest"
)

// withDB opens the index on SQLite and on PostgreSQL (skipped without
// LIENTHONG_POSTGRES_DSN) and hands fn the database too, to inject faults.
func withDB(t *testing.T, fn func(t *testing.T, ix *index.SQLStore, db *sql.DB, pg bool), opts ...index.Option) {
	for _, pg := range []bool{false, true} {
		name := map[bool]string{false: "sqlite", true: "postgres"}[pg]
		t.Run(name, func(t *testing.T) {
			ctx := context.Background()
			var st *sqlstore.Store
			var err error
			if pg {
				st, err = sqlstore.OpenPostgres(ctx, storetest.FreshPostgresDatabase(t))
			} else {
				st, err = sqlstore.OpenSQLite(ctx, filepath.Join(t.TempDir(), "catalog.db"))
			}
			if err != nil {
				t.Fatal(err)
			}
			t.Cleanup(func() { st.Close() })
			ix, err := index.New(st.DB(), st.Dialect(), opts...)
			if err != nil {
				t.Fatal(err)
			}
			fn(t, ix, st.DB(), pg)
		})
	}
}

// refuseHead makes the database refuse to store a log head of bad: a
// fault in the write of the head, and of nothing else.
func refuseHead(t *testing.T, db *sql.DB, pg bool, bad uint64) {
	t.Helper()
	stmts := []string{`CREATE TRIGGER refuse_head BEFORE UPDATE ON audit_gateways
		WHEN NEW.log_head = ` + strconv.FormatUint(bad, 10) + ` BEGIN SELECT RAISE(ABORT, 'injected: the head cannot be stored'); END`}
	if pg {
		stmts = []string{`CREATE FUNCTION refuse_head() RETURNS trigger LANGUAGE plpgsql AS $$
			BEGIN IF NEW.log_head = ` + strconv.FormatUint(bad, 10) + ` THEN RAISE EXCEPTION 'injected: the head cannot be stored'; END IF; RETURN NEW; END $$`,
			`CREATE TRIGGER refuse_head BEFORE UPDATE ON audit_gateways FOR EACH ROW EXECUTE FUNCTION refuse_head()`}
	}
	for _, q := range stmts {
		if _, err := db.Exec(q); err != nil {
			t.Fatal(err)
		}
	}
}

// A shipment and the head it carries are one transaction: accepted, both
// are stored; refused, the ShipError is the answer and the head is stored
// with it; when the head cannot be stored, the entries are not either, so
// an error answer never hides committed entries (the gateway resends them).
// A head past math.MaxInt64 is refused before anything is stored.
func TestShipmentAndItsHeadAreOneTransaction(t *testing.T) {
	withDB(t, func(t *testing.T, ix *index.SQLStore, db *sql.DB, pg bool) {
		ctx := context.Background()
		l := shipped(t, ix, 8)
		total := uint64(len(l.Lines))

		pos, err := ix.IngestShipment(ctx, gwMPS, l.Lines[:5], total)
		if err != nil || pos.Next != 6 {
			t.Fatalf("a shipment with its head: %+v %v", pos, err)
		}
		if sh := shippingOf(t, ix, gwMPS); sh.Shipped != 5 || sh.Head != total || sh.Lag != total-5 || sh.HeadAt.IsZero() || sh.ShippedAt.IsZero() {
			t.Fatalf("after a shipment with its head: %+v", sh)
		}

		// Refused (a fork), with a head: the ShipError, and the head stored.
		alt := append(append([]byte(nil), l.Lines[2]...), ' ')
		_, err = ix.IngestShipment(ctx, gwMPS, [][]byte{alt}, total+3)
		shipErr(t, err, index.AlertFork, 3)
		if sh := shippingOf(t, ix, gwMPS); sh.Shipped != 5 || sh.Head != total+3 || sh.Lag != total+3-5 {
			t.Fatalf("after a refused shipment with its head: %+v", sh)
		}

		// The head cannot be stored: nothing of the shipment is.
		const bad = 4242
		refuseHead(t, db, pg, bad)
		_, err = ix.IngestShipment(ctx, gwMPS, l.Lines[5:], bad)
		var se *index.ShipError
		if err == nil || errors.As(err, &se) {
			t.Fatalf("a shipment whose head could not be stored: %v; want the store's error", err)
		}
		if pos, err := ix.Position(ctx, gwMPS); err != nil || pos.Next != 6 {
			t.Fatalf("entries were committed under an error answer: position %+v %v", pos, err)
		}

		// Past math.MaxInt64: invalid, nothing stored, for shipments and heartbeats.
		for _, head := range []uint64{1 << 63, 1<<64 - 1} {
			if _, err := ix.IngestShipment(ctx, gwMPS, l.Lines[5:], head); !errors.Is(err, index.ErrInvalid) {
				t.Fatalf("a shipment with head %d: %v; want ErrInvalid", head, err)
			}
			if err := ix.ReportHead(ctx, gwMPS, head); !errors.Is(err, index.ErrInvalid) {
				t.Fatalf("a heartbeat with head %d: %v; want ErrInvalid", head, err)
			}
		}
		if pos, _ := ix.Position(ctx, gwMPS); pos.Next != 6 {
			t.Fatalf("a shipment with an impossible head moved the position to %d", pos.Next)
		}
		if sh := shippingOf(t, ix, gwMPS); sh.Head != total+3 {
			t.Fatalf("an impossible head was stored: %+v", sh)
		}
	})
}
