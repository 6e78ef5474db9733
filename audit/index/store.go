package index

import (
	"bytes"
	"context"
	"crypto/ed25519"
	"database/sql"
	"errors"
	"fmt"
	"log/slog"
	"strings"
	"time"

	"github.com/lienthong/lienthong/audit"
	"github.com/lienthong/lienthong/catalog"
)

// Store is what the control plane needs of the index. *SQLStore is the one
// implementation, over SQLite or PostgreSQL.
type Store interface {
	// Position reports where a gateway's shipped chain stands.
	Position(ctx context.Context, gateway string) (Position, error)
	// EnrolKey records a gateway's checkpoint key. Enrolling the same key
	// again is a no-op; a different key is refused with an AlertKey unless
	// rotate is set (the platform operator accepts a rotated key).
	EnrolKey(ctx context.Context, gateway string, pub []byte, rotate bool) error
	// Ingest checks and stores contiguous raw entries of one gateway.
	Ingest(ctx context.Context, gateway string, lines [][]byte) (Position, error)
	// AddCheckpoint checks and stores a checkpoint posted on its own.
	AddCheckpoint(ctx context.Context, gateway string, c *audit.Checkpoint) error
	// Checkpoints calls fn with each checkpoint held for gateway whose seq is
	// at least from, in seq order: those verified and those still waiting
	// for their entries, all signed by the gateway.
	Checkpoints(ctx context.Context, gateway string, from uint64, fn func(*audit.Checkpoint) error) error
	// Alerts lists alerts, oldest first, after the id afterID; scope "" is all members.
	Alerts(ctx context.Context, scope string, afterID int64, limit int) ([]Alert, error)
	// Exchanges answers an auditor's query.
	Exchanges(ctx context.Context, q Query) (Page[Exchange], error)
	// Flows returns the flow matrix of [from, until), scoped like Query.
	Flows(ctx context.Context, scope string, from, until time.Time) ([]Flow, error)
	// Disclosures lists what was disclosed about one subject, newest first.
	Disclosures(ctx context.Context, subject string, limit int, cursor string) (Page[Disclosure], error)
	// IngestShipment is Ingest with the log head the shipment carried
	// (0: none), recorded in the same transaction.
	IngestShipment(ctx context.Context, gateway string, lines [][]byte, head uint64) (Position, error)
	// ReportHead records the last seq of the gateway's log, as its
	// shipper reports it, so the lag of shipping is known.
	ReportHead(ctx context.Context, gateway string, head uint64) error
	// ShippingStatus lists every gateway's shipping: held, log head, lag.
	ShippingStatus(ctx context.Context) ([]Shipping, error)
	// Feed returns the records after cursor in each gateway's seq order,
	// for a follower such as a SIEM exporter.
	Feed(ctx context.Context, scope, cursor string, limit int) (FeedPage, error)
}

// SQLStore is the index over the catalog's database.
type SQLStore struct {
	db  *sql.DB
	pg  bool
	log *slog.Logger
	now func() time.Time
	// wsem serialises this process's writes (SQLite has one writer;
	// waiting here beats polling on a busy database).
	wsem chan struct{}
	// adopt lets a genesis establish the key of a gateway with none
	// enrolled: only for rebuilding the index from logs (reindex).
	adopt bool
}

var _ Store = (*SQLStore)(nil)

// Option configures a SQLStore.
type Option func(*SQLStore)

// WithLogger sets where alerts are logged (at error level).
func WithLogger(l *slog.Logger) Option { return func(s *SQLStore) { s.log = l } }

// WithClock replaces time.Now for the time alerts carry.
func WithClock(now func() time.Time) Option { return func(s *SQLStore) { s.now = now } }

// AdoptGenesisKeys lets a genesis entry enrol its key when the gateway has
// none enrolled. Only a rebuild from logs the operator vouches for should
// use it: on the live path a gateway enrols its key before it ships.
func AdoptGenesisKeys() Option { return func(s *SQLStore) { s.adopt = true } }

