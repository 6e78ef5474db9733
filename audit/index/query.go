package index

import (
	"context"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"strconv"
	"strings"
	"time"

	"github.com/lienthong/lienthong/audit"
)

// cursor is the position after which a page continues, newest first: the
// (at, gateway, seq) of the last item served. It is opaque to clients
// (base64url of "v1,<at>,<seq>,<gateway>"); a forged cursor moves only
// where the page starts, never what the caller may see.
type cursor struct {
	at      int64
	gateway string
	seq     int64
}

func (c cursor) String() string {
	return base64.RawURLEncoding.EncodeToString([]byte("v1," + strconv.FormatInt(c.at, 10) + "," + strconv.FormatInt(c.seq, 10) + "," + c.gateway))
}

// ErrCursor wraps a cursor this index did not issue.
var ErrCursor = fmt.Errorf("%w: malformed cursor", ErrInvalid)

func parseCursor(s string) (*cursor, error) {
	if s == "" {
		return nil, nil
	}
	b, err := base64.RawURLEncoding.DecodeString(s)
	if err != nil {
		return nil, ErrCursor
	}
	parts := strings.SplitN(string(b), ",", 4)
	if len(parts) != 4 || parts[0] != "v1" {
		return nil, ErrCursor
	}
	at, err1 := strconv.ParseInt(parts[1], 10, 64)
	seq, err2 := strconv.ParseInt(parts[2], 10, 64)
	if err1 != nil || err2 != nil {
		return nil, ErrCursor
	}
	return &cursor{at: at, seq: seq, gateway: parts[3]}, nil
}

// where builds a WHERE clause with $n placeholders.
type where struct {
	conds []string
	args  []any
}

func (w *where) arg(v any) string {
	w.args = append(w.args, v)
	return "$" + strconv.Itoa(len(w.args))
}

func (w *where) add(cond string) { w.conds = append(w.conds, cond) }

func (w *where) eq(col string, v string) {
	if v != "" {
		w.add(col + " = " + w.arg(v))
	}
}

func (w *where) sql() string {
	if len(w.conds) == 0 {
		return ""
	}
	return " WHERE " + strings.Join(w.conds, " AND ")
}

// scope keeps exchanges a member took part in.
func (w *where) scope(member, prefix string) {
	if member != "" {
		p := w.arg(member)
		w.add("(" + prefix + "consumer_member = " + p + " OR " + prefix + "provider_member = " + p + ")")
	}
}

func (w *where) period(col string, from, until time.Time) {
	if !from.IsZero() {
		w.add(col + " >= " + w.arg(micros(from)))
	}
	if !until.IsZero() {
		w.add(col + " < " + w.arg(micros(until)))
	}
}

// after continues a newest-first page.
func (w *where) after(c *cursor, prefix string) {
	if c != nil {
		w.add("(" + prefix + "at, " + prefix + "gateway, " + prefix + "seq) < (" + w.arg(c.at) + ", " + w.arg(c.gateway) + ", " + w.arg(c.seq) + ")")
	}
}

const recordCols = `gateway, seq, at, exchange_id, side, phase, consumer, provider, dataset, mode, purpose, case_ref, subject,
	fields, grant_id, reasons, status, bytes, latency_ms, request_hash, policy_revision`

func scanExchange(r scanner) (Exchange, int64, error) {
	var x Exchange
	var seq, at int64
	var phase, fields, reasons string
	err := r.Scan(&x.Gateway, &seq, &at, &x.ExchangeID, &x.Side, &phase, &x.Consumer, &x.Provider, &x.Dataset, &x.Mode,
		&x.Purpose, &x.Case, &x.Subject, &fields, &x.GrantID, &reasons, &x.Status, &x.Bytes, &x.LatencyMS,
		&x.RequestHash, &x.PolicyRevision)
	if err != nil {
		return x, 0, err
	}
	x.Seq, x.Time, x.Phase = uint64(seq), fromMicros(at), audit.Phase(phase)
	if err := json.Unmarshal([]byte(fields), &x.Fields); err != nil {
		return x, 0, err
	}
	if err := json.Unmarshal([]byte(reasons), &x.Reasons); err != nil {
		return x, 0, err
	}
	if len(x.Fields) == 0 {
		x.Fields = nil
	}
	if len(x.Reasons) == 0 {
		x.Reasons = nil
	}
	return x, at, nil
}

