// Package indextest writes real hash-chained audit logs for tests of the
// audit index and what stands on it: a genesis naming the gateway's key,
// records, and Ed25519-signed checkpoints whose RFC 9162 Merkle root covers
// the entries since the previous one, exactly as the contract with the
// gateway's log defines them.
package indextest

import (
	"crypto/ed25519"
	"crypto/rand"
	"encoding/json"
	"testing"
	"time"

	"github.com/lienthong/lienthong/audit"
)

// Log is one gateway's log being written.
type Log struct {
	t       testing.TB
	Gateway string
	Key     ed25519.PrivateKey
	// Lines are the entries' stored bytes, Lines[i] is seq i+1.
	Lines [][]byte
	from  uint64 // first seq of the open checkpoint interval
}

// New starts a log with its genesis entry and a fresh key.
func New(t testing.TB, gateway string) *Log {
	t.Helper()
	_, key, err := ed25519.GenerateKey(rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	l := &Log{t: t, Gateway: gateway, Key: key, from: 1}
	l.Add(&audit.Entry{Kind: audit.KindGenesis, Genesis: &audit.Genesis{Gateway: gateway, PublicKey: l.Public(), Time: time.Now().UTC()}})
	return l
}

// Rotate starts a new segment under a new key, as the gateway's writer does
// when its checkpoint key changes: a genesis naming the new key that links
// to the last entry, and a new checkpoint interval from it.
func (l *Log) Rotate() {
	l.t.Helper()
	_, key, err := ed25519.GenerateKey(rand.Reader)
	if err != nil {
		l.t.Fatal(err)
	}
	l.Key = key
	prev := audit.EntryHash(l.Lines[len(l.Lines)-1])
	l.Add(&audit.Entry{Kind: audit.KindGenesis, Genesis: &audit.Genesis{Gateway: l.Gateway, PublicKey: l.Public(), Continues: prev, Time: time.Now().UTC()}})
	l.from = uint64(len(l.Lines))
}

// Public is the gateway's checkpoint public key, to enrol.
func (l *Log) Public() ed25519.PublicKey { return l.Key.Public().(ed25519.PublicKey) }

// Add sets e's seq and prev link, appends it and returns its bytes. The
// test fails if the log's own parser would refuse it.
func (l *Log) Add(e *audit.Entry) []byte {
	l.t.Helper()
	e.Seq = uint64(len(l.Lines) + 1)
	if n := len(l.Lines); n > 0 {
		e.Prev = audit.EntryHash(l.Lines[n-1])
	}
	b, err := json.Marshal(e)
	if err != nil {
		l.t.Fatal(err)
	}
	if _, err := audit.ParseEntry(b); err != nil {
		l.t.Fatalf("indextest wrote an entry the parser refuses: %v", err)
	}
	l.Lines = append(l.Lines, b)
	return b
}

// Record appends a record entry.
func (l *Log) Record(r audit.Record) {
	l.t.Helper()
	l.Add(&audit.Entry{Kind: audit.KindRecord, Record: &r})
}

// SignedCheckpoint signs the entries since the last logged checkpoint,
// without logging it.
func (l *Log) SignedCheckpoint() *audit.Checkpoint {
	seq := uint64(len(l.Lines))
	leaves := make([]audit.Hash, 0, seq-l.from+1)
	for _, line := range l.Lines[l.from-1 : seq] {
		leaves = append(leaves, audit.LeafHash(line))
	}
	c := &audit.Checkpoint{Gateway: l.Gateway, From: l.from, Seq: seq, Head: audit.EntryHash(l.Lines[seq-1]),
		Root: audit.HexHash(audit.MerkleRoot(leaves)), Time: time.Now().UTC()}
	c.Sign(l.Key)
	return c
}

// Checkpoint logs a signed checkpoint over the entries since the last one
// and returns it.
func (l *Log) Checkpoint() *audit.Checkpoint {
	l.t.Helper()
	c := l.SignedCheckpoint()
	l.Add(&audit.Entry{Kind: audit.KindCheckpoint, Checkpoint: c})
	l.from = c.Seq + 1
	return c
}

// Outcome returns a provider-side outcome record of an allowed query.
func Outcome(id, consumer, provider, subject string, at time.Time) audit.Record {
	return audit.Record{Time: at.UTC(), ExchangeID: id, Side: "provider", Phase: audit.Outcome, Consumer: consumer,
		Provider: provider, Dataset: "population", Mode: "query", Purpose: "1.001234", Subject: subject,
		Fields: []string{"fullName", "dateOfBirth"}, GrantID: "grant-1", Status: 200, Bytes: 512}
}
