// Package sqlstore implements catalog.Store over database/sql, for SQLite
// (the embedded default, modernc.org/sqlite, no cgo) and PostgreSQL (pgx).
// Both share one set of queries; a small dialect value holds what differs:
// column types, the database's "now", how writers are serialised and how
// driver errors map to catalog.ErrConflict and catalog.ErrNotFound.
//
// The schema is created and upgraded by embedded, versioned migrations that
// run when the store is opened.
package sqlstore

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"strings"
	"time"

	_ "github.com/jackc/pgx/v5/stdlib" // registers the "pgx" driver
	_ "modernc.org/sqlite"             // registers the "sqlite" driver

	"github.com/lienthong/lienthong/catalog"
)

// Store is a catalog.Store backed by SQLite or PostgreSQL. It is safe for
// concurrent use. Reads go straight to the database; writes run in Update,
// one at a time.
type Store struct {
	reader
	db *sql.DB
	// wsem serialises Update calls of this process (SQLite only: the file
	// has one writer, and waiting here beats failing with SQLITE_BUSY).
	wsem chan struct{}
}

var (
	_ catalog.Store = (*Store)(nil)
	_ catalog.Tx    = (*tx)(nil)
)

// queryer is what the read and write methods need; *sql.DB and *sql.Tx both
// have it, so each method is written once and works on the store and in a
// transaction alike.
type queryer interface {
	ExecContext(ctx context.Context, query string, args ...any) (sql.Result, error)
	QueryContext(ctx context.Context, query string, args ...any) (*sql.Rows, error)
	QueryRowContext(ctx context.Context, query string, args ...any) *sql.Row
}

// reader implements catalog.Reader over a queryer.
type reader struct {
	q queryer
	d *dialect
}

// tx implements catalog.Tx inside one database transaction.
type tx struct {
	reader
}

// OpenSQLite opens (creating it if needed) the SQLite database file at path
// and brings its schema up to date. The file runs in WAL mode with
// synchronous=NORMAL (durable across process crashes, fast), foreign keys on
// and a busy timeout, and writers take the lock when they begin, so other
// processes opening the same file wait rather than fail.
//
// path must name a file: ":memory:" would give every pooled connection its
// own empty database. Tests use a file in t.TempDir().
func OpenSQLite(ctx context.Context, path string) (*Store, error) {
	if path == "" || strings.Contains(path, ":memory:") || strings.HasPrefix(path, "file:") || strings.Contains(path, "?") {
		return nil, fmt.Errorf("open sqlite store: %q must be a plain file path (no file: URI, no ? query, not :memory:)", path)
	}
	// Refuse, before SQLite touches anything, files it would open by
	// dropping committed transactions.
	if err := checkSQLiteFiles(path); err != nil {
		return nil, fmt.Errorf("open sqlite store %s: %w", path, err)
	}
	dsn := path + "?_pragma=busy_timeout(10000)" +
		"&_pragma=journal_mode(WAL)" +
		"&_pragma=synchronous(NORMAL)" +
		"&_pragma=foreign_keys(1)" +
		"&_txlock=immediate"
	db, err := sql.Open("sqlite", dsn)
	if err != nil {
		return nil, fmt.Errorf("open sqlite store %s: %w", path, err)
	}
	// Readers run concurrently under WAL; the semaphore keeps to one writer.
	db.SetMaxOpenConns(8)
	db.SetMaxIdleConns(8)
	s := &Store{reader: reader{q: db, d: sqliteDialect}, db: db, wsem: make(chan struct{}, 1)}
	if err := s.quickCheck(ctx); err != nil {
		db.Close()
		return nil, fmt.Errorf("open sqlite store %s: %w", path, err)
	}
	if err := s.init(ctx); err != nil {
		db.Close()
		return nil, fmt.Errorf("open sqlite store %s: %w", path, err)
	}
	return s, nil
}

