package sqlstore

import (
	"database/sql"
	"errors"
	"time"

	"github.com/jackc/pgx/v5/pgconn"
	"modernc.org/sqlite"
	sqlite3 "modernc.org/sqlite/lib"
)

// errKind is what a driver error means to the catalog.
type errKind int

const (
	errOther      errKind = iota
	errUnique             // a primary key or unique constraint was violated
	errForeignKey         // a referenced row does not exist
)

// dialect captures everything that differs between SQLite and PostgreSQL.
// The SQL of the queries themselves is shared: both accept $n placeholders
// (modernc.org/sqlite binds "$1" to the first argument, as PostgreSQL does;
// a repeated "$1" is one parameter in both), SAVEPOINT and RETURNING.
type dialect struct {
	name string
	// migrations is the directory of the embedded migration files.
	migrations string
	// migrationsTable creates schema_migrations if it is missing.
	migrationsTable string
	// now is the SQL expression of the database's current time.
	now string
	// lockMigrations runs first in every migration transaction so that
	// concurrent Opens take turns ("" when BEGIN already serialises).
	lockMigrations string
	// lockWrites runs first in every Update transaction ("" when the store
	// serialises writers itself).
	lockWrites string
	// viewTx opens the transaction of View: one snapshot for all its reads.
	viewTx *sql.TxOptions
	// timeArg turns a normalised UTC time into the value the driver stores.
	timeArg func(time.Time) any
	// classify maps a driver error to its meaning.
	classify func(error) errKind
}

// sqliteTimeLayout stores times as fixed-width UTC text with microseconds:
// it sorts like the instant it names and reads well in the sqlite3 shell.
const sqliteTimeLayout = "2006-01-02T15:04:05.000000Z"

// Advisory lock keys (PostgreSQL), arbitrary constants private to the catalog
// schema. Migrations and writes use different keys so that a migration in
// progress does not wait on itself.
const (
	pgMigrateLockKey = 0x4c54_4341_4d49_4701 // "LTCAMIG" + 1
	pgWriteLockKey   = 0x4c54_4341_5752_4901 // "LTCAWRI" + 1
)

var sqliteDialect = &dialect{
	name:       "sqlite",
	migrations: "migrations/sqlite",
	migrationsTable: `CREATE TABLE IF NOT EXISTS schema_migrations (
		version INTEGER PRIMARY KEY,
		applied_at TEXT NOT NULL
	)`,
	now: `strftime('%Y-%m-%dT%H:%M:%fZ', 'now')`,
	// BEGIN IMMEDIATE (the _txlock DSN parameter) already takes the write
	// lock, across processes too; the store's semaphore orders goroutines.
	lockMigrations: "",
	lockWrites:     "",
	// A read-only transaction begins DEFERRED (not IMMEDIATE, as writers
	// do): under WAL its first read fixes the snapshot every later read of
	// the transaction sees, and it neither waits for nor blocks the writer.
	viewTx:  &sql.TxOptions{ReadOnly: true},
	timeArg: func(t time.Time) any { return t.Format(sqliteTimeLayout) },
	classify: func(err error) errKind {
		var se *sqlite.Error
		if !errors.As(err, &se) {
			return errOther
		}
		switch se.Code() {
		case sqlite3.SQLITE_CONSTRAINT_PRIMARYKEY, sqlite3.SQLITE_CONSTRAINT_UNIQUE:
			return errUnique
		case sqlite3.SQLITE_CONSTRAINT_FOREIGNKEY:
			return errForeignKey
		}
		return errOther
	},
}

var postgresDialect = &dialect{
	name:       "postgres",
	migrations: "migrations/postgres",
	migrationsTable: `CREATE TABLE IF NOT EXISTS schema_migrations (
		version INTEGER PRIMARY KEY,
		applied_at TIMESTAMPTZ NOT NULL
	)`,
	now:            `now()`,
	lockMigrations: "SELECT pg_advisory_xact_lock(" + itoa(pgMigrateLockKey) + ")",
	// One writer at a time across every process sharing the database: the
	// trail's Seq is then assigned in commit order, so a reader that has seen
	// Seq n has seen everything before it and Revision is a safe watermark.
	// Catalog writes are rare; the serialisation costs nothing that matters.
	lockWrites: "SELECT pg_advisory_xact_lock(" + itoa(pgWriteLockKey) + ")",
	// REPEATABLE READ takes one snapshot at the first statement; all reads
	// of the transaction see it (READ COMMITTED would take one per statement).
	viewTx:  &sql.TxOptions{Isolation: sql.LevelRepeatableRead, ReadOnly: true},
	timeArg: func(t time.Time) any { return t },
	classify: func(err error) errKind {
		var pe *pgconn.PgError
		if !errors.As(err, &pe) {
			return errOther
		}
		switch pe.Code {
		case "23505": // unique_violation
			return errUnique
		case "23503": // foreign_key_violation
			return errForeignKey
		}
		return errOther
	},
}
