package index

import (
	"context"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"sort"
)

// FeedPage is one page of the record feed a SIEM exporter follows: records
// in each gateway's seq order, and the cursor that continues after them.
// Cursor is always set: a follower keeps the last one, and asks again with
// it when the page was empty.
type FeedPage struct {
	Items  []Exchange `json:"items"`
	Cursor string     `json:"cursor"`
}

// feedCursor is where a follower stands: the last seq it was given of each
// gateway. It is opaque to clients.
type feedCursor map[string]uint64

func (c feedCursor) String() string {
	b, _ := json.Marshal(c) // a map of strings to numbers always encodes
	return base64.RawURLEncoding.EncodeToString(b)
}

func parseFeedCursor(s string) (feedCursor, error) {
	c := feedCursor{}
	if s == "" {
		return c, nil
	}
	b, err := base64.RawURLEncoding.DecodeString(s)
	if err != nil || json.Unmarshal(b, &c) != nil || c == nil {
		return nil, ErrCursor
	}
	return c, nil
}

// Feed returns the exchange records (intents and outcomes, as stored) that
// follow cursor, in (gateway, seq) order, at most limit of them, scoped like
// Query (scope "" is every member). Records are shipped in seq order and
// never change once held, so a follower that resumes from its last cursor
// misses none and, if it stores the cursor only after it delivered the
// page, at worst is given a page twice: each record is named by its gateway
// and seq, for the receiver to drop a repeat. Each gateway gets a share of
// the page, so one busy gateway does not hold the others back.
func (s *SQLStore) Feed(ctx context.Context, scope, cursorText string, limit int) (FeedPage, error) {
	pos, err := parseFeedCursor(cursorText)
	if err != nil {
		return FeedPage{}, err
	}
	limit = pageLimit(limit)
	gateways, err := s.gateways(ctx)
	if err != nil {
		return FeedPage{}, err
	}
	share := max(limit/max(len(gateways), 1), 1)
	page := FeedPage{Items: []Exchange{}}
	for _, g := range gateways {
		n := min(share, limit-len(page.Items))
		if n <= 0 {
			break
		}
		var w where
		w.add("gateway = " + w.arg(g))
		w.add("seq > " + w.arg(int64(pos[g])))
		w.scope(scope, "")
		rows, err := s.db.QueryContext(ctx, "SELECT "+recordCols+" FROM audit_records"+w.sql()+fmt.Sprintf(" ORDER BY seq LIMIT %d", n), w.args...)
		if err != nil {
			return FeedPage{}, fmt.Errorf("audit index: feed of %s: %w", g, err)
		}
		for rows.Next() {
			x, _, err := scanExchange(rows)
			if err != nil {
				rows.Close()
				return FeedPage{}, fmt.Errorf("audit index: feed of %s: %w", g, err)
			}
			page.Items = append(page.Items, x)
			pos[g] = x.Seq
		}
		rows.Close()
		if err := rows.Err(); err != nil {
			return FeedPage{}, fmt.Errorf("audit index: feed of %s: %w", g, err)
		}
	}
	page.Cursor = pos.String()
	return page, nil
}

// gateways lists the gateways that have shipped, sorted.
func (s *SQLStore) gateways(ctx context.Context) ([]string, error) {
	rows, err := s.db.QueryContext(ctx, `SELECT gateway FROM audit_gateways`)
	if err != nil {
		return nil, fmt.Errorf("audit index: gateways: %w", err)
	}
	defer rows.Close()
	var out []string
	for rows.Next() {
		var g string
		if err := rows.Scan(&g); err != nil {
			return nil, fmt.Errorf("audit index: gateways: %w", err)
		}
		out = append(out, g)
	}
	sort.Strings(out)
	return out, rows.Err()
}
