package sqlstore

import "database/sql"

// DB returns the store's database handle, so that a store keeping its own
// tables in the same database (the audit index, whose tables the catalog's
// migrations create) shares the pool, the schema version and the backup.
func (s *Store) DB() *sql.DB { return s.db }

// Dialect names the store's SQL dialect: "sqlite" or "postgres".
func (s *Store) Dialect() string { return s.d.name }
