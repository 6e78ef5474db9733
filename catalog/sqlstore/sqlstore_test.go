package sqlstore_test

import (
	"context"
	"crypto/rand"
	"database/sql"
	"encoding/hex"
	"errors"
	"net/url"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/lienthong/lienthong/catalog"
	"github.com/lienthong/lienthong/catalog/sqlstore"
	"github.com/lienthong/lienthong/catalog/storetest"
)

// backend opens stores of one dialect on fresh databases.
type backend struct {
	name string
	// fresh makes a new empty database and returns where it is (a file path
	// or a DSN); it is removed when the test ends.
	fresh func(t *testing.T) string
	open  func(ctx context.Context, loc string) (*sqlstore.Store, error)
	// raw opens the database directly, to tamper with it.
	raw func(t *testing.T, loc string) *sql.DB
	// available skips (or fails) the test when the backend cannot run here.
	available func(t *testing.T)
}

var sqliteBackend = backend{
	name:      "sqlite",
	fresh:     func(t *testing.T) string { return filepath.Join(t.TempDir(), "catalog.db") },
	open:      sqlstore.OpenSQLite,
	available: func(t *testing.T) {},
	raw: func(t *testing.T, loc string) *sql.DB {
		db, err := sql.Open("sqlite", loc+"?_pragma=busy_timeout(10000)")
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { db.Close() })
		return db
	},
}

var postgresBackend = backend{
	name:      "postgres",
	fresh:     freshPostgres,
	open:      sqlstore.OpenPostgres,
	available: func(t *testing.T) { storetest.PostgresDSN(t) },
	raw: func(t *testing.T, loc string) *sql.DB {
		db, err := sql.Open("pgx", loc)
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { db.Close() })
		return db
	},
}

var backends = []backend{sqliteBackend, postgresBackend}

// freshPostgres creates database lt_<random> on the server of
// LIENTHONG_POSTGRES_DSN (skipping without one) and drops it at cleanup.
func freshPostgres(t *testing.T) string {
	t.Helper()
	dsn := storetest.PostgresDSN(t)
	admin, err := sql.Open("pgx", dsn)
	if err != nil {
		t.Fatal(err)
	}
	var b [8]byte
	rand.Read(b[:])
	// The name is ours (hex), never input, so it can be spliced into the DDL.
	name := "lt_" + hex.EncodeToString(b[:])
	if _, err := admin.ExecContext(t.Context(), "CREATE DATABASE "+name); err != nil {
		admin.Close()
		t.Fatalf("create test database: %v", err)
	}
	t.Cleanup(func() {
		defer admin.Close()
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer cancel()
		if _, err := admin.ExecContext(ctx, "DROP DATABASE IF EXISTS "+name+" WITH (FORCE)"); err != nil {
			t.Errorf("drop test database %s: %v", name, err)
		}
	})
	return withDatabase(t, dsn, name)
}

// withDatabase points dsn (URL or key=value form) at another database.
func withDatabase(t *testing.T, dsn, name string) string {
	if strings.HasPrefix(dsn, "postgres://") || strings.HasPrefix(dsn, "postgresql://") {
		u, err := url.Parse(dsn)
		if err != nil {
			t.Fatalf("LIENTHONG_POSTGRES_DSN: %v", err)
		}
		u.Path = "/" + name
		return u.String()
	}
	return dsn + " dbname=" + name // the last dbname wins
}

// openStore opens a fresh store of b, closed when the test ends.
func openStore(t *testing.T, b backend) *sqlstore.Store {
	t.Helper()
	loc := b.fresh(t)
	s, err := b.open(t.Context(), loc)
	if err != nil {
		t.Fatalf("open %s store: %v", b.name, err)
	}
	t.Cleanup(func() { s.Close() })
	return s
}

func TestConformance(t *testing.T) {
	for _, b := range backends {
		t.Run(b.name, func(t *testing.T) {
			b.available(t)
			start := time.Now()
			storetest.Run(t, func(t *testing.T) catalog.Store { return openStore(t, b) })
			t.Logf("%s conformance suite: %v", b.name, time.Since(start).Round(time.Millisecond))
		})
	}
}

