package sqlstore

import (
	"context"
	"database/sql"
	"embed"
	"errors"
	"fmt"
	"io/fs"
	"path"
	"sort"
	"strconv"
	"strings"
)

// migrationFS holds the schema migrations, one ordered list per dialect:
// migrations/<dialect>/NNNN_name.sql. Versions start at 1 and have no gaps;
// both dialects carry the same versions. A migration, once released, is
// never edited: changes go into a new file.
//
//go:embed migrations
var migrationFS embed.FS

// ErrSchemaTooNew is matched (errors.Is) by the error Open returns when the
// database was migrated by a newer lienthong than this one. Running an old
// binary on a newer schema could misread or damage data, so it refuses.
var ErrSchemaTooNew = errors.New("database schema is newer than this binary supports")

// SchemaTooNewError reports the database's schema version and the newest
// one this binary knows.
type SchemaTooNewError struct {
	// Version is the database's schema version.
	Version int
	// Supported is the newest version this binary can run on.
	Supported int
}

// Error tells the operator what to do.
func (e *SchemaTooNewError) Error() string {
	return fmt.Sprintf("database schema version %d is newer than this binary supports (%d); upgrade lienthong", e.Version, e.Supported)
}

// Is makes errors.Is(err, ErrSchemaTooNew) true.
func (e *SchemaTooNewError) Is(target error) bool { return target == ErrSchemaTooNew }

// migration is one schema step.
type migration struct {
	version int
	name    string
	sql     string
}

// loadMigrations reads and checks the embedded migrations of dir.
func loadMigrations(dir string) ([]migration, error) {
	entries, err := fs.ReadDir(migrationFS, dir)
	if err != nil {
		return nil, fmt.Errorf("read migrations: %w", err)
	}
	var ms []migration
	for _, e := range entries {
		if e.IsDir() || !strings.HasSuffix(e.Name(), ".sql") {
			continue
		}
		num, _, ok := strings.Cut(e.Name(), "_")
		v, err := strconv.Atoi(num)
		if !ok || err != nil || v < 1 {
			return nil, fmt.Errorf("migration %s/%s: name must be NNNN_description.sql", dir, e.Name())
		}
		b, err := migrationFS.ReadFile(path.Join(dir, e.Name()))
		if err != nil {
			return nil, err
		}
		ms = append(ms, migration{version: v, name: e.Name(), sql: string(b)})
	}
	sort.Slice(ms, func(i, j int) bool { return ms[i].version < ms[j].version })
	for i, m := range ms {
		if m.version != i+1 {
			return nil, fmt.Errorf("migrations %s: expected version %d, found %s (versions must run 1, 2, 3… without gaps or repeats)", dir, i+1, m.name)
		}
	}
	if len(ms) == 0 {
		return nil, fmt.Errorf("migrations %s: none embedded", dir)
	}
	return ms, nil
}

// migrate applies every migration the database lacks, each in its own
// transaction that also records it in schema_migrations. Each transaction
// first takes the dialect's migration lock and re-reads the version, so
// concurrent Opens apply each step once.
func migrate(ctx context.Context, db *sql.DB, d *dialect) error {
	ms, err := loadMigrations(d.migrations)
	if err != nil {
		return err
	}
	latest := ms[len(ms)-1].version
	for {
		done, err := migrateStep(ctx, db, d, ms, latest)
		if err != nil || done {
			return err
		}
	}
}

// migrateStep applies the next missing migration, or reports done.
func migrateStep(ctx context.Context, db *sql.DB, d *dialect, ms []migration, latest int) (done bool, err error) {
	tx, err := db.BeginTx(ctx, nil)
	if err != nil {
		return false, fmt.Errorf("migrate: begin: %w", err)
	}
	defer tx.Rollback()
	if d.lockMigrations != "" {
		if _, err := tx.ExecContext(ctx, d.lockMigrations); err != nil {
			return false, fmt.Errorf("migrate: lock: %w", err)
		}
	}
	if _, err := tx.ExecContext(ctx, d.migrationsTable); err != nil {
		return false, fmt.Errorf("migrate: create schema_migrations: %w", err)
	}
	current, err := schemaVersion(ctx, tx)
	if err != nil {
		return false, fmt.Errorf("migrate: %w", err)
	}
	if current > latest {
		return false, &SchemaTooNewError{Version: current, Supported: latest}
	}
	if current == latest {
		return true, tx.Commit()
	}
	m := ms[current] // versions are 1..latest, so this is version current+1
	if _, err := tx.ExecContext(ctx, m.sql); err != nil {
		return false, fmt.Errorf("migrate: apply %s: %w", m.name, err)
	}
	if _, err := tx.ExecContext(ctx,
		"INSERT INTO schema_migrations (version, applied_at) VALUES ($1, "+d.now+")", m.version); err != nil {
		return false, fmt.Errorf("migrate: record %s: %w", m.name, err)
	}
	if err := tx.Commit(); err != nil {
		return false, fmt.Errorf("migrate: commit %s: %w", m.name, err)
	}
	return false, nil
}

// schemaVersion reads the newest applied version (0 for a fresh database).
func schemaVersion(ctx context.Context, q queryer) (int, error) {
	var v int
	if err := q.QueryRowContext(ctx, "SELECT COALESCE(MAX(version), 0) FROM schema_migrations").Scan(&v); err != nil {
		return 0, fmt.Errorf("read schema version: %w", err)
	}
	return v, nil
}
