// Package postgres is the adapter for provider backends that are PostgreSQL
// tables or views. It is the adapter that can enforce a decision at the
// source: it selects only the columns of granted fields and applies the row
// scope in the WHERE clause, so ungranted data is never read out of the
// database, let alone sent.
//
// All SQL is built from the validated Mapping alone. The request contributes
// only values, always as bind parameters: the record id, the row-scope
// values, the page size and the page cursor. The request's path chooses
// between listing and getting; nothing in it is ever spliced into SQL.
package postgres

import (
	"context"
	"errors"
	"fmt"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"unicode/utf8"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/lienthong/lienthong/adapters"
)

// DefaultMaxRows is the list page size when Mapping.MaxRows is zero.
const DefaultMaxRows = 1000

// Limits on mappings and requests.
const (
	// maxMaxRows caps Mapping.MaxRows: a list is built in memory before it
	// is returned, so its size must stay bounded.
	maxMaxRows = 100000
	// maxIDBytes bounds a record id; longer ones name no record.
	maxIDBytes = 256
	// maxScopeValues bounds a row scope's value list.
	maxScopeValues = 10000
)

// Errors of this adapter beyond the adapters.Err* values.
var (
	// ErrUnmappedScope means the request carries a row scope on a field
	// the mapping has no column for. The adapter refuses rather than
	// returning unscoped rows: a row scope is never silently ignored.
	ErrUnmappedScope = errors.New("row scope field has no mapped column")
	// ErrBadQuery means a query parameter (limit, after) has an invalid
	// value. The gateway should answer 400.
	ErrBadQuery = errors.New("invalid query parameter")
)

// identifierPattern is what table and column names must look like. Quoting
// alone (pgx.Identifier.Sanitize) would be safe too; the pattern also keeps
// mappings readable and case-unambiguous.
var identifierPattern = regexp.MustCompile(`^[a-z_][a-z0-9_]*$`)

// fieldSegmentPattern is one segment of a field path (dataset property names).
var fieldSegmentPattern = regexp.MustCompile(`^[A-Za-z_][A-Za-z0-9_-]*$`)

// listPathPattern is a collection path such as "citizens" or "v1/citizens".
var listPathPattern = regexp.MustCompile(`^[A-Za-z0-9_-]+(/[A-Za-z0-9_-]+)*$`)

// Mapping maps a table or view to a dataset.
type Mapping struct {
	// Table is the table or view, optionally schema-qualified
	// ("population.citizens"); each part must match ^[a-z_][a-z0-9_]*$.
	Table string
	// Key is the column holding the record id, e.g. "personal_id". Lists
	// are ordered by it and paged after it, so it should be unique and
	// indexed.
	Key string
	// Columns maps dataset field paths to columns. Nested paths such as
	// "permanentResidence.provinceCode" map to flat columns and are
	// re-nested in the output. A column may also hold a whole object or
	// array as json/jsonb (e.g. "relatives"); it is then fetched when the
	// field or any field below it is granted, and the gateway projects it.
	Columns map[string]string
	// ListPath is the collection path: Path == ListPath lists records,
	// Path == ListPath + "/" + id gets one.
	ListPath string
	// MaxRows is the largest list page (default 1000).
	MaxRows int
}

// Adapter fetches records of one mapped table. It is safe for concurrent
// use; the pool is shared and not closed by the adapter.
type Adapter struct {
	pool     *pgxpool.Pool
	table    string // sanitized
	key      string // sanitized
	listPath string
	maxRows  int
	fields   []field // sorted by path
	byPath   map[string]*field
}

var _ adapters.Adapter = (*Adapter)(nil)

// field is one mapped field.
type field struct {
	path   string
	segs   []string
	column string // as mapped, for messages
	quoted string // sanitized, for SQL
}