// TestReferences checks what the schema adds to the interface: references
// to missing members and systems are refused with ErrNotFound, and a system
// stored without its member gets it from its id.
func TestReferences(t *testing.T) {
	for _, b := range backends {
		t.Run(b.name, func(t *testing.T) {
			b.available(t)
			s := openStore(t, b)
			ctx := t.Context()
			const member, system = "000.00.00.G01", "VN:GOV:000.00.00.G01:CSDLDC"
			missing := []struct {
				name string
				fn   func(tx catalog.Tx) error
			}{
				{"system of a missing member", func(tx catalog.Tx) error {
					return tx.CreateSystem(ctx, &catalog.System{ID: system, Name: "x", SecurityLevel: 3})
				}},
				{"token of a missing member", func(tx catalog.Tx) error {
					return tx.CreateToken(ctx, &catalog.Token{ID: "tok-1", Role: catalog.RoleApprover, Member: member})
				}},
				{"dataset of a missing system", func(tx catalog.Tx) error {
					return tx.InsertDataset(ctx, &catalog.Dataset{System: system, Code: "population", Version: 1})
				}},
				{"request of a missing system", func(tx catalog.Tx) error {
					return tx.CreateAccessRequest(ctx, &catalog.AccessRequest{ID: "req-1", Consumer: system, Provider: system})
				}},
				{"certificate of a missing system", func(tx catalog.Tx) error {
					return tx.InsertCertificate(ctx, &catalog.Certificate{Serial: "01", System: system})
				}},
			}
			for _, m := range missing {
				err := s.Update(ctx, m.fn)
				if !errors.Is(err, catalog.ErrNotFound) {
					t.Errorf("%s: got %v, want ErrNotFound", m.name, err)
				}
			}

			err := s.Update(ctx, func(tx catalog.Tx) error {
				if err := tx.CreateMember(ctx, &catalog.Member{Code: member, Name: "Bộ Công an"}); err != nil {
					return err
				}
				return tx.CreateSystem(ctx, &catalog.System{ID: system, Name: "CSDLQG về dân cư", SecurityLevel: 4})
			})
			if err != nil {
				t.Fatal(err)
			}
			got, err := s.ListSystems(ctx, catalog.SystemFilter{Member: member})
			if err != nil || len(got) != 1 || got[0].Member != member {
				t.Errorf("system stored without a member: listed %+v (%v), want its member %s from the id", got, err, member)
			}
		})
	}
}

// TestCreateSystemWithAssessment: an assessment given at creation is recorded.
func TestCreateSystemWithAssessment(t *testing.T) {
	s := openStore(t, sqliteBackend)
	ctx := t.Context()
	a := &catalog.Assessment{Level: 3, AssessedBy: "Cục ATTT", Reference: "QĐ 1", ValidUntil: time.Date(2030, 1, 1, 0, 0, 0, 0, time.UTC)}
	err := s.Update(ctx, func(tx catalog.Tx) error {
		if err := tx.CreateMember(ctx, &catalog.Member{Code: "000.00.00.G01", Name: "x"}); err != nil {
			return err
		}
		return tx.CreateSystem(ctx, &catalog.System{ID: "VN:GOV:000.00.00.G01:A", Name: "a", SecurityLevel: 3, Assessment: a})
	})
	if err != nil {
		t.Fatal(err)
	}
	got, err := s.GetSystem(ctx, "VN:GOV:000.00.00.G01:A")
	if err != nil || got.Assessment == nil || got.Assessment.Reference != "QĐ 1" {
		t.Errorf("GetSystem: %+v, %v; want the assessment given at creation", got, err)
	}
}

func TestOpenSQLiteRejectsNonFiles(t *testing.T) {
	for _, p := range []string{"", ":memory:", "file:x.db", "x.db?mode=ro"} {
		if s, err := sqlstore.OpenSQLite(t.Context(), p); err == nil {
			s.Close()
			t.Errorf("OpenSQLite(%q) succeeded, want an error", p)
		}
	}
}

func TestUpdateWaitsForContext(t *testing.T) {
	s := openStore(t, sqliteBackend)
	hold := make(chan struct{})
	held := make(chan struct{})
	go s.Update(context.Background(), func(tx catalog.Tx) error {
		close(held)
		<-hold
		return nil
	})
	<-held
	defer close(hold)
	ctx, cancel := context.WithTimeout(t.Context(), 50*time.Millisecond)
	defer cancel()
	err := s.Update(ctx, func(tx catalog.Tx) error { return nil })
	if !errors.Is(err, context.DeadlineExceeded) {
		t.Errorf("Update while another holds the write lock, with a 50ms deadline: %v, want DeadlineExceeded", err)
	}
}