// Exchanges answers an auditor's query, newest first.
func (s *SQLStore) Exchanges(ctx context.Context, q Query) (Page[Exchange], error) {
	c, err := parseCursor(q.Cursor)
	if err != nil {
		return Page[Exchange]{}, err
	}
	limit := pageLimit(q.Limit)
	var w where
	switch q.Phase {
	case "", string(audit.Outcome):
		w.eq("phase", string(audit.Outcome))
	case string(audit.Intent):
		w.eq("phase", string(audit.Intent))
	case "any":
	default:
		return Page[Exchange]{}, fmt.Errorf("%w: phase %q must be outcome, intent or any", ErrInvalid, q.Phase)
	}
	w.scope(q.Scope, "")
	w.eq("consumer", q.Consumer)
	w.eq("provider", q.Provider)
	w.eq("dataset", q.Dataset)
	w.eq("purpose", q.Purpose)
	w.eq("subject", strings.ToLower(q.Subject))
	if q.Status != 0 {
		w.add("status = " + w.arg(q.Status))
	}
	w.period("at", q.From, q.Until)
	w.after(c, "")
	rows, err := s.db.QueryContext(ctx, "SELECT "+recordCols+" FROM audit_records"+w.sql()+
		fmt.Sprintf(" ORDER BY at DESC, gateway DESC, seq DESC LIMIT %d", limit+1), w.args...)
	if err != nil {
		return Page[Exchange]{}, fmt.Errorf("audit index: exchanges: %w", err)
	}
	defer rows.Close()
	page := Page[Exchange]{Items: []Exchange{}}
	var last cursor
	for rows.Next() {
		x, at, err := scanExchange(rows)
		if err != nil {
			return Page[Exchange]{}, fmt.Errorf("audit index: exchanges: %w", err)
		}
		if len(page.Items) == limit {
			page.Next = last.String()
			break
		}
		page.Items = append(page.Items, x)
		last = cursor{at: at, gateway: x.Gateway, seq: int64(x.Seq)}
	}
	return page, rows.Err()
}

// Flows returns the flow matrix of [from, until): per consumer member and
// provider member, the distinct exchanges, the subject records disclosed,
// the answer bytes and the denials. Each exchange counts once, however many
// of its records (intent, outcome, consumer and provider side) were shipped.
// scope "" covers every member; else only exchanges that member took part in.
func (s *SQLStore) Flows(ctx context.Context, scope string, from, until time.Time) ([]Flow, error) {
	var w where
	w.eq("phase", string(audit.Outcome))
	w.scope(scope, "")
	w.period("at", from, until)
	q := `SELECT consumer_member, provider_member, COUNT(*), CAST(COALESCE(SUM(recs), 0) AS BIGINT),
		CAST(COALESCE(SUM(b), 0) AS BIGINT), CAST(COALESCE(SUM(denied), 0) AS BIGINT) FROM (
		SELECT consumer_member, provider_member, exchange_id,
			MAX(CASE WHEN status >= 200 AND status < 300 THEN subjects ELSE 0 END) AS recs,
			MAX(bytes) AS b,
			MAX(CASE WHEN status = 403 THEN 1 ELSE 0 END) AS denied
		FROM audit_records` + w.sql() + `
		GROUP BY consumer_member, provider_member, exchange_id) x
		GROUP BY consumer_member, provider_member ORDER BY consumer_member, provider_member`
	rows, err := s.db.QueryContext(ctx, q, w.args...)
	if err != nil {
		return nil, fmt.Errorf("audit index: flows: %w", err)
	}
	defer rows.Close()
	out := []Flow{}
	for rows.Next() {
		var f Flow
		if err := rows.Scan(&f.Consumer, &f.Provider, &f.Exchanges, &f.Records, &f.Bytes, &f.Denials); err != nil {
			return nil, fmt.Errorf("audit index: flows: %w", err)
		}
		out = append(out, f)
	}
	return out, rows.Err()
}

