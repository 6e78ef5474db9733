package postgres

import (
	"bytes"
	"context"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"io"
	"math"
	"strconv"
	"time"

	"github.com/jackc/pgx/v5/pgtype"

	"github.com/lienthong/lienthong/adapters"
)

// run executes q and renders the rows as JSON: an array for a list, the
// first row's object for a get. It returns the number of rows read (a get
// reads at most two, to detect a non-unique key).
//
// The answer is built in memory, bounded by the row limit, so the pooled
// connection is released before the gateway starts sending; a slow consumer
// never holds a database connection.
func (a *Adapter) run(ctx context.Context, q *query, selected []*field, list bool, limit int) (io.ReadCloser, int, error) {
	rows, err := a.pool.Query(ctx, q.sql.String(), q.args...)
	if err != nil {
		return nil, 0, a.queryError(ctx, err, "reading", !list)
	}
	defer rows.Close()

	descs := rows.FieldDescriptions()
	var cols []column
	var dest []any
	if len(selected) == 0 {
		var one any
		dest = []any{&one}
	} else {
		if len(descs) != len(selected) {
			// pgx reports some failures (a bad parameter, a cancelled
			// query) only once the rows are closed.
			rows.Close()
			if err := rows.Err(); err != nil {
				return nil, 0, a.queryError(ctx, err, "reading", !list)
			}
			return nil, 0, fmt.Errorf("postgres: reading %s: %d columns for %d fields: %w", a.table, len(descs), len(selected), adapters.ErrBackend)
		}
		cols = make([]column, len(selected))
		dest = make([]any, len(selected))
		for i, d := range descs {
			cols[i] = newColumn(d.DataTypeOID)
			dest[i] = cols[i].dest
		}
	}
	root := buildTree(selected)
	vals := make([][]byte, len(cols))

	var buf bytes.Buffer
	if list {
		buf.WriteByte('[')
	}
	n := 0
	for n < limit && rows.Next() { // LIMIT bounds the rows; n < limit makes it local
		if err := rows.Scan(dest...); err != nil {
			return nil, 0, a.queryError(ctx, err, "reading", !list)
		}
		n++
		if !list && n > 1 {
			continue // counted only
		}
		for i := range cols {
			v, err := cols[i].encode()
			if err != nil {
				return nil, 0, fmt.Errorf("postgres: reading %s: column %s: %w: %v", a.table, selected[i].column, adapters.ErrBackend, err)
			}
			vals[i] = v
		}
		if list && n > 1 {
			buf.WriteByte(',')
		}
		writeObject(&buf, root, vals)
	}
	if err := rows.Err(); err != nil {
		return nil, 0, a.queryError(ctx, err, "reading", !list)
	}
	if list {
		buf.WriteByte(']')
	}
	return io.NopCloser(bytes.NewReader(buf.Bytes())), n, nil
}

// column scans one result column and renders its value as JSON, or nil for
// SQL NULL.
type column struct {
	dest   any
	encode func() ([]byte, error)
}

