package sqlstore

import (
	"context"
	"fmt"

	"github.com/lienthong/lienthong/catalog"
)

// Trail page sizes: what Limit 0 means, and the most one call returns.
const (
	DefaultTrailLimit = 1000
	MaxTrailLimit     = 10000
)

const trailCols = "seq, occurred_at, actor, role, member, action, object, before_doc, after_doc, outcome"

func scanTrail(r rowScanner) (catalog.TrailEntry, error) {
	var (
		e             catalog.TrailEntry
		before, after []byte // database/sql cannot scan NULL into a json.RawMessage
	)
	err := r.Scan(&e.Seq, scanTime(&e.At), &e.Actor, &e.Role, &e.Member, &e.Action, &e.Object, &before, &after, &e.Outcome)
	e.Before, e.After = before, after
	return e, err
}

// ListTrail returns entries after f.AfterSeq in ascending Seq, at most
// f.Limit of them (DefaultTrailLimit when 0, never more than MaxTrailLimit).
func (r reader) ListTrail(ctx context.Context, f catalog.TrailFilter) ([]catalog.TrailEntry, error) {
	limit := f.Limit
	switch {
	case limit <= 0:
		limit = DefaultTrailLimit
	case limit > MaxTrailLimit:
		limit = MaxTrailLimit
	}
	var w where
	w.add("seq > " + w.arg(f.AfterSeq))
	w.eq("member", f.Member)
	w.eq("object", f.Object)
	es, err := queryList(ctx, r.q, scanTrail,
		"SELECT "+trailCols+" FROM trail"+w.sql()+" ORDER BY seq LIMIT "+w.arg(limit), w.args...)
	if err != nil {
		return nil, fmt.Errorf("list trail: %w", err)
	}
	return es, nil
}

// Revision is the newest trail Seq, 0 when the trail is empty.
func (r reader) Revision(ctx context.Context) (int64, error) {
	var rev int64
	if err := r.q.QueryRowContext(ctx, "SELECT COALESCE(MAX(seq), 0) FROM trail").Scan(&rev); err != nil {
		return 0, fmt.Errorf("read revision: %w", err)
	}
	return rev, nil
}

// AppendTrail stores e and sets e.Seq to its strictly increasing number.
func (t *tx) AppendTrail(ctx context.Context, e *catalog.TrailEntry) error {
	var seq int64
	err := t.write(ctx, func() error {
		return t.q.QueryRowContext(ctx, `INSERT INTO trail
			(occurred_at, actor, role, member, action, object, before_doc, after_doc, outcome)
			VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9) RETURNING seq`,
			t.d.time(e.At), e.Actor, string(e.Role), e.Member, e.Action, e.Object, []byte(e.Before), []byte(e.After), e.Outcome).Scan(&seq)
	})
	if err != nil {
		return fmt.Errorf("append trail %s %s: %w", e.Action, e.Object, err)
	}
	e.Seq = seq
	return nil
}