// Disclosures lists the exchanges that asked for one subject's record (its
// HMAC), newest first, one page at a time: every outcome, allowed or not,
// one per exchange. Both gateways of an exchange ship an outcome; the
// consumer gateway's is left out when the provider gateway's outcome of the
// same exchange (same consumer and provider) names the same subject, so the
// provider's account, which says what it disclosed, is the one shown.
func (s *SQLStore) Disclosures(ctx context.Context, subject string, limit int, cursorText string) (Page[Disclosure], error) {
	c, err := parseCursor(cursorText)
	if err != nil {
		return Page[Disclosure]{}, err
	}
	limit = pageLimit(limit)
	var w where
	w.add("d.subject = " + w.arg(subjectKey(strings.ToLower(subject))))
	w.after(c, "d.")
	w.add(`NOT (r.side = 'consumer' AND EXISTS (SELECT 1 FROM audit_records p
		JOIN audit_disclosures pd ON pd.subject = d.subject AND pd.at = p.at AND pd.gateway = p.gateway AND pd.seq = p.seq
		WHERE p.exchange_id = r.exchange_id AND p.side = 'provider' AND p.phase = 'outcome'
		AND p.consumer = r.consumer AND p.provider = r.provider))`)
	rows, err := s.db.QueryContext(ctx, `SELECT d.at, d.gateway, d.seq, r.exchange_id, r.side, r.consumer, r.provider, r.dataset,
		r.fields, r.purpose, r.grant_id, r.status, r.reasons
		FROM audit_disclosures d JOIN audit_records r ON r.gateway = d.gateway AND r.seq = d.seq`+w.sql()+
		fmt.Sprintf(" ORDER BY d.at DESC, d.gateway DESC, d.seq DESC LIMIT %d", limit+1), w.args...)
	if err != nil {
		return Page[Disclosure]{}, fmt.Errorf("audit index: disclosures: %w", err)
	}
	defer rows.Close()
	page := Page[Disclosure]{Items: []Disclosure{}}
	var last cursor
	for rows.Next() {
		var d Disclosure
		var at, seq int64
		var fields, reasons string
		if err := rows.Scan(&at, &d.Gateway, &seq, &d.ExchangeID, &d.Side, &d.Consumer, &d.Provider, &d.Dataset, &fields,
			&d.Purpose, &d.GrantID, &d.Status, &reasons); err != nil {
			return Page[Disclosure]{}, fmt.Errorf("audit index: disclosures: %w", err)
		}
		if len(page.Items) == limit {
			page.Next = last.String()
			break
		}
		d.Time, d.Seq = fromMicros(at), uint64(seq)
		if err := json.Unmarshal([]byte(fields), &d.Fields); err != nil {
			return Page[Disclosure]{}, fmt.Errorf("audit index: disclosures: %w", err)
		}
		if err := json.Unmarshal([]byte(reasons), &d.Reasons); err != nil {
			return Page[Disclosure]{}, fmt.Errorf("audit index: disclosures: %w", err)
		}
		page.Items = append(page.Items, d)
		last = cursor{at: at, gateway: d.Gateway, seq: seq}
	}
	return page, rows.Err()
}

// DisclosureCursor is the cursor that continues a listing after d, for a
// caller that drops some items of a page and must resume after the last
// one it kept.
func DisclosureCursor(d Disclosure) string {
	return cursor{at: micros(d.Time), gateway: d.Gateway, seq: int64(d.Seq)}.String()
}

// PageLimit is the page size a limit asks for: 100 by default, at most 1000.
func PageLimit(n int) int { return pageLimit(n) }
