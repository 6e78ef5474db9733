package sqlstore

import (
	"encoding/json"
	"fmt"
	"strconv"
	"strings"
	"time"

	"github.com/lienthong/lienthong/catalog"
)

func itoa(n int64) string { return strconv.FormatInt(n, 10) }

// normTime is how every time is stored: UTC, truncated to the microsecond
// (PostgreSQL's precision), so both dialects give back the same instant.
func normTime(t time.Time) time.Time { return t.UTC().Truncate(time.Microsecond) }

// time is the driver value of t, normalised.
func (d *dialect) time(t time.Time) any { return d.timeArg(normTime(t)) }

// timePtr is the driver value of an optional time: NULL when absent.
func (d *dialect) timePtr(t *time.Time) any {
	if t == nil {
		return nil
	}
	return d.time(*t)
}

// timeCol scans a stored time (time.Time from pgx, text from SQLite) into a
// UTC time.Time: into *dst for a required column, or into *ptr for an
// optional one, where NULL leaves *ptr nil.
type timeCol struct {
	dst *time.Time
	ptr **time.Time
}

func (c timeCol) Scan(src any) error {
	var t time.Time
	switch v := src.(type) {
	case nil:
		if c.ptr != nil {
			*c.ptr = nil
			return nil
		}
		return fmt.Errorf("unexpected NULL time")
	case time.Time:
		t = v.UTC()
	case string:
		p, err := parseStoredTime(v)
		if err != nil {
			return err
		}
		t = p
	case []byte:
		p, err := parseStoredTime(string(v))
		if err != nil {
			return err
		}
		t = p
	default:
		return fmt.Errorf("cannot scan %T into a time", src)
	}
	if c.ptr != nil {
		*c.ptr = &t
	} else {
		*c.dst = t
	}
	return nil
}

func parseStoredTime(s string) (time.Time, error) {
	t, err := time.Parse(sqliteTimeLayout, s)
	if err != nil {
		// Tolerate hand-edited rows in any RFC 3339 form.
		t, err = time.Parse(time.RFC3339Nano, s)
	}
	if err != nil {
		return time.Time{}, fmt.Errorf("stored time %q: %w", s, err)
	}
	return t.UTC(), nil
}

// scanTime and scanTimePtr are the Scan destinations of required and optional times.
func scanTime(dst *time.Time) timeCol     { return timeCol{dst: dst} }
func scanTimePtr(dst **time.Time) timeCol { return timeCol{ptr: dst} }

// jsonArg encodes a nested value for a JSON column. A value that encodes as
// null (nil slice, nil pointer) is stored as SQL NULL and reads back as nil,
// so nil and empty stay distinct.
func jsonArg(v any) (any, error) {
	b, err := json.Marshal(v)
	if err != nil {
		return nil, err
	}
	if string(b) == "null" {
		return nil, nil
	}
	return string(b), nil
}

// jsonCol scans a JSON column (text, or jsonb bytes from pgx) into dst. NULL
// leaves dst at its zero value.
type jsonCol struct{ dst any }

func (c jsonCol) Scan(src any) error {
	var b []byte
	switch v := src.(type) {
	case nil:
		return nil
	case string:
		b = []byte(v)
	case []byte:
		b = v
	default:
		return fmt.Errorf("cannot scan %T into JSON", src)
	}
	return json.Unmarshal(b, c.dst)
}

func scanJSON(dst any) jsonCol { return jsonCol{dst: dst} }

// jsonArgs encodes several nested values, stopping at the first failure.
func jsonArgs(what string, vs ...any) ([]any, error) {
	out := make([]any, len(vs))
	for i, v := range vs {
		a, err := jsonArg(v)
		if err != nil {
			return nil, fmt.Errorf("%s: encode %T: %w", what, v, err)
		}
		out[i] = a
	}
	return out, nil
}

// normEvents gives history entries the stored time form, so times nested in
// JSON read back exactly as the top-level ones do.
func normEvents(h []catalog.RequestEvent) []catalog.RequestEvent {
	if h == nil {
		return nil
	}
	out := make([]catalog.RequestEvent, len(h))
	for i, e := range h {
		e.At = normTime(e.At)
		out[i] = e
	}
	return out
}

// memberOf is the member part of a system id (its third colon-separated
// part), or "" when the id is malformed. Requests, grants and certificates
// keep it in a column so member filters are indexed equality lookups.
func memberOf(systemID string) string {
	parts := strings.Split(systemID, ":")
	if len(parts) != 4 {
		return ""
	}
	return parts[2]
}

// nullString stores "" as NULL, for optional references such as a token's member.
func nullString(s string) any {
	if s == "" {
		return nil
	}
	return s
}

// where collects the conditions and arguments of a filtered query. SQL text
// only ever comes from constant fragments; every value goes through arg.
type where struct {
	conds []string
	args  []any
}

// arg adds a value and returns its placeholder.
func (w *where) arg(v any) string {
	w.args = append(w.args, v)
	return "$" + strconv.Itoa(len(w.args))
}

// add appends a condition (ANDed with the others).
func (w *where) add(cond string) { w.conds = append(w.conds, cond) }

// eq adds "col = value" when value is not empty.
func (w *where) eq(col, value string) {
	if value != "" {
		w.add(col + " = " + w.arg(value))
	}
}

// sql is the WHERE clause, or "" when nothing narrows the query.
func (w *where) sql() string {
	if len(w.conds) == 0 {
		return ""
	}
	return " WHERE " + strings.Join(w.conds, " AND ")
}