// OpenPostgres connects to the PostgreSQL database named by dsn (a URL or
// key=value connection string, as pgx accepts) and brings its schema up to
// date. Several processes may open the same database at once: migrations
// and writes are serialised with advisory locks.
func OpenPostgres(ctx context.Context, dsn string) (*Store, error) {
	// Errors never repeat the DSN: it may hold a password.
	db, err := sql.Open("pgx", dsn)
	if err != nil {
		return nil, fmt.Errorf("open postgres store: %w", err)
	}
	db.SetMaxOpenConns(16)
	db.SetMaxIdleConns(4)
	s := &Store{reader: reader{q: db, d: postgresDialect}, db: db}
	if err := s.init(ctx); err != nil {
		db.Close()
		return nil, fmt.Errorf("open postgres store: %w", err)
	}
	return s, nil
}

// quickCheck runs SQLite's own structural check (pages, b-trees) before
// anything is written, for damage the file check cannot see.
func (s *Store) quickCheck(ctx context.Context) error {
	rows, err := s.db.QueryContext(ctx, "PRAGMA quick_check")
	if err != nil {
		return fmt.Errorf("%w: %v", ErrDamaged, err)
	}
	defer rows.Close()
	var problems []string
	for rows.Next() {
		var line string
		if err := rows.Scan(&line); err != nil {
			return err
		}
		if line != "ok" && len(problems) < 5 {
			problems = append(problems, line)
		}
	}
	if err := rows.Err(); err != nil {
		return fmt.Errorf("%w: %v", ErrDamaged, err)
	}
	if len(problems) > 0 {
		return fmt.Errorf("%w: %s", ErrDamaged, strings.Join(problems, "; "))
	}
	return nil
}

// init checks the connection and migrates the schema.
func (s *Store) init(ctx context.Context) error {
	if err := s.db.PingContext(ctx); err != nil {
		return fmt.Errorf("connect: %w", err)
	}
	return migrate(ctx, s.db, s.d)
}

// Close closes the database. Calls in flight may fail. A SQLite store is
// checkpointed first, so the database file holds everything and the WAL
// is empty: the file alone is then a complete copy of the catalog.
func (s *Store) Close() error {
	var errs []error
	if s.d == sqliteDialect {
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer cancel()
		if _, err := s.db.ExecContext(ctx, "PRAGMA wal_checkpoint(TRUNCATE)"); err != nil {
			errs = append(errs, fmt.Errorf("checkpoint: %w", err))
		}
	}
	if err := s.db.Close(); err != nil {
		errs = append(errs, err)
	}
	return errors.Join(errs...)
}

// Update runs fn in one transaction and commits it when fn returns nil. When
// fn returns an error or panics, everything it wrote is rolled back and the
// error (unchanged) or the panic is passed on.
//
// Updates are serialised: on SQLite by the store (and BEGIN IMMEDIATE across
// processes), on PostgreSQL by an advisory lock across every process, so
// the trail's Seq order is the commit order. fn must not call Update itself
// (it would wait for its own lock); it reads through tx.
func (s *Store) Update(ctx context.Context, fn func(tx catalog.Tx) error) (err error) {
	if s.wsem != nil {
		select {
		case s.wsem <- struct{}{}:
			defer func() { <-s.wsem }()
		case <-ctx.Done():
			return fmt.Errorf("wait for the write lock: %w", ctx.Err())
		}
	}
	sqlTx, err := s.db.BeginTx(ctx, nil)
	if err != nil {
		return fmt.Errorf("begin transaction: %w", err)
	}
	committed := false
	defer func() {
		// Also runs while a panic unwinds: the panic then carries on.
		if !committed {
			_ = sqlTx.Rollback()
		}
	}()
	if s.d.lockWrites != "" {
		if _, err := sqlTx.ExecContext(ctx, s.d.lockWrites); err != nil {
			return fmt.Errorf("take the write lock: %w", err)
		}
	}
	if err := fn(&tx{reader{q: sqlTx, d: s.d}}); err != nil {
		return err
	}
	if err := sqlTx.Commit(); err != nil {
		return fmt.Errorf("commit: %w", err)
	}
	committed = true
	return nil
}