// newColumn picks how to read a column of type oid: text as string,
// integers and floats as numbers, numeric as an exact number, bool, date as
// "YYYY-MM-DD", timestamps as RFC 3339 in UTC, json and jsonb as embedded
// JSON, uuid as its canonical string, and anything else as pgx decodes it
// (enums become strings, arrays JSON arrays).
func newColumn(oid uint32) column {
	switch oid {
	case pgtype.TextOID, pgtype.VarcharOID, pgtype.BPCharOID, pgtype.NameOID:
		var v pgtype.Text
		return column{&v, func() ([]byte, error) {
			if !v.Valid {
				return nil, nil
			}
			return json.Marshal(v.String)
		}}
	case pgtype.Int2OID, pgtype.Int4OID, pgtype.Int8OID:
		var v pgtype.Int8
		return column{&v, func() ([]byte, error) {
			if !v.Valid {
				return nil, nil
			}
			return strconv.AppendInt(nil, v.Int64, 10), nil
		}}
	case pgtype.Float4OID, pgtype.Float8OID:
		var v pgtype.Float8
		return column{&v, func() ([]byte, error) {
			if !v.Valid {
				return nil, nil
			}
			if math.IsNaN(v.Float64) || math.IsInf(v.Float64, 0) {
				return nil, fmt.Errorf("%v has no JSON representation", v.Float64)
			}
			return json.Marshal(v.Float64)
		}}
	case pgtype.NumericOID:
		var v pgtype.Numeric
		return column{&v, func() ([]byte, error) {
			if !v.Valid {
				return nil, nil
			}
			if v.NaN || v.InfinityModifier != pgtype.Finite {
				return nil, fmt.Errorf("a non-finite numeric has no JSON representation")
			}
			return v.MarshalJSON()
		}}
	case pgtype.BoolOID:
		var v pgtype.Bool
		return column{&v, func() ([]byte, error) {
			if !v.Valid {
				return nil, nil
			}
			return strconv.AppendBool(nil, v.Bool), nil
		}}
	case pgtype.DateOID:
		var v pgtype.Date
		return column{&v, func() ([]byte, error) {
			if !v.Valid {
				return nil, nil
			}
			return timeJSON(v.Time, v.InfinityModifier, time.DateOnly)
		}}
	case pgtype.TimestamptzOID:
		var v pgtype.Timestamptz
		return column{&v, func() ([]byte, error) {
			if !v.Valid {
				return nil, nil
			}
			return timeJSON(v.Time, v.InfinityModifier, time.RFC3339Nano)
		}}
	case pgtype.TimestampOID:
		// Without a time zone; read as UTC, which is how pgx returns it.
		var v pgtype.Timestamp
		return column{&v, func() ([]byte, error) {
			if !v.Valid {
				return nil, nil
			}
			return timeJSON(v.Time, v.InfinityModifier, time.RFC3339Nano)
		}}
	case pgtype.JSONOID, pgtype.JSONBOID:
		var v []byte
		return column{&v, func() ([]byte, error) {
			if v == nil {
				return nil, nil
			}
			if !json.Valid(v) {
				return nil, fmt.Errorf("invalid JSON")
			}
			return v, nil
		}}
	case pgtype.UUIDOID:
		var v pgtype.UUID
		return column{&v, func() ([]byte, error) {
			if !v.Valid {
				return nil, nil
			}
			b := v.Bytes[:]
			s := hex.EncodeToString(b[0:4]) + "-" + hex.EncodeToString(b[4:6]) + "-" + hex.EncodeToString(b[6:8]) +
				"-" + hex.EncodeToString(b[8:10]) + "-" + hex.EncodeToString(b[10:16])
			return json.Marshal(s)
		}}
	}
	var v any
	return column{&v, func() ([]byte, error) {
		if v == nil {
			return nil, nil
		}
		return json.Marshal(v)
	}}
}

// timeJSON renders a finite time in layout (UTC), refusing infinities and
// years outside 0000-9999, which have no RFC 3339 form.
func timeJSON(t time.Time, inf pgtype.InfinityModifier, layout string) ([]byte, error) {
	if inf != pgtype.Finite {
		return nil, fmt.Errorf("an infinite date or time has no JSON representation")
	}
	t = t.UTC()
	if t.Year() < 0 || t.Year() > 9999 {
		return nil, fmt.Errorf("year %d has no RFC 3339 representation", t.Year())
	}
	return json.Marshal(t.Format(layout))
}

// node is one member of the output object: a leaf rendering result column
// col, or an object of children (col < 0).
type node struct {
	key      string
	name     []byte // key, JSON-encoded
	col      int
	children []*node
}

// buildTree nests the selected fields by their dotted paths, in the order
// given (sorted by path).
func buildTree(selected []*field) *node {
	root := &node{col: -1}
	for i, f := range selected {
		n := root
		for j, seg := range f.segs {
			var child *node
			for _, c := range n.children {
				if c.key == seg {
					child = c
					break
				}
			}
			if child == nil {
				name, _ := json.Marshal(seg) // segments are plain identifiers
				child = &node{key: seg, name: name, col: -1}
				n.children = append(n.children, child)
			}
			if j == len(f.segs)-1 {
				child.col = i
			}
			n = child
		}
	}
	return root
}

// writeObject writes n's members. A nested object whose selected columns
// are all NULL is written as null, not as an object of nulls: that is how a
// flat table says "no spouse" or "no temporary residence", and an object of
// nulls would not match the dataset's schema.
func writeObject(buf *bytes.Buffer, n *node, vals [][]byte) {
	buf.WriteByte('{')
	for i, c := range n.children {
		if i > 0 {
			buf.WriteByte(',')
		}
		buf.Write(c.name)
		buf.WriteByte(':')
		switch {
		case c.col >= 0 && vals[c.col] == nil, c.col < 0 && allNull(c, vals):
			buf.WriteString("null")
		case c.col >= 0:
			buf.Write(vals[c.col])
		default:
			writeObject(buf, c, vals)
		}
	}
	buf.WriteByte('}')
}

// allNull reports whether every column below n is NULL.
func allNull(n *node, vals [][]byte) bool {
	if n.col >= 0 {
		return vals[n.col] == nil
	}
	for _, c := range n.children {
		if !allNull(c, vals) {
			return false
		}
	}
	return true
}
