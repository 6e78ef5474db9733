package audit

import (
	"bytes"
	"crypto/ed25519"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"strconv"
	"time"
)

// Kind says what an entry of the log holds.
type Kind string

const (
	// KindGenesis opens a segment: it names the gateway and its checkpoint key.
	KindGenesis Kind = "genesis"
	// KindRecord holds one exchange record.
	KindRecord Kind = "record"
	// KindCheckpoint holds a signed checkpoint over the entries before it.
	KindCheckpoint Kind = "checkpoint"
)

// Entry is one line of the log. Entries form a hash chain: each names its
// sequence number and the hash of the previous entry's stored bytes, so
// altering, removing, inserting or reordering any entry breaks every link
// after it, and signed checkpoints pin the chain's head where a gateway can
// no longer rewrite it.
type Entry struct {
	// Seq starts at 1 for a new log and continues across segments.
	Seq uint64 `json:"seq"`
	// Prev is EntryHash of the previous entry's stored bytes; "" only for
	// the genesis of a brand-new log.
	Prev       string      `json:"prev"`
	Kind       Kind        `json:"kind"`
	Record     *Record     `json:"record,omitempty"`
	Checkpoint *Checkpoint `json:"checkpoint,omitempty"`
	Genesis    *Genesis    `json:"genesis,omitempty"`
}

// Genesis is the first entry of a segment. It names the gateway and the
// public half of the key that signs its checkpoints, so a segment can be
// verified on its own.
type Genesis struct {
	Gateway string `json:"gateway"`
	// PublicKey is the gateway's Ed25519 checkpoint key.
	PublicKey []byte `json:"publicKey"`
	// Continues is the hash of the last good entry of the segment this one
	// continues (equal to the entry's Prev), or "" for a brand-new log.
	Continues string    `json:"continues"`
	Time      time.Time `json:"time"`
}

// Checkpoint is a gateway's signed statement that its log held entries
// From..Seq with the given head hash and Merkle root. Once a checkpoint has
// left the gateway, the gateway cannot rewrite those entries unnoticed.
type Checkpoint struct {
	Gateway string `json:"gateway"`
	// From and Seq bound the interval the Merkle root covers (inclusive).
	From uint64 `json:"from"`
	Seq  uint64 `json:"seq"`
	// Head is EntryHash of entry Seq.
	Head string `json:"head"`
	// Root is the hex RFC 9162 Merkle tree hash whose leaves are the
	// stored bytes of entries From..Seq (see MerkleRoot).
	Root      string    `json:"root"`
	Time      time.Time `json:"time"`
	Signature []byte    `json:"signature"`
}

// checkpointDomain separates checkpoint signatures from any other use of the key.
const checkpointDomain = "lienthong-audit-checkpoint-v1"

// Message returns the bytes a checkpoint's signature covers: a fixed text
// form of every field but the signature, so it does not depend on how the
// JSON was written.
func (c *Checkpoint) Message() []byte {
	var b bytes.Buffer
	b.WriteString(checkpointDomain)
	b.WriteByte('\n')
	b.WriteString(c.Gateway)
	b.WriteByte('\n')
	b.WriteString(strconv.FormatUint(c.From, 10))
	b.WriteByte('\n')
	b.WriteString(strconv.FormatUint(c.Seq, 10))
	b.WriteByte('\n')
	b.WriteString(c.Head)
	b.WriteByte('\n')
	b.WriteString(c.Root)
	b.WriteByte('\n')
	b.WriteString(c.Time.UTC().Format(time.RFC3339Nano))
	return b.Bytes()
}

// Sign sets the checkpoint's signature with the gateway's checkpoint key.
func (c *Checkpoint) Sign(key ed25519.PrivateKey) {
	c.Signature = ed25519.Sign(key, c.Message())
}

// ErrBadSignature reports a checkpoint whose signature does not verify.
var ErrBadSignature = errors.New("audit checkpoint signature does not verify")

// Verify checks the checkpoint's signature against the gateway's key.
func (c *Checkpoint) Verify(pub ed25519.PublicKey) error {
	if len(pub) != ed25519.PublicKeySize {
		return fmt.Errorf("audit checkpoint key: %d bytes, want %d", len(pub), ed25519.PublicKeySize)
	}
	if !ed25519.Verify(pub, c.Message(), c.Signature) {
		return fmt.Errorf("checkpoint %s %d..%d: %w", c.Gateway, c.From, c.Seq, ErrBadSignature)
	}
	return nil
}

// EntryHash returns the lowercase hex SHA-256 of an entry's stored bytes
// (the line without its newline): the value the next entry's Prev holds.
func EntryHash(line []byte) string {
	h := sha256.Sum256(line)
	return hex.EncodeToString(h[:])
}

// ParseEntry decodes one stored entry strictly: unknown keys, trailing
// data, a payload that does not match the kind, or a malformed hash are
// refused, since a lenient reader would let a forger hide content the hash
// covers but the reader ignores.
func ParseEntry(line []byte) (*Entry, error) {
	d := json.NewDecoder(bytes.NewReader(line))
	d.DisallowUnknownFields()
	var e Entry
	if err := d.Decode(&e); err != nil {
		return nil, fmt.Errorf("audit entry: %w", err)
	}
	if _, err := d.Token(); !errors.Is(err, io.EOF) {
		return nil, errors.New("audit entry: data after the entry")
	}
	if err := e.check(); err != nil {
		return nil, err
	}
	return &e, nil
}

// check verifies an entry's shape, not its place in a chain.
func (e *Entry) check() error {
	if e.Seq == 0 {
		return errors.New("audit entry: seq 0")
	}
	if e.Prev != "" && !isHash(e.Prev) {
		return fmt.Errorf("audit entry %d: prev is not a hex SHA-256", e.Seq)
	}
	n := 0
	for _, set := range []bool{e.Record != nil, e.Checkpoint != nil, e.Genesis != nil} {
		if set {
			n++
		}
	}
	if n != 1 {
		return fmt.Errorf("audit entry %d: holds %d payloads, want 1", e.Seq, n)
	}
	switch {
	case e.Kind == KindRecord && e.Record != nil:
	case e.Kind == KindCheckpoint && e.Checkpoint != nil:
		c := e.Checkpoint
		if c.From == 0 || c.From > c.Seq || c.Seq >= e.Seq || !isHash(c.Head) || !isHash(c.Root) {
			return fmt.Errorf("audit entry %d: malformed checkpoint", e.Seq)
		}
	case e.Kind == KindGenesis && e.Genesis != nil:
		g := e.Genesis
		if len(g.PublicKey) != ed25519.PublicKeySize {
			return fmt.Errorf("audit entry %d: genesis key is %d bytes, want %d", e.Seq, len(g.PublicKey), ed25519.PublicKeySize)
		}
		if g.Continues != e.Prev {
			return fmt.Errorf("audit entry %d: genesis continues %q but links to %q", e.Seq, g.Continues, e.Prev)
		}
	default:
		return fmt.Errorf("audit entry %d: kind %q does not match its payload", e.Seq, e.Kind)
	}
	if e.Prev == "" && (e.Kind != KindGenesis || e.Seq != 1) {
		return fmt.Errorf("audit entry %d: no prev link", e.Seq)
	}
	return nil
}

func isHash(s string) bool {
	if len(s) != 2*sha256.Size {
		return false
	}
	for i := 0; i < len(s); i++ {
		c := s[i]
		if (c < '0' || c > '9') && (c < 'a' || c > 'f') {
			return false
		}
	}
	return true
}