// New validates m and returns an adapter over pool. It does not touch the
// database; Check does.
func New(pool *pgxpool.Pool, m Mapping) (*Adapter, error) {
	if pool == nil {
		return nil, errors.New("postgres: nil pool")
	}
	table, err := quoteTable(m.Table)
	if err != nil {
		return nil, err
	}
	if !identifierPattern.MatchString(m.Key) {
		return nil, fmt.Errorf("postgres: key column %q: must match %s", m.Key, identifierPattern)
	}
	if !listPathPattern.MatchString(m.ListPath) {
		return nil, fmt.Errorf("postgres: list path %q: must be segments of letters, digits, _ and - separated by /", m.ListPath)
	}
	switch {
	case m.MaxRows < 0 || m.MaxRows > maxMaxRows:
		return nil, fmt.Errorf("postgres: max rows %d: must be between 1 and %d (0 for the default %d)", m.MaxRows, maxMaxRows, DefaultMaxRows)
	case m.MaxRows == 0:
		m.MaxRows = DefaultMaxRows
	}
	if len(m.Columns) == 0 {
		return nil, errors.New("postgres: the mapping has no columns")
	}
	a := &Adapter{
		pool:     pool,
		table:    table,
		key:      pgx.Identifier{m.Key}.Sanitize(),
		listPath: m.ListPath,
		maxRows:  m.MaxRows,
		byPath:   map[string]*field{},
	}
	for path, column := range m.Columns {
		segs := strings.Split(path, ".")
		for _, s := range segs {
			if !fieldSegmentPattern.MatchString(s) {
				return nil, fmt.Errorf("postgres: field path %q: segment %q must match %s", path, s, fieldSegmentPattern)
			}
		}
		if !identifierPattern.MatchString(column) {
			return nil, fmt.Errorf("postgres: column %q of field %q: must match %s", column, path, identifierPattern)
		}
		a.fields = append(a.fields, field{path: path, segs: segs, column: column, quoted: pgx.Identifier{column}.Sanitize()})
	}
	slices.SortFunc(a.fields, func(x, y field) int { return strings.Compare(x.path, y.path) })
	// Sorted, all paths starting with a given path follow it contiguously,
	// so each field's descendants are found among the next entries.
	for i := range a.fields {
		for j := i + 1; j < len(a.fields) && strings.HasPrefix(a.fields[j].path, a.fields[i].path); j++ {
			if strings.HasPrefix(a.fields[j].path, a.fields[i].path+".") {
				return nil, fmt.Errorf("postgres: fields %q and %q overlap: a column cannot hold an object and one of its members", a.fields[i].path, a.fields[j].path)
			}
		}
	}
	for i := range a.fields {
		a.byPath[a.fields[i].path] = &a.fields[i]
	}
	return a, nil
}

// quoteTable validates and quotes a table name, optionally schema-qualified.
func quoteTable(name string) (string, error) {
	parts := strings.Split(name, ".")
	if len(parts) > 2 {
		return "", fmt.Errorf("postgres: table %q: at most schema.table", name)
	}
	for _, p := range parts {
		if !identifierPattern.MatchString(p) {
			return "", fmt.Errorf("postgres: table %q: %q must match %s", name, p, identifierPattern)
		}
	}
	return pgx.Identifier(parts).Sanitize(), nil
}

// Check verifies that the table and every mapped column exist and can be
// read, so a wrong mapping fails at start rather than on the first request.
func (a *Adapter) Check(ctx context.Context) error {
	cols := make([]string, 0, len(a.fields)+1)
	cols = append(cols, a.key)
	for _, f := range a.fields {
		cols = append(cols, f.quoted)
	}
	sql := "SELECT " + strings.Join(cols, ", ") + " FROM " + a.table + " WHERE false"
	rows, err := a.pool.Query(ctx, sql)
	if err != nil {
		return a.queryError(ctx, err, "checking the mapping of", false)
	}
	rows.Close()
	if err := rows.Err(); err != nil {
		return a.queryError(ctx, err, "checking the mapping of", false)
	}
	return nil
}

