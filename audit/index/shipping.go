package index

import (
	"context"
	"database/sql"
	"fmt"
	"math"
	"time"
)

// Shipping is how far a gateway's shipping has got: the last seq the index
// holds against the last seq the gateway's log holds, as its shipper
// reports it with each shipment and in a heartbeat while idle. The index
// alone knows only the first; without the second a gateway that stopped
// shipping looks the same as one with nothing to ship.
type Shipping struct {
	Gateway string `json:"gateway"`
	// Shipped is the last seq the index holds (0: none).
	Shipped uint64 `json:"shipped"`
	// Head is the last seq the gateway's log held when it last reported
	// (0 with a zero HeadAt: it never reported).
	Head   uint64    `json:"head"`
	HeadAt time.Time `json:"headAt,omitzero"`
	// ShippedAt is when the index last accepted new entries.
	ShippedAt time.Time `json:"shippedAt,omitzero"`
	// Lag is Head minus Shipped, in entries (0 when the index holds the
	// head or more: the log may have grown since it reported).
	Lag uint64 `json:"lag"`
	// GrowingSince is when the lag began to grow (zero when it is not):
	// it rose and kept rising report after report, or rose and has
	// neither come back down nor seen a shipment since (growingSince has
	// the exact rule).
	GrowingSince time.Time `json:"growingSince,omitzero"`
}

// How long a lag may grow, or stand without a shipment, before a gateway is
// flagged as falling behind. A shipper reports its head at least every
// HeartbeatEvery (audit/ship's default is 10 s), so a minute is several
// reports, past the bursts a shipper catches up with.
const (
	ShippingGrowingAfter = time.Minute
	ShippingStalledAfter = time.Minute
)

// Growing reports whether the lag has been growing (see GrowingSince) for
// ShippingGrowingAfter or more at now.
func (s Shipping) Growing(now time.Time) bool {
	return !s.GrowingSince.IsZero() && now.Sub(s.GrowingSince) >= ShippingGrowingAfter
}

// Stalled reports whether entries wait (a lag) while nothing was shipped
// for ShippingStalledAfter or more at now.
func (s Shipping) Stalled(now time.Time) bool {
	return s.Lag > 0 && (s.ShippedAt.IsZero() || now.Sub(s.ShippedAt) >= ShippingStalledAfter)
}

// Behind reports whether the gateway falls behind at now: its lag grows or
// stands while nothing is shipped.
func (s Shipping) Behind(now time.Time) bool { return s.Growing(now) || s.Stalled(now) }

// ReportHead records the last seq of the gateway's log, as its shipper
// reports it in a heartbeat, and follows the lag (shippingState.report). A
// head below what the index holds (a report that raced a shipment) is a lag
// of zero; one past math.MaxInt64 wraps ErrInvalid.
func (s *SQLStore) ReportHead(ctx context.Context, gateway string, head uint64) error {
	if err := checkHead(head); err != nil {
		return err
	}
	return s.update(ctx, func(tx *sql.Tx) error {
		st, err := s.lockGateway(ctx, tx, gateway)
		if err != nil {
			return err
		}
		st.shipping.report(head, st.next-1, micros(s.now()))
		return s.saveGateway(ctx, tx, st)
	})
}

// checkHead refuses a head the store cannot hold (a signed 64-bit column).
func checkHead(head uint64) error {
	if head > math.MaxInt64 {
		return fmt.Errorf("%w: log head %d is past the largest seq a log can reach (%d)", ErrInvalid, head, int64(math.MaxInt64))
	}
	return nil
}

// shippingState is the shipping columns of a gateway's row: times in Unix
// microseconds (0: never), seqs as stored.
type shippingState struct {
	logHead, headAt, lag, growingSince, shippedAt int64
}

// report records a reported head against the last seq held (shipped), at
// now, and follows whether the lag is growing (growingSince).
func (sh *shippingState) report(head, shipped uint64, now int64) {
	lag := int64(lagOf(head, shipped))
	sh.growingSince = growingSince(sh.lag, lag, sh.growingSince, sh.shippedAt, now)
	sh.logHead, sh.headAt, sh.lag = int64(head), now, lag
}

// growingSince is when the lag began to grow, as of a report at now that
// finds lag where the report before found prev; since is the answer before
// this report and shippedAt the index's last accepted entries (Unix
// microseconds, 0: never). The lag is growing while either
//
//   - it rose and kept rising, report after report (shipments or not:
//     shipping does not keep up), or
//   - it rose and has neither come back down nor seen a shipment since;
//
// so a report that finds it lower or nil, or the same while entries were
// shipped after it began to grow (shipping keeps pace with the log), ends
// it. The first rise of a run starts it.
func growingSince(prev, lag, since, shippedAt, now int64) int64 {
	switch {
	case lag == 0 || lag < prev:
		return 0
	case lag > prev:
		if since == 0 {
			return now
		}
		return since
	case since != 0 && shippedAt > since:
		return 0 // steady, with shipments since it rose
	default:
		return since
	}
}

func lagOf(head, shipped uint64) uint64 {
	if head <= shipped {
		return 0
	}
	return head - shipped
}

// ShippingStatus lists every gateway's shipping, by gateway id.
func (s *SQLStore) ShippingStatus(ctx context.Context) ([]Shipping, error) {
	rows, err := s.db.QueryContext(ctx, `SELECT gateway, next_seq, log_head, head_at, shipped_at, growing_since
		FROM audit_gateways ORDER BY gateway`)
	if err != nil {
		return nil, fmt.Errorf("audit index: shipping: %w", err)
	}
	defer rows.Close()
	out := []Shipping{}
	for rows.Next() {
		var sh Shipping
		var next, head, headAt, shippedAt, since int64
		if err := rows.Scan(&sh.Gateway, &next, &head, &headAt, &shippedAt, &since); err != nil {
			return nil, fmt.Errorf("audit index: shipping: %w", err)
		}
		sh.Shipped, sh.Head = uint64(next-1), uint64(head)
		sh.HeadAt, sh.ShippedAt, sh.GrowingSince = orZero(headAt), orZero(shippedAt), orZero(since)
		sh.Lag = lagOf(sh.Head, sh.Shipped)
		if sh.Lag == 0 {
			sh.GrowingSince = time.Time{} // shipping caught up since the report
		}
		out = append(out, sh)
	}
	return out, rows.Err()
}

// orZero reads a stored time where 0 means never.
func orZero(v int64) time.Time {
	if v == 0 {
		return time.Time{}
	}
	return fromMicros(v)
}
