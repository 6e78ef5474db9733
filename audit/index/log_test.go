package index_test

import (
	"context"
	"crypto/ed25519"
	"crypto/rand"
	"encoding/json"
	"path/filepath"
	"testing"
	"time"

	"github.com/lienthong/lienthong/audit"
	"github.com/lienthong/lienthong/audit/index"
	"github.com/lienthong/lienthong/catalog/sqlstore"
)

const (
	mps        = "000.00.00.G01"
	vss        = "000.00.00.G14"
	hcm        = "000.00.79.H29"
	population = "VN:GOV:000.00.00.G01:CSDLDC"
	insurance  = "VN:GOV:000.00.00.G14:BHXH"
	portal     = "VN:GOV:000.00.79.H29:DVC"
	gwMPS      = "VN:GOV:000.00.00.G01:GW"
	gwVSS      = "VN:GOV:000.00.00.G14:GW"
)

// testLog writes a real hash-chained log as a gateway does: a genesis
// naming the gateway's key, records, and signed checkpoints whose Merkle
// root covers the entries since the previous one.
type testLog struct {
	t       *testing.T
	gateway string
	key     ed25519.PrivateKey
	lines   [][]byte
	from    uint64 // first seq of the open checkpoint interval
}

func newTestLog(t *testing.T, gateway string) *testLog {
	t.Helper()
	_, key, err := ed25519.GenerateKey(rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	l := &testLog{t: t, gateway: gateway, key: key, from: 1}
	l.add(&audit.Entry{Kind: audit.KindGenesis, Genesis: &audit.Genesis{Gateway: gateway, PublicKey: l.pub(), Time: time.Now().UTC()}})
	return l
}

func (l *testLog) pub() ed25519.PublicKey { return l.key.Public().(ed25519.PublicKey) }

func (l *testLog) add(e *audit.Entry) []byte {
	l.t.Helper()
	e.Seq = uint64(len(l.lines) + 1)
	if n := len(l.lines); n > 0 {
		e.Prev = audit.EntryHash(l.lines[n-1])
	}
	b, err := json.Marshal(e)
	if err != nil {
		l.t.Fatal(err)
	}
	if _, err := audit.ParseEntry(b); err != nil {
		l.t.Fatalf("test log wrote an entry the parser refuses: %v", err)
	}
	l.lines = append(l.lines, b)
	return b
}

// record appends a record entry.
func (l *testLog) record(r audit.Record) {
	l.add(&audit.Entry{Kind: audit.KindRecord, Record: &r})
}

// signedCheckpoint signs the entries since the last checkpoint, without
// logging it.
func (l *testLog) signedCheckpoint() *audit.Checkpoint {
	seq := uint64(len(l.lines))
	var leaves []audit.Hash
	for _, line := range l.lines[l.from-1 : seq] {
		leaves = append(leaves, audit.LeafHash(line))
	}
	c := &audit.Checkpoint{Gateway: l.gateway, From: l.from, Seq: seq, Head: audit.EntryHash(l.lines[seq-1]),
		Root: audit.HexHash(audit.MerkleRoot(leaves)), Time: time.Now().UTC().Truncate(time.Microsecond)}
	c.Sign(l.key)
	return c
}

// checkpoint logs a signed checkpoint and returns it.
func (l *testLog) checkpoint() *audit.Checkpoint {
	c := l.signedCheckpoint()
	l.add(&audit.Entry{Kind: audit.KindCheckpoint, Checkpoint: c})
	l.from = c.Seq + 1
	return c
}

// exchange returns a provider-side allowed outcome record.
func exchange(id, consumer, provider, subject string, at time.Time) audit.Record {
	return audit.Record{Time: at.UTC(), ExchangeID: id, Side: "provider", Phase: audit.Outcome, Consumer: consumer,
		Provider: provider, Dataset: "citizen", Mode: "query", Purpose: "1.001234", Subject: subject,
		Fields: []string{"fullName", "dateOfBirth"}, GrantID: "grant-1", Status: 200, Bytes: 512}
}

// openIndex opens a fresh catalog database (migrated) and the index over it.
func openIndex(t *testing.T, opts ...index.Option) *index.SQLStore {
	t.Helper()
	st, err := sqlstore.OpenSQLite(context.Background(), filepath.Join(t.TempDir(), "catalog.db"))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { st.Close() })
	ix, err := index.New(st.DB(), st.Dialect(), opts...)
	if err != nil {
		t.Fatal(err)
	}
	return ix
}