// View runs fn against one snapshot of the database, in a read-only
// transaction that is rolled back afterwards (see catalog.Store.View).
func (s *Store) View(ctx context.Context, fn func(r catalog.Reader) error) error {
	sqlTx, err := s.db.BeginTx(ctx, s.d.viewTx)
	if err != nil {
		return fmt.Errorf("begin read transaction: %w", err)
	}
	// Nothing was written: rolling back only ends the snapshot, also while
	// a panic unwinds.
	defer func() { _ = sqlTx.Rollback() }()
	return fn(&reader{q: sqlTx, d: s.d})
}

// SchemaVersion is the version of the newest migration applied to the database.
func (s *Store) SchemaVersion(ctx context.Context) (int, error) {
	return schemaVersion(ctx, s.db)
}

// write runs one Tx method's statements inside a savepoint. A failed method
// then leaves nothing behind and, on PostgreSQL, does not poison the
// transaction: fn may handle ErrConflict or ErrNotFound and go on writing,
// with the same result on both dialects.
func (t *tx) write(ctx context.Context, fn func() error) error {
	if _, err := t.q.ExecContext(ctx, "SAVEPOINT lt_write"); err != nil {
		return fmt.Errorf("savepoint: %w", err)
	}
	if err := fn(); err != nil {
		if _, rerr := t.q.ExecContext(ctx, "ROLLBACK TO SAVEPOINT lt_write"); rerr != nil {
			return errors.Join(err, fmt.Errorf("roll back to savepoint: %w", rerr))
		}
		if _, rerr := t.q.ExecContext(ctx, "RELEASE SAVEPOINT lt_write"); rerr != nil {
			return errors.Join(err, fmt.Errorf("release savepoint: %w", rerr))
		}
		return err
	}
	if _, err := t.q.ExecContext(ctx, "RELEASE SAVEPOINT lt_write"); err != nil {
		return fmt.Errorf("release savepoint: %w", err)
	}
	return nil
}

// insertErr explains a failed insert: a duplicate key is ErrConflict, a
// missing referenced row (what names it) is ErrNotFound.
func (d *dialect) insertErr(err error, missing string) error {
	switch d.classify(err) {
	case errUnique:
		return fmt.Errorf("%w: already exists", catalog.ErrConflict)
	case errForeignKey:
		return fmt.Errorf("%w: %s", catalog.ErrNotFound, missing)
	}
	return err
}

// notFoundErr maps sql.ErrNoRows to catalog.ErrNotFound.
func notFoundErr(err error) error {
	if errors.Is(err, sql.ErrNoRows) {
		return catalog.ErrNotFound
	}
	return err
}

// mustAffect turns an UPDATE that matched no row into ErrNotFound.
func mustAffect(res sql.Result, err error) error {
	if err != nil {
		return err
	}
	n, err := res.RowsAffected()
	if err != nil {
		return err
	}
	if n == 0 {
		return catalog.ErrNotFound
	}
	return nil
}

// rowScanner is satisfied by *sql.Row and *sql.Rows.
type rowScanner interface {
	Scan(dest ...any) error
}

// queryList runs a query and scans every row with scan; the result is never nil.
func queryList[T any](ctx context.Context, q queryer, scan func(rowScanner) (T, error), query string, args ...any) ([]T, error) {
	rows, err := q.QueryContext(ctx, query, args...)
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	out := []T{}
	for rows.Next() {
		v, err := scan(rows)
		if err != nil {
			return nil, err
		}
		out = append(out, v)
	}
	if err := rows.Err(); err != nil {
		return nil, err
	}
	return out, nil
}
