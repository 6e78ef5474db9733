package index

import (
	"context"
	"crypto/ed25519"
	"database/sql"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/lienthong/lienthong/audit"
)

// Ingest checks and stores raw entries of one gateway, contiguous by seq,
// in one transaction. It is idempotent: an entry already held with the same
// hash is skipped, so a gateway that crashed mid-shipment resends from its
// last position and nothing is stored twice. Entries are refused with a
// *ShipError, after the good ones before them are kept, when:
//
//   - a held seq arrives with other bytes (AlertFork);
//   - the first new seq is past the next expected (AlertGap);
//   - an entry's prev is not the hash of the entry before it (AlertChain);
//   - a genesis names a key other than the enrolled one (AlertKey);
//   - a checkpoint's signature, head or Merkle root does not verify
//     against the held entries and the enrolled key (AlertCheckpoint).
//
// Each refusal is stored as an alert and logged at error level. A line that
// is not an entry at all wraps ErrInvalid.
func (s *SQLStore) Ingest(ctx context.Context, gateway string, lines [][]byte) (Position, error) {
	return s.IngestShipment(ctx, gateway, lines, 0)
}

// IngestShipment is Ingest of a shipment that carries its log's head (the
// last seq of the gateway's log; 0: none), recorded with the lag in the
// same transaction as the entries, refused or not (a gateway stuck on a
// fork shows a lag that grows): one write per shipment, and never a
// shipment whose entries are committed but answered with an error, nor a
// refusal answered with anything but its ShipError. A head past
// math.MaxInt64 wraps ErrInvalid.
func (s *SQLStore) IngestShipment(ctx context.Context, gateway string, lines [][]byte, head uint64) (Position, error) {
	if err := checkHead(head); err != nil {
		return Position{}, err
	}
	entries := make([]*audit.Entry, len(lines))
	for i, line := range lines {
		e, err := audit.ParseEntry(line)
		if err != nil {
			return Position{}, fmt.Errorf("%w: entry %d of the shipment: %v", ErrInvalid, i, err)
		}
		entries[i] = e
	}
	var (
		refused *ShipError
		pos     Position
	)
	err := s.update(ctx, func(tx *sql.Tx) error {
		st, err := s.lockGateway(ctx, tx, gateway)
		if err != nil {
			return err
		}
		before := st.next
		for i, e := range entries {
			if refused, err = s.ingestOne(ctx, tx, st, e, lines[i]); err != nil {
				return err
			}
			if refused != nil {
				break
			}
		}
		if refused == nil {
			refused, err = s.verifyPending(ctx, tx, st)
			if err != nil {
				return err
			}
		}
		if refused != nil {
			if err := s.raise(ctx, tx, refused); err != nil {
				return err
			}
		}
		pos = Position{Next: st.next, Head: st.head}
		now := micros(s.now())
		if st.next > before {
			st.shipping.shippedAt = now
		}
		if head != 0 {
			st.shipping.report(head, st.next-1, now)
		}
		return s.saveGateway(ctx, tx, st)
	})
	if err != nil {
		return Position{}, err
	}
	if refused != nil {
		return pos, refused
	}
	return pos, nil
}

