package postgres

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"
)

// OutboxSchema creates the transactional outbox: a provider's application
// appends a change event in the same database transaction as the change,
// with lienthong_outbox_append(dataset, event), so the event exists exactly
// when the change does.
//
// Positions come from a one-row counter updated inside the appending
// transaction. Its row lock is held until commit, so positions are handed
// out in commit order and a rolled-back append gives its number back: the
// relay reads positions in order and never passes over one that commits
// later, which a plain sequence would allow. The price is that appending
// transactions serialise on that row, which change-event rates afford.
const OutboxSchema = `
CREATE TABLE IF NOT EXISTS lienthong_outbox_counter (one boolean PRIMARY KEY DEFAULT true CHECK (one), next bigint NOT NULL);
INSERT INTO lienthong_outbox_counter (one, next) VALUES (true, 1) ON CONFLICT DO NOTHING;
CREATE TABLE IF NOT EXISTS lienthong_outbox (
  position   bigint PRIMARY KEY,
  dataset    text NOT NULL,
  event      text NOT NULL,
  created_at timestamptz NOT NULL DEFAULT now()
);
CREATE TABLE IF NOT EXISTS lienthong_outbox_relay (relay text PRIMARY KEY, position bigint NOT NULL);
CREATE OR REPLACE FUNCTION lienthong_outbox_append(p_dataset text, p_event text) RETURNS bigint
LANGUAGE sql AS $$
  WITH n AS (UPDATE lienthong_outbox_counter SET next = next + 1 RETURNING next - 1 AS position)
  INSERT INTO lienthong_outbox (position, dataset, event) SELECT position, p_dataset, p_event FROM n RETURNING position
$$;
`

// OutboxRow is one event read from the outbox.
type OutboxRow struct {
	Position int64
	Dataset  string
	// Event is the CloudEvent as the application wrote it (text, so its
	// bytes, key order and any duplicate key reach the strict parser).
	Event []byte
}

// Outbox reads the outbox in position order for one relay.
type Outbox struct {
	pool  *pgxpool.Pool
	relay string
}

// OpenOutbox connects to the provider's database and creates the outbox
// objects if they are missing.
func OpenOutbox(ctx context.Context, dsn, relay string) (*Outbox, error) {
	if relay == "" {
		return nil, errors.New("outbox: the relay needs a name")
	}
	pool, err := pgxpool.New(ctx, dsn)
	if err != nil {
		return nil, fmt.Errorf("outbox: %w", err)
	}
	if _, err := pool.Exec(ctx, OutboxSchema); err != nil {
		pool.Close()
		return nil, fmt.Errorf("outbox: schema: %w", err)
	}
	return &Outbox{pool: pool, relay: relay}, nil
}

// Close closes the connections.
func (o *Outbox) Close() { o.pool.Close() }

// Append adds an event in tx, the application's own transaction.
func Append(ctx context.Context, tx pgx.Tx, dataset string, event []byte) (int64, error) {
	var pos int64
	err := tx.QueryRow(ctx, "SELECT lienthong_outbox_append($1, $2)", dataset, string(event)).Scan(&pos)
	return pos, err
}

// Relay reads rows after the relay's committed position, in order, up to
// batch at a time, and hands each batch to publish; the position is
// committed only after publish returned nil (Kafka acknowledged). A crash
// between the two publishes the batch again: at least once, in order, and
// consumers drop repeated event ids. Relay polls every interval when the
// outbox is empty and returns when ctx ends or publish fails.
func (o *Outbox) Relay(ctx context.Context, batch int, interval time.Duration, publish func(context.Context, []OutboxRow) error) error {
	if batch <= 0 {
		batch = 500
	}
	if _, err := o.pool.Exec(ctx, "INSERT INTO lienthong_outbox_relay (relay, position) VALUES ($1, 0) ON CONFLICT DO NOTHING", o.relay); err != nil {
		return fmt.Errorf("outbox: %w", err)
	}
	for ctx.Err() == nil {
		var after int64
		if err := o.pool.QueryRow(ctx, "SELECT position FROM lienthong_outbox_relay WHERE relay = $1", o.relay).Scan(&after); err != nil {
			return fmt.Errorf("outbox: position: %w", err)
		}
		rows, err := o.pool.Query(ctx, "SELECT position, dataset, event FROM lienthong_outbox WHERE position > $1 ORDER BY position LIMIT $2", after, batch)
		if err != nil {
			return fmt.Errorf("outbox: read: %w", err)
		}
		var got []OutboxRow
		for rows.Next() {
			var r OutboxRow
			var ev string
			if err := rows.Scan(&r.Position, &r.Dataset, &ev); err != nil {
				rows.Close()
				return fmt.Errorf("outbox: read: %w", err)
			}
			r.Event = []byte(ev)
			got = append(got, r)
		}
		rows.Close()
		if err := rows.Err(); err != nil {
			return fmt.Errorf("outbox: read: %w", err)
		}
		if len(got) == 0 {
			select {
			case <-ctx.Done():
			case <-time.After(interval):
			}
			continue
		}
		if err := publish(ctx, got); err != nil {
			return err
		}
		last := got[len(got)-1].Position
		if _, err := o.pool.Exec(ctx, "UPDATE lienthong_outbox_relay SET position = $2 WHERE relay = $1 AND position < $2", o.relay, last); err != nil {
			return fmt.Errorf("outbox: commit position: %w", err)
		}
	}
	return nil
}
