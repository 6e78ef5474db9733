package synthetic

import (
	"context"
	"database/sql"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"strconv"
	"strings"

	_ "modernc.org/sqlite" // the pure-Go SQLite driver the catalog uses too
)

// SQLiteStore is a population database in one SQLite file: the record of
// each citizen as its JSON, keyed by personal id, with the permanent
// residence province beside it (the usual row-scope field, indexed). It is
// what `lienthong up` serves the national population database from, so a
// demo's data survives restarts without regenerating it.
type SQLiteStore struct {
	db *sql.DB
	// Count is how many citizens the file holds; Seed is the seed they
	// were generated from.
	Count int
	Seed  int64
}

// sqliteSchema is created, with the citizens, in one transaction; the
// meta row is written last, so a file with a meta row is complete.
const sqliteSchema = `
CREATE TABLE citizens (
	personal_id   TEXT NOT NULL,
	province_code TEXT NOT NULL,
	record        TEXT NOT NULL
);
CREATE TABLE meta (count INTEGER NOT NULL, seed INTEGER NOT NULL);
`

// sqliteIndexes are built after the rows are in: one sort instead of a
// B-tree insert per row.
const sqliteIndexes = `
CREATE UNIQUE INDEX citizens_id ON citizens (personal_id);
CREATE INDEX citizens_province ON citizens (province_code, personal_id);
`

// loadBatch is how many citizens one INSERT statement carries.
const loadBatch = 250

// OpenSQLite opens the population database at path, generating n citizens
// from seed into it first when the file holds none yet (created reports
// that). Generation is deterministic and written in one transaction, so a
// crash while loading leaves no half-filled database: the next open starts
// over. A file already loaded is used as it is, whatever n and seed say.
func OpenSQLite(ctx context.Context, path string, n int, seed int64) (st *SQLiteStore, created bool, err error) {
	db, err := sql.Open("sqlite", path+"?_pragma=busy_timeout(10000)&_pragma=journal_mode(WAL)&_pragma=synchronous(NORMAL)")
	if err != nil {
		return nil, false, fmt.Errorf("population database %s: %w", path, err)
	}
	defer func() {
		if err != nil {
			db.Close()
		}
	}()
	st = &SQLiteStore{db: db}
	err = db.QueryRowContext(ctx, "SELECT count, seed FROM meta").Scan(&st.Count, &st.Seed)
	if err == nil {
		return st, false, nil
	}
	if !strings.Contains(err.Error(), "no such table") && !errors.Is(err, sql.ErrNoRows) {
		return nil, false, fmt.Errorf("population database %s: %w", path, err)
	}
	if err := st.load(ctx, n, seed); err != nil {
		return nil, false, fmt.Errorf("population database %s: %w", path, err)
	}
	return st, true, nil
}

// load generates and stores the citizens in one transaction.
func (s *SQLiteStore) load(ctx context.Context, n int, seed int64) error {
	n = min(max(n, 0), maxCitizens)
	tx, err := s.db.BeginTx(ctx, nil)
	if err != nil {
		return err
	}
	defer tx.Rollback() // no-op after Commit
	// A file left by a crash mid-load has no tables (the transaction never
	// committed); drop them anyway in case of an older, partial layout.
	for _, stmt := range []string{"DROP TABLE IF EXISTS citizens", "DROP TABLE IF EXISTS meta"} {
		if _, err := tx.ExecContext(ctx, stmt); err != nil {
			return err
		}
	}
	if _, err := tx.ExecContext(ctx, sqliteSchema); err != nil {
		return fmt.Errorf("creating tables: %w", err)
	}
	full, err := tx.PrepareContext(ctx, insertRows(loadBatch))
	if err != nil {
		return err
	}
	defer full.Close()
	// Generating and encoding (one core) runs beside SQLite's inserts
	// (another): batches pass through a short queue.
	batches := make(chan []any, 4)
	stop := make(chan struct{})
	defer close(stop)
	go func() {
		defer close(batches)
		g := NewGenerator(seed)
		for left := n; left > 0; {
			k := min(left, loadBatch)
			args := make([]any, 0, 3*k)
			for range k {
				c := g.Next()
				rec, _ := json.Marshal(&c) // plain structs of strings: cannot fail
				args = append(args, c.PersonalID, c.PermanentResidence.ProvinceCode, string(rec))
			}
			left -= k
			select {
			case batches <- args:
			case <-stop:
				return
			}
		}
	}()
	for args := range batches {
		stmt := full
		if len(args) < 3*loadBatch {
			if stmt, err = tx.PrepareContext(ctx, insertRows(len(args)/3)); err != nil {
				return err
			}
			defer stmt.Close()
		}
		if _, err := stmt.ExecContext(ctx, args...); err != nil {
			return fmt.Errorf("storing citizens %d to %d: %w", s.Count+1, s.Count+len(args)/3, err)
		}
		s.Count += len(args) / 3
	}
	if _, err := tx.ExecContext(ctx, sqliteIndexes); err != nil {
		return fmt.Errorf("indexing: %w", err)
	}
	if _, err := tx.ExecContext(ctx, "INSERT INTO meta (count, seed) VALUES (?, ?)", s.Count, seed); err != nil {
		return err
	}
	s.Seed = seed
	return tx.Commit()
}