// New returns the index over db, whose schema the catalog's migrations
// created (sqlstore.Store.DB); dialect is "sqlite" or "postgres".
func New(db *sql.DB, dialect string, opts ...Option) (*SQLStore, error) {
	s := &SQLStore{db: db, log: slog.Default(), now: time.Now, wsem: make(chan struct{}, 1)}
	switch dialect {
	case "sqlite":
	case "postgres":
		s.pg = true
	default:
		return nil, fmt.Errorf("audit index: unknown dialect %q", dialect)
	}
	for _, o := range opts {
		o(s)
	}
	return s, nil
}

// micros is how times are stored: Unix microseconds, UTC.
func micros(t time.Time) int64 { return t.UnixMicro() }

func fromMicros(v int64) time.Time { return time.UnixMicro(v).UTC() }

// GatewayMember is the agency a gateway id belongs to: the id itself when it
// is an agency code, else the member part of a system id
// (instance:class:member:system).
func GatewayMember(gateway string) string {
	if catalog.ValidMemberCode(gateway) {
		return gateway
	}
	return memberOf(gateway)
}

func memberOf(systemID string) string {
	parts := strings.Split(systemID, ":")
	if len(parts) == 4 {
		return parts[2]
	}
	return ""
}

// update runs fn in one transaction, one writer at a time.
func (s *SQLStore) update(ctx context.Context, fn func(tx *sql.Tx) error) error {
	select {
	case s.wsem <- struct{}{}:
		defer func() { <-s.wsem }()
	case <-ctx.Done():
		return fmt.Errorf("audit index: wait for the write lock: %w", ctx.Err())
	}
	tx, err := s.db.BeginTx(ctx, nil)
	if err != nil {
		return fmt.Errorf("audit index: begin: %w", err)
	}
	defer tx.Rollback()
	if err := fn(tx); err != nil {
		return err
	}
	if err := tx.Commit(); err != nil {
		return fmt.Errorf("audit index: commit: %w", err)
	}
	return nil
}

// gatewayState is a gateway's row, read under its lock.
type gatewayState struct {
	gateway string
	// key is the enrolled key: the one a new segment's genesis must name.
	key ed25519.PublicKey
	// segKey is the key of the segment the chain is in (named by the last
	// genesis held): the in-log checkpoints that follow are signed with it.
	segKey      ed25519.PublicKey
	next        uint64
	head        string
	verifiedSeq uint64
	// shipping is how far the gateway's log is ahead (shipping.go).
	shipping shippingState
}

// lockGateway reads (creating it if needed) the gateway's row; on
// PostgreSQL the row stays locked until the transaction ends, so two
// shipments of one gateway take turns.
func (s *SQLStore) lockGateway(ctx context.Context, tx *sql.Tx, gateway string) (*gatewayState, error) {
	if _, err := tx.ExecContext(ctx, `INSERT INTO audit_gateways (gateway, next_seq, head, verified_seq)
		VALUES ($1, 1, '', 0) ON CONFLICT (gateway) DO NOTHING`, gateway); err != nil {
		return nil, fmt.Errorf("audit index: gateway %s: %w", gateway, err)
	}
	q := `SELECT public_key, next_seq, head, verified_seq, log_head, head_at, lag, growing_since, shipped_at
		FROM audit_gateways WHERE gateway = $1`
	if s.pg {
		q += " FOR UPDATE"
	}
	st := &gatewayState{gateway: gateway}
	var key []byte
	var next, verified int64
	sh := &st.shipping
	if err := tx.QueryRowContext(ctx, q, gateway).Scan(&key, &next, &st.head, &verified,
		&sh.logHead, &sh.headAt, &sh.lag, &sh.growingSince, &sh.shippedAt); err != nil {
		return nil, fmt.Errorf("audit index: gateway %s: %w", gateway, err)
	}
	if len(key) > 0 {
		st.key = ed25519.PublicKey(key)
	}
	st.next, st.verifiedSeq = uint64(next), uint64(verified)
	seg, err := keyAt(ctx, tx, gateway, st.next)
	if err != nil {
		return nil, err
	}
	st.segKey = seg
	return st, nil
}