// ingestOne checks one entry against the chain and stores it. It returns a
// *ShipError (and nil error) when the entry is refused.
func (s *SQLStore) ingestOne(ctx context.Context, tx *sql.Tx, st *gatewayState, e *audit.Entry, line []byte) (*ShipError, error) {
	hash := audit.EntryHash(line)
	refuse := func(kind AlertKind, format string, args ...any) (*ShipError, error) {
		return &ShipError{Kind: kind, Gateway: st.gateway, Seq: e.Seq, Detail: fmt.Sprintf(format, args...)}, nil
	}
	switch {
	case e.Seq < st.next:
		held, err := heldEntry(ctx, tx, st.gateway, e.Seq)
		if err != nil {
			return nil, fmt.Errorf("audit index: entry %d: %w", e.Seq, err)
		}
		if held == hash {
			return nil, nil // already held: a resend
		}
		return refuse(AlertFork, "entry %d is held with hash %s; the gateway now sends one with hash %s", e.Seq, held, hash)
	case e.Seq > st.next:
		return refuse(AlertGap, "expected entry %d next, got %d: entries %d..%d are missing", st.next, e.Seq, st.next, e.Seq-1)
	case e.Prev != st.head:
		return refuse(AlertChain, "entry %d links to %q, but the entry before it has hash %q", e.Seq, e.Prev, st.head)
	}
	switch e.Kind {
	case audit.KindGenesis:
		g := e.Genesis
		if g.Gateway != st.gateway {
			return refuse(AlertKey, "genesis names gateway %q, shipped as %q", g.Gateway, st.gateway)
		}
		named := ed25519.PublicKey(append([]byte(nil), g.PublicKey...))
		switch {
		case st.key != nil && st.key.Equal(named):
		case s.adopt:
			st.key = named // a rebuild from logs the operator vouches for
		case st.key == nil:
			return refuse(AlertKey, "genesis names a checkpoint key, but none is enrolled: the gateway enrols its key (PUT .../key) before it ships")
		default:
			return refuse(AlertKey, "genesis names a checkpoint key other than the enrolled one (a rotated key is enrolled by the platform operator)")
		}
		if _, err := tx.ExecContext(ctx, `INSERT INTO audit_keys (gateway, from_seq, public_key) VALUES ($1, $2, $3)`,
			st.gateway, int64(e.Seq), []byte(named)); err != nil {
			return nil, fmt.Errorf("audit index: segment key at %d: %w", e.Seq, err)
		}
		st.segKey = named
	case audit.KindCheckpoint:
		// The checkpoint covers entries before it, all held by now.
		if r, err := s.checkpoint(ctx, tx, st, e.Checkpoint, e.Seq); r != nil || err != nil {
			return r, err
		}
	case audit.KindRecord:
		if err := insertRecord(ctx, tx, st.gateway, e.Seq, e.Record); err != nil {
			return nil, err
		}
	}
	leaf := audit.LeafHash(line)
	if _, err := tx.ExecContext(ctx, `INSERT INTO audit_entries (gateway, seq, hash, leaf, kind) VALUES ($1, $2, $3, $4, $5)`,
		st.gateway, int64(e.Seq), hash, leaf[:], string(e.Kind)); err != nil {
		return nil, fmt.Errorf("audit index: store entry %d: %w", e.Seq, err)
	}
	st.next, st.head = e.Seq+1, hash
	return nil, nil
}

// AddCheckpoint checks and stores a checkpoint posted on its own: its
// signature (with the key of its segment), head and root are checked now
// when the entries it covers are held, else as soon as they arrive (Ingest).
func (s *SQLStore) AddCheckpoint(ctx context.Context, gateway string, c *audit.Checkpoint) error {
	if c == nil || c.From == 0 || c.From > c.Seq {
		return fmt.Errorf("%w: a checkpoint needs 1 <= from <= seq", ErrInvalid)
	}
	var refused *ShipError
	err := s.update(ctx, func(tx *sql.Tx) error {
		st, err := s.lockGateway(ctx, tx, gateway)
		if err != nil {
			return err
		}
		if refused, err = s.checkpoint(ctx, tx, st, c, 0); err != nil {
			return err
		}
		if refused != nil {
			return s.raise(ctx, tx, refused)
		}
		return s.saveGateway(ctx, tx, st)
	})
	if err != nil {
		return err
	}
	if refused != nil {
		return refused
	}
	return nil
}

// checkpoint verifies c (found in the log at entry at, or 0 when posted)
// and stores it: verified when its entries are held, pending otherwise.
func (s *SQLStore) checkpoint(ctx context.Context, tx *sql.Tx, st *gatewayState, c *audit.Checkpoint, at uint64) (*ShipError, error) {
	seq := at
	if seq == 0 {
		seq = c.Seq
	}
	refuse := func(format string, args ...any) (*ShipError, error) {
		return &ShipError{Kind: AlertCheckpoint, Gateway: st.gateway, Seq: seq, Detail: fmt.Sprintf(format, args...)}, nil
	}
	if c.Gateway != st.gateway {
		return refuse("checkpoint %d..%d names gateway %q", c.From, c.Seq, c.Gateway)
	}
	// A checkpoint is signed with the key of its segment. One in the log
	// follows its segment's genesis; one posted on its own is checked now
	// when its entries are held, else when they arrive (verifyPending).
	covered := c.Seq < st.next
	var key ed25519.PublicKey
	switch {
	case at != 0:
		key = st.segKey
	case covered:
		var err error
		if key, err = keyAt(ctx, tx, st.gateway, c.Seq); err != nil {
			return nil, err
		}
	}
	if at != 0 || covered {
		if key == nil {
			return refuse("checkpoint %d..%d: no segment key is held for it", c.From, c.Seq)
		}
		if err := c.Verify(key); err != nil {
			return refuse("checkpoint %d..%d: signature does not verify with the key of its segment", c.From, c.Seq)
		}
	}
	held, err := heldCheckpoint(ctx, tx, st.gateway, c.Seq)
	if err != nil {
		return nil, err
	}
	if held != nil {
		if sameCheckpoint(held, c) {
			return nil, nil
		}
		return &ShipError{Kind: AlertFork, Gateway: st.gateway, Seq: c.Seq,
			Detail: fmt.Sprintf("a different signed checkpoint at seq %d is already held (root %s, now %s)", c.Seq, held.Root, c.Root)}, nil
	}
	verified := false
	if covered {
		if r := s.checkCovered(ctx, tx, st, c); r != nil {
			r.Seq = seq
			return r, nil
		}
		verified = true
	}
	if _, err := tx.ExecContext(ctx, `INSERT INTO audit_checkpoints (gateway, seq, from_seq, head, root, at, signature, verified)
		VALUES ($1, $2, $3, $4, $5, $6, $7, $8)`, st.gateway, int64(c.Seq), int64(c.From), c.Head, c.Root,
		c.Time.UnixNano(), c.Signature, boolInt(verified)); err != nil {
		return nil, fmt.Errorf("audit index: store checkpoint %d: %w", c.Seq, err)
	}
	if verified && c.Seq > st.verifiedSeq {
		st.verifiedSeq = c.Seq
	}
	return nil, nil
}