// insertRows is an INSERT of n citizens.
func insertRows(n int) string {
	return "INSERT INTO citizens (personal_id, province_code, record) VALUES " +
		strings.TrimSuffix(strings.Repeat("(?, ?, ?),", n), ",")
}

// Close closes the database file.
func (s *SQLiteStore) Close() error { return s.db.Close() }

// Record returns the stored JSON of one citizen, or ok false.
func (s *SQLiteStore) Record(ctx context.Context, personalID string) (record []byte, ok bool, err error) {
	var rec string
	err = s.db.QueryRowContext(ctx, "SELECT record FROM citizens WHERE personal_id = ?", personalID).Scan(&rec)
	if errors.Is(err, sql.ErrNoRows) {
		return nil, false, nil
	}
	if err != nil {
		return nil, false, err
	}
	return []byte(rec), true, nil
}

// Handler serves the stored citizens as the population database's REST
// backend, as the in-memory Handler does:
//
//	GET /citizens/{personalId}       one record, or 404
//	GET /citizens?limit=N&after=ID   records in personal id order
func (s *SQLiteStore) Handler() http.Handler {
	mux := http.NewServeMux()
	mux.HandleFunc("GET /citizens/{personalId}", func(w http.ResponseWriter, r *http.Request) {
		rec, ok, err := s.Record(r.Context(), r.PathValue("personalId"))
		switch {
		case err != nil:
			problem(w, http.StatusServiceUnavailable, "the population database could not be read")
		case !ok:
			problem(w, http.StatusNotFound, "no citizen has this personal identification number")
		default:
			w.Header().Set("Content-Type", "application/json")
			w.Header().Set("Content-Length", strconv.Itoa(len(rec)))
			w.Write(rec)
		}
	})
	mux.HandleFunc("GET /citizens", s.list)
	mux.HandleFunc("/", unknownResource)
	return mux
}

func (s *SQLiteStore) list(w http.ResponseWriter, r *http.Request) {
	q := r.URL.Query()
	limit := defaultListLimit
	if v, ok := q["limit"]; ok {
		n, err := strconv.Atoi(strings.Join(v, ","))
		if err != nil || n < 1 || n > maxListLimit {
			problem(w, http.StatusBadRequest, "limit must be one whole number from 1 to 1000")
			return
		}
		limit = n
	}
	after := ""
	if v, ok := q["after"]; ok {
		if len(v) != 1 {
			problem(w, http.StatusBadRequest, "after must be given once")
			return
		}
		after = v[0]
	}
	rows, err := s.db.QueryContext(r.Context(), "SELECT record FROM citizens WHERE personal_id > ? ORDER BY personal_id LIMIT ?", after, limit)
	if err != nil {
		problem(w, http.StatusServiceUnavailable, "the population database could not be read")
		return
	}
	defer rows.Close()
	buf := []byte{'['}
	for rows.Next() {
		var rec string
		if err := rows.Scan(&rec); err != nil {
			problem(w, http.StatusServiceUnavailable, "the population database could not be read")
			return
		}
		if len(buf) > 1 {
			buf = append(buf, ',')
		}
		buf = append(buf, rec...)
	}
	if rows.Err() != nil {
		problem(w, http.StatusServiceUnavailable, "the population database could not be read")
		return
	}
	w.Header().Set("Content-Type", "application/json")
	w.Write(append(buf, ']'))
}