// keyAt is the key of the segment holding seq: the one named by the last
// genesis at or before it (nil when none is held).
func keyAt(ctx context.Context, tx *sql.Tx, gateway string, seq uint64) (ed25519.PublicKey, error) {
	var key []byte
	err := tx.QueryRowContext(ctx, `SELECT public_key FROM audit_keys WHERE gateway = $1 AND from_seq <= $2
		ORDER BY from_seq DESC LIMIT 1`, gateway, int64(seq)).Scan(&key)
	if errors.Is(err, sql.ErrNoRows) {
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("audit index: key of %s at %d: %w", gateway, seq, err)
	}
	return ed25519.PublicKey(key), nil
}

func (s *SQLStore) saveGateway(ctx context.Context, tx *sql.Tx, st *gatewayState) error {
	var key any
	if st.key != nil {
		key = []byte(st.key)
	}
	sh := st.shipping
	_, err := tx.ExecContext(ctx, `UPDATE audit_gateways SET public_key = $2, next_seq = $3, head = $4, verified_seq = $5,
		log_head = $6, head_at = $7, lag = $8, growing_since = $9, shipped_at = $10
		WHERE gateway = $1`, st.gateway, key, int64(st.next), st.head, int64(st.verifiedSeq),
		sh.logHead, sh.headAt, sh.lag, sh.growingSince, sh.shippedAt)
	if err != nil {
		return fmt.Errorf("audit index: gateway %s: %w", st.gateway, err)
	}
	return nil
}

// Position reports where a gateway's shipped chain stands ({1, ""} for a
// gateway that has shipped nothing).
func (s *SQLStore) Position(ctx context.Context, gateway string) (Position, error) {
	var next int64
	var head string
	err := s.db.QueryRowContext(ctx, `SELECT next_seq, head FROM audit_gateways WHERE gateway = $1`, gateway).Scan(&next, &head)
	if errors.Is(err, sql.ErrNoRows) {
		return Position{Next: 1}, nil
	}
	if err != nil {
		return Position{}, fmt.Errorf("audit index: position of %s: %w", gateway, err)
	}
	return Position{Next: uint64(next), Head: head}, nil
}

// EnrolKey records a gateway's checkpoint key. The same key again is a
// no-op. A different one is refused and raises an AlertKey, unless rotate
// is set: a gateway cannot swap its own key unseen (the new key would sign
// whatever it writes next), but the platform operator, having looked into
// the alert, accepts a rotated or replaced key. Checkpoints keep being
// verified with the key of their own segment, so history signed with the
// old key stays verifiable, and no key can re-sign entries already held.
func (s *SQLStore) EnrolKey(ctx context.Context, gateway string, pub []byte, rotate bool) error {
	key, err := enrolledKey(pub)
	if err != nil {
		return err
	}
	var refused *ShipError
	err = s.update(ctx, func(tx *sql.Tx) error {
		st, err := s.lockGateway(ctx, tx, gateway)
		if err != nil {
			return err
		}
		switch {
		case st.key == nil:
			st.key = key
			if _, err := tx.ExecContext(ctx, `UPDATE audit_gateways SET key_enrolled = $2 WHERE gateway = $1`, gateway, micros(s.now())); err != nil {
				return err
			}
			return s.saveGateway(ctx, tx, st)
		case st.key.Equal(key):
			return nil
		case rotate:
			s.log.Warn("audit checkpoint key rotated by the operator", "gateway", gateway, "next_seq", st.next)
			st.key = key
			if _, err := tx.ExecContext(ctx, `UPDATE audit_gateways SET key_enrolled = $2 WHERE gateway = $1`, gateway, micros(s.now())); err != nil {
				return err
			}
			return s.saveGateway(ctx, tx, st)
		}
		refused = &ShipError{Kind: AlertKey, Gateway: gateway, Seq: st.next,
			Detail: "a different checkpoint key is already enrolled for this gateway; the platform operator looks into it and, if the key was rotated, enrols the new one"}
		return s.raise(ctx, tx, refused)
	})
	if err != nil {
		return err
	}
	if refused != nil {
		return refused
	}
	return nil
}