// checkCovered checks a checkpoint's head and Merkle root against the held
// entries it covers.
func (s *SQLStore) checkCovered(ctx context.Context, tx *sql.Tx, st *gatewayState, c *audit.Checkpoint) *ShipError {
	bad := func(format string, args ...any) *ShipError {
		return &ShipError{Kind: AlertCheckpoint, Gateway: st.gateway, Seq: c.Seq, Detail: fmt.Sprintf(format, args...)}
	}
	head, err := heldEntry(ctx, tx, st.gateway, c.Seq)
	if err != nil || head == "" {
		return bad("checkpoint %d..%d: entry %d is not held", c.From, c.Seq, c.Seq)
	}
	if head != c.Head {
		return bad("checkpoint %d..%d: signed head %s, held entry %d has hash %s", c.From, c.Seq, c.Head, c.Seq, head)
	}
	ls, err := leaves(ctx, tx, st.gateway, c.From, c.Seq)
	if err != nil {
		return bad("checkpoint %d..%d: %v", c.From, c.Seq, err)
	}
	if root := audit.HexHash(audit.MerkleRoot(ls)); root != c.Root {
		return bad("checkpoint %d..%d: signed Merkle root %s, the held entries give %s", c.From, c.Seq, c.Root, root)
	}
	return nil
}

// verifyPending checks posted checkpoints whose entries have now arrived.
func (s *SQLStore) verifyPending(ctx context.Context, tx *sql.Tx, st *gatewayState) (*ShipError, error) {
	rows, err := tx.QueryContext(ctx, `SELECT seq, from_seq, head, root, at, signature FROM audit_checkpoints
		WHERE gateway = $1 AND verified = 0 AND seq < $2 ORDER BY seq`, st.gateway, int64(st.next))
	if err != nil {
		return nil, fmt.Errorf("audit index: pending checkpoints: %w", err)
	}
	var pending []*audit.Checkpoint
	for rows.Next() {
		c, err := scanCheckpoint(rows, st.gateway)
		if err != nil {
			rows.Close()
			return nil, err
		}
		pending = append(pending, c)
	}
	rows.Close()
	if err := rows.Err(); err != nil {
		return nil, err
	}
	for _, c := range pending {
		key, err := keyAt(ctx, tx, st.gateway, c.Seq)
		if err != nil {
			return nil, err
		}
		if key == nil || c.Verify(key) != nil {
			return &ShipError{Kind: AlertCheckpoint, Gateway: st.gateway, Seq: c.Seq,
				Detail: fmt.Sprintf("checkpoint %d..%d: signature does not verify with the key of its segment", c.From, c.Seq)}, nil
		}
		if r := s.checkCovered(ctx, tx, st, c); r != nil {
			return r, nil
		}
		if _, err := tx.ExecContext(ctx, `UPDATE audit_checkpoints SET verified = 1 WHERE gateway = $1 AND seq = $2`, st.gateway, int64(c.Seq)); err != nil {
			return nil, err
		}
		if c.Seq > st.verifiedSeq {
			st.verifiedSeq = c.Seq
		}
	}
	return nil, nil
}