// Fetch lists records (Path == ListPath) or gets one (ListPath/id),
// selecting only the columns of fields req.Fields allows and only rows in
// req.RowScope. The body is a JSON array or object; Response.Scoped is true.
//
// A list honours the query parameters limit (1..MaxRows, default MaxRows)
// and after (return records whose key sorts after this value), which page
// through a table in key order.
//
// Errors wrap adapters.ErrNotFound (no such record, or a path that names
// none), adapters.ErrTimeout, adapters.ErrBackend, ErrUnmappedScope or
// ErrBadQuery. They never contain the record id or row-scope values.
func (a *Adapter) Fetch(ctx context.Context, req adapters.Request) (*adapters.Response, error) {
	id, list, err := a.route(req.Path)
	if err != nil {
		return nil, err
	}
	selected := a.selectFields(req.Fields)

	var q query
	q.sql.WriteString("SELECT ")
	if len(selected) == 0 {
		// Nothing granted that this table holds: still answer whether
		// the record exists, with an empty object.
		q.sql.WriteString("1")
	}
	for i, f := range selected {
		if i > 0 {
			q.sql.WriteString(", ")
		}
		q.sql.WriteString(f.quoted)
	}
	q.sql.WriteString(" FROM ")
	q.sql.WriteString(a.table)

	var where []string
	if !list {
		where = append(where, a.key+" = "+q.param(id))
	}
	if req.RowScope != nil {
		f, ok := a.byPath[req.RowScope.Field]
		if !ok {
			return nil, fmt.Errorf("postgres: %s: row scope on field %q: %w", a.table, req.RowScope.Field, ErrUnmappedScope)
		}
		if len(req.RowScope.Values) > maxScopeValues {
			return nil, fmt.Errorf("postgres: %s: row scope has %d values; at most %d: %w", a.table, len(req.RowScope.Values), maxScopeValues, adapters.ErrBackend)
		}
		// An empty list matches no row, which is the right answer for a
		// scope that allows nothing.
		values := append([]string{}, req.RowScope.Values...)
		where = append(where, f.quoted+" = ANY("+q.param(values)+")")
	}
	limit := 2 // a get reads a second row only to detect a non-unique key
	if list {
		limit = a.maxRows
		if v, ok, err := singleQuery(req, "limit"); err != nil {
			return nil, err
		} else if ok {
			n, err := strconv.Atoi(v)
			if err != nil || n < 1 || n > a.maxRows {
				return nil, fmt.Errorf("postgres: %s: limit must be a whole number from 1 to %d: %w", a.table, a.maxRows, ErrBadQuery)
			}
			limit = n
		}
		if v, ok, err := singleQuery(req, "after"); err != nil {
			return nil, err
		} else if ok {
			if !validID(v) {
				return nil, fmt.Errorf("postgres: %s: after must be a record id: %w", a.table, ErrBadQuery)
			}
			where = append(where, a.key+" > "+q.param(v))
		}
	}
	if len(where) > 0 {
		q.sql.WriteString(" WHERE ")
		q.sql.WriteString(strings.Join(where, " AND "))
	}
	if list {
		q.sql.WriteString(" ORDER BY " + a.key)
	}
	q.sql.WriteString(" LIMIT " + q.param(limit))

	body, n, err := a.run(ctx, &q, selected, list, limit)
	if err != nil {
		return nil, err
	}
	if !list && n == 0 {
		return nil, fmt.Errorf("postgres: %s: %w", a.table, adapters.ErrNotFound)
	}
	if !list && n > 1 {
		return nil, fmt.Errorf("postgres: %s: key column %s is not unique: %w", a.table, a.key, adapters.ErrBackend)
	}
	return &adapters.Response{Body: body, Scoped: true, Partial: true}, nil
}