// raise stores an alert and logs it at error level.
func (s *SQLStore) raise(ctx context.Context, tx *sql.Tx, e *ShipError) error {
	s.log.Error("audit shipment alert", "alert", string(e.Kind), "gateway", e.Gateway, "seq", e.Seq, "detail", e.Detail)
	_, err := tx.ExecContext(ctx, `INSERT INTO audit_alerts (at, gateway, member, seq, kind, detail) VALUES ($1, $2, $3, $4, $5, $6)`,
		micros(s.now()), e.Gateway, GatewayMember(e.Gateway), int64(e.Seq), string(e.Kind), e.Detail)
	if err != nil {
		return fmt.Errorf("audit index: store alert: %w", err)
	}
	return nil
}

// Alerts lists alerts with id > afterID, oldest first; scope "" lists every
// member's, else only that member's gateways'.
func (s *SQLStore) Alerts(ctx context.Context, scope string, afterID int64, limit int) ([]Alert, error) {
	limit = pageLimit(limit)
	q := `SELECT id, at, gateway, member, seq, kind, detail FROM audit_alerts WHERE id > $1`
	args := []any{afterID}
	if scope != "" {
		q += " AND member = $2"
		args = append(args, scope)
	}
	q += fmt.Sprintf(" ORDER BY id LIMIT %d", limit)
	rows, err := s.db.QueryContext(ctx, q, args...)
	if err != nil {
		return nil, fmt.Errorf("audit index: alerts: %w", err)
	}
	defer rows.Close()
	out := []Alert{}
	for rows.Next() {
		var a Alert
		var at, seq int64
		var kind string
		if err := rows.Scan(&a.ID, &at, &a.Gateway, &a.Member, &seq, &kind, &a.Detail); err != nil {
			return nil, fmt.Errorf("audit index: alerts: %w", err)
		}
		a.At, a.Seq, a.Kind = fromMicros(at), uint64(seq), AlertKind(kind)
		out = append(out, a)
	}
	return out, rows.Err()
}

// pageLimit applies the default (100) and the cap (1000).
func pageLimit(n int) int {
	switch {
	case n <= 0:
		return 100
	case n > 1000:
		return 1000
	}
	return n
}

// heldEntry returns the hash of a held entry ("" when not held).
func heldEntry(ctx context.Context, tx *sql.Tx, gateway string, seq uint64) (string, error) {
	var h string
	err := tx.QueryRowContext(ctx, `SELECT hash FROM audit_entries WHERE gateway = $1 AND seq = $2`, gateway, int64(seq)).Scan(&h)
	if errors.Is(err, sql.ErrNoRows) {
		return "", nil
	}
	return h, err
}

// leaves reads the leaf hashes of entries from..to, which must all be held.
func leaves(ctx context.Context, tx *sql.Tx, gateway string, from, to uint64) ([]audit.Hash, error) {
	rows, err := tx.QueryContext(ctx, `SELECT seq, leaf FROM audit_entries WHERE gateway = $1 AND seq >= $2 AND seq <= $3 ORDER BY seq`,
		gateway, int64(from), int64(to))
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	out := make([]audit.Hash, 0, to-from+1)
	want := from
	for rows.Next() {
		var seq int64
		var leaf []byte
		if err := rows.Scan(&seq, &leaf); err != nil {
			return nil, err
		}
		if uint64(seq) != want || len(leaf) != len(audit.Hash{}) {
			return nil, fmt.Errorf("entry %d missing from the index", want)
		}
		var h audit.Hash
		copy(h[:], leaf)
		out = append(out, h)
		want++
	}
	if err := rows.Err(); err != nil {
		return nil, err
	}
	if want != to+1 {
		return nil, fmt.Errorf("entry %d missing from the index", want)
	}
	return out, nil
}

// sameCheckpoint reports whether two checkpoints state the same thing.
func sameCheckpoint(a, b *audit.Checkpoint) bool {
	return a.From == b.From && a.Seq == b.Seq && a.Head == b.Head && a.Root == b.Root &&
		a.Time.Equal(b.Time) && bytes.Equal(a.Signature, b.Signature)
}