// Checkpoints calls fn with the held checkpoints of gateway from seq from on,
// in seq order, streaming them from the database.
func (s *SQLStore) Checkpoints(ctx context.Context, gateway string, from uint64, fn func(*audit.Checkpoint) error) error {
	rows, err := s.db.QueryContext(ctx, `SELECT seq, from_seq, head, root, at, signature FROM audit_checkpoints
		WHERE gateway = $1 AND seq >= $2 ORDER BY seq`, gateway, int64(from))
	if err != nil {
		return fmt.Errorf("audit index: checkpoints of %s: %w", gateway, err)
	}
	defer rows.Close()
	for rows.Next() {
		c, err := scanCheckpoint(rows, gateway)
		if err != nil {
			return fmt.Errorf("audit index: checkpoints of %s: %w", gateway, err)
		}
		if err := fn(c); err != nil {
			return err
		}
	}
	return rows.Err()
}

func heldCheckpoint(ctx context.Context, tx *sql.Tx, gateway string, seq uint64) (*audit.Checkpoint, error) {
	c, err := scanCheckpoint(tx.QueryRowContext(ctx, `SELECT seq, from_seq, head, root, at, signature FROM audit_checkpoints
		WHERE gateway = $1 AND seq = $2`, gateway, int64(seq)), gateway)
	if errors.Is(err, sql.ErrNoRows) {
		return nil, nil
	}
	return c, err
}

type scanner interface{ Scan(...any) error }

func scanCheckpoint(r scanner, gateway string) (*audit.Checkpoint, error) {
	var seq, from, at int64
	c := &audit.Checkpoint{Gateway: gateway}
	if err := r.Scan(&seq, &from, &c.Head, &c.Root, &at, &c.Signature); err != nil {
		return nil, err
	}
	// Nanoseconds, as signed: the signature covers the time to the nanosecond.
	c.Seq, c.From, c.Time = uint64(seq), uint64(from), time.Unix(0, at).UTC()
	return c, nil
}

func boolInt(b bool) int {
	if b {
		return 1
	}
	return 0
}

// subjectsOf lists the subject HMACs a record names. (When records name
// several subjects, add them here.)
func subjectsOf(r *audit.Record) []string {
	if r.Subject == "" {
		return r.Subjects
	}
	return append([]string{r.Subject}, r.Subjects...)
}

// concerns reports whether a record goes into the citizen tracker's index:
// an outcome of either side, whatever it answered, since a citizen is told
// of every attempt to read their record (allowed, partial, refused, failed),
// not only of what was disclosed. Intents stay out: each is followed by its
// outcome. The tracker shows one entry per exchange (Disclosures).
func concerns(r *audit.Record) bool {
	return r.Phase == audit.Outcome
}

// subjectKey is how a subject HMAC is stored in the tracker's index: its
// 32 bytes when it is hex, its text otherwise.
func subjectKey(s string) []byte {
	if b, err := hex.DecodeString(s); err == nil && len(b) > 0 {
		return b
	}
	return []byte(s)
}

// insertRecord stores a record entry for auditors and, when it is an
// outcome, for the subjects' tracker.
func insertRecord(ctx context.Context, tx *sql.Tx, gateway string, seq uint64, r *audit.Record) error {
	fields, err := json.Marshal(nonNil(r.Fields))
	if err != nil {
		return err
	}
	reasons, err := json.Marshal(nonNil(r.Reasons))
	if err != nil {
		return err
	}
	subjects := subjectsOf(r)
	if _, err := tx.ExecContext(ctx, `INSERT INTO audit_records (gateway, seq, at, exchange_id, side, phase, consumer, consumer_member,
		provider, provider_member, dataset, mode, purpose, case_ref, subject, subjects, fields, grant_id, reasons, status, bytes,
		latency_ms, request_hash, policy_revision)
		VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15, $16, $17, $18, $19, $20, $21, $22, $23, $24)`,
		gateway, int64(seq), micros(r.Time), r.ExchangeID, r.Side, string(r.Phase), r.Consumer, memberOf(r.Consumer),
		r.Provider, memberOf(r.Provider), r.Dataset, r.Mode, r.Purpose, r.Case, strings.ToLower(r.Subject), len(subjects),
		string(fields), r.GrantID, string(reasons), r.Status, r.Bytes, r.LatencyMS, r.RequestHash, r.PolicyRevision); err != nil {
		return fmt.Errorf("audit index: store record %d: %w", seq, err)
	}
	if !concerns(r) {
		return nil
	}
	for _, subj := range subjects {
		if _, err := tx.ExecContext(ctx, `INSERT INTO audit_disclosures (subject, at, gateway, seq) VALUES ($1, $2, $3, $4)
			ON CONFLICT DO NOTHING`, subjectKey(strings.ToLower(subj)), micros(r.Time), gateway, int64(seq)); err != nil {
			return fmt.Errorf("audit index: store disclosure %d: %w", seq, err)
		}
	}
	return nil
}

func nonNil(xs []string) []string {
	if xs == nil {
		return []string{}
	}
	return xs
}