// route splits a request path into list or get with its id. Paths that do
// not have exactly the mapped shape name no record.
func (a *Adapter) route(path string) (id string, list bool, err error) {
	if path == a.listPath {
		return "", true, nil
	}
	id, ok := strings.CutPrefix(path, a.listPath+"/")
	if !ok || !validID(id) {
		return "", false, fmt.Errorf("postgres: %s: the path names no record: %w", a.table, adapters.ErrNotFound)
	}
	return id, false, nil
}

// validID reports whether s can be a record id: non-empty, bounded, one
// path segment, valid UTF-8 without NUL (which PostgreSQL text rejects).
func validID(s string) bool {
	return s != "" && len(s) <= maxIDBytes && utf8.ValidString(s) && !strings.ContainsAny(s, "/\x00")
}

// singleQuery returns the one value of query parameter name. Repeating it
// is refused rather than resolved by picking one.
func singleQuery(req adapters.Request, name string) (string, bool, error) {
	values, ok := req.Query[name]
	switch {
	case !ok:
		return "", false, nil
	case len(values) != 1:
		return "", false, fmt.Errorf("postgres: query parameter %s given %d times: %w", name, len(values), ErrBadQuery)
	}
	return values[0], true, nil
}

// selectFields returns the mapped fields the grant covers: those granted
// themselves, those below a granted object ("father" grants
// "father.fullName"), and those holding a granted member in a json column
// ("relatives" when "relatives.fullName" is granted, since adapters must not
// fetch fewer fields than allowed; the gateway projects the rest away).
func (a *Adapter) selectFields(granted []string) []*field {
	var out []*field
	for i := range a.fields {
		f := &a.fields[i]
		for _, g := range granted {
			if g == "" {
				continue
			}
			if g == f.path || strings.HasPrefix(f.path, g+".") || strings.HasPrefix(g, f.path+".") {
				out = append(out, f)
				break
			}
		}
	}
	return out
}

// query accumulates SQL text (from the mapping only) and bind parameters.
type query struct {
	sql  strings.Builder
	args []any
}

// param adds a bind parameter and returns its placeholder.
func (q *query) param(v any) string {
	q.args = append(q.args, v)
	return "$" + strconv.Itoa(len(q.args))
}

// queryError maps a database error to the adapter errors. PostgreSQL's
// messages can quote input values (invalid input syntax for type bigint:
// "..."), so they are reduced to the SQLSTATE. For a get, a data exception
// (SQLSTATE class 22) means the id is not a value of the key column's type
// ("abc" for a bigint key), so no record has it.
func (a *Adapter) queryError(ctx context.Context, err error, doing string, get bool) error {
	var pgErr *pgconn.PgError
	switch {
	case get && errors.As(err, &pgErr) && strings.HasPrefix(pgErr.Code, "22"):
		return fmt.Errorf("postgres: %s %s: the id is not a valid key: %w", doing, a.table, adapters.ErrNotFound)
	case errors.Is(ctx.Err(), context.DeadlineExceeded) || pgconn.Timeout(err) || errors.Is(err, context.DeadlineExceeded):
		return fmt.Errorf("postgres: %s %s: %w", doing, a.table, adapters.ErrTimeout)
	case errors.Is(ctx.Err(), context.Canceled):
		return fmt.Errorf("postgres: %s %s: %w", doing, a.table, context.Canceled)
	case errors.As(err, &pgErr) && pgErr.Code == "57014": // query_canceled: statement_timeout
		return fmt.Errorf("postgres: %s %s: statement timeout: %w", doing, a.table, adapters.ErrTimeout)
	case errors.As(err, &pgErr):
		return fmt.Errorf("postgres: %s %s: SQLSTATE %s: %w", doing, a.table, pgErr.Code, adapters.ErrBackend)
	}
	return fmt.Errorf("postgres: %s %s: %w: %v", doing, a.table, adapters.ErrBackend, err)
}
