package index_test

import (
	"bytes"
	"context"
	"crypto/ed25519"
	"crypto/rand"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"testing"
	"time"

	"github.com/lienthong/lienthong/audit"
	"github.com/lienthong/lienthong/audit/index"
)

// shipped is a log of one gateway with a genesis, records and checkpoints,
// its key enrolled at the index.
func shipped(t *testing.T, ix *index.SQLStore, n int) *testLog {
	t.Helper()
	l := newTestLog(t, gwMPS)
	base := time.Date(2026, 11, 20, 8, 0, 0, 0, time.UTC)
	for i := 0; i < n; i++ {
		l.Record(exchange(fmt.Sprintf("x-%d", i), insurance, population, fmt.Sprintf("%064x", i%3), base.Add(time.Duration(i)*time.Minute)))
		if i%4 == 3 {
			l.Checkpoint()
		}
	}
	if err := ix.EnrolKey(context.Background(), gwMPS, l.Public(), false); err != nil {
		t.Fatal(err)
	}
	return l
}

func shipErr(t *testing.T, err error, kind index.AlertKind, seq uint64) {
	t.Helper()
	var se *index.ShipError
	if !errors.As(err, &se) {
		t.Fatalf("err = %v, want a %s ShipError", err, kind)
	}
	if se.Kind != kind || se.Seq != seq {
		t.Fatalf("ShipError %s at %d (%s), want %s at %d", se.Kind, se.Seq, se.Detail, kind, seq)
	}
}

// alertsOf returns the stored alerts and checks each names the gateway.
func alertsOf(t *testing.T, ix *index.SQLStore) []index.Alert {
	t.Helper()
	as, err := ix.Alerts(context.Background(), "", 0, 0)
	if err != nil {
		t.Fatal(err)
	}
	return as
}

func TestIngestIsIdempotentAndResumable(t *testing.T) {
	backends(t, func(t *testing.T, openIndex opener) {
		ctx := context.Background()
		ix := openIndex(t)
		l := shipped(t, ix, 10)
		total := uint64(len(l.Lines))

		// Ship in overlapping batches, as a gateway resending after a crash would.
		for _, b := range [][2]int{{0, 5}, {3, 9}, {0, 9}, {9, len(l.Lines)}, {0, len(l.Lines)}} {
			pos, err := ix.Ingest(ctx, gwMPS, l.Lines[b[0]:b[1]])
			if err != nil {
				t.Fatalf("batch %v: %v", b, err)
			}
			if pos.Next != uint64(b[1])+1 && pos.Next != total+1 {
				t.Fatalf("batch %v: next = %d", b, pos.Next)
			}
		}
		pos, err := ix.Position(ctx, gwMPS)
		if err != nil || pos.Next != total+1 || pos.Head != audit.EntryHash(l.Lines[total-1]) {
			t.Fatalf("position = %+v, %v; want next %d", pos, err, total+1)
		}
		page, err := ix.Exchanges(ctx, index.Query{Limit: 1000})
		if err != nil {
			t.Fatal(err)
		}
		if len(page.Items) != 10 {
			t.Fatalf("%d exchange records held, want each of the 10 exactly once", len(page.Items))
		}
		seen := map[string]bool{}
		for _, x := range page.Items {
			if seen[x.ExchangeID] {
				t.Fatalf("exchange %s held twice", x.ExchangeID)
			}
			seen[x.ExchangeID] = true
		}
		if as := alertsOf(t, ix); len(as) != 0 {
			t.Fatalf("resends raised alerts: %+v", as)
		}
	})
}

func TestIngestRefusesGapForkAndBrokenChain(t *testing.T) {
	backends(t, func(t *testing.T, openIndex opener) {
		ctx := context.Background()
		cases := []struct {
			name string
			// ship sends something wrong after entries 1..5 are held.
			ship func(l *testLog) [][]byte
			kind index.AlertKind
			seq  uint64
		}{
			{"gap", func(l *testLog) [][]byte { return l.Lines[6:] }, index.AlertGap, 7},
			{"fork: a held entry altered", func(l *testLog) [][]byte {
				// Same entry, one more byte (trailing space): parses, hashes differently.
				alt := append(append([]byte(nil), l.Lines[2]...), ' ')
				return [][]byte{alt}
			}, index.AlertFork, 3},
			{"broken chain", func(l *testLog) [][]byte {
				other := newTestLog(t, gwMPS) // same seqs, different history
				for i := 0; i < 5; i++ {
					other.Record(exchange(fmt.Sprintf("y-%d", i), insurance, population, "", time.Now()))
				}
				return other.Lines[5:6]
			}, index.AlertChain, 6},
		}
		for _, c := range cases {
			t.Run(c.name, func(t *testing.T) {
				ix := openIndex(t)
				l := shipped(t, ix, 8)
				if _, err := ix.Ingest(ctx, gwMPS, l.Lines[:5]); err != nil {
					t.Fatal(err)
				}
				pos, err := ix.Ingest(ctx, gwMPS, c.ship(l))
				shipErr(t, err, c.kind, c.seq)
				if pos.Next != 6 {
					t.Fatalf("position moved to %d on a refused shipment", pos.Next)
				}
				as := alertsOf(t, ix)
				if len(as) != 1 || as[0].Kind != c.kind || as[0].Seq != c.seq || as[0].Gateway != gwMPS || as[0].Member != mps {
					t.Fatalf("alerts = %+v, want one %s at %d for %s", as, c.kind, c.seq, gwMPS)
				}
				// The genuine continuation is still accepted afterwards.
				if _, err := ix.Ingest(ctx, gwMPS, l.Lines[5:]); err != nil {
					t.Fatalf("genuine entries after the alert: %v", err)
				}
			})
		}
	})
}

func TestIngestKeepsTheGoodPrefixOfARefusedBatch(t *testing.T) {
	backends(t, func(t *testing.T, openIndex opener) {
		ctx := context.Background()
		var logged bytes.Buffer
		ix := openIndex(t, index.WithLogger(slog.New(slog.NewJSONHandler(&logged, nil))))
		l := shipped(t, ix, 6)
		batch := append(append([][]byte{}, l.Lines[:4]...), l.Lines[5:]...) // entry 5 missing
		pos, err := ix.Ingest(ctx, gwMPS, batch)
		shipErr(t, err, index.AlertGap, 6)
		if pos.Next != 5 {
			t.Fatalf("next = %d, want 5: the four good entries are kept", pos.Next)
		}
		// The alert is logged at error level with the gateway and the seq.
		var line struct {
			Level, Alert, Gateway string
			Seq                   uint64
		}
		if err := json.Unmarshal(logged.Bytes(), &line); err != nil || line.Level != "ERROR" || line.Alert != "audit-gap" ||
			line.Gateway != gwMPS || line.Seq != 6 {
			t.Fatalf("alert log line %q (%v)", logged.String(), err)
		}
	})
}

func TestCheckpointsAreVerified(t *testing.T) {
	backends(t, func(t *testing.T, openIndex opener) {
		ctx := context.Background()

		t.Run("bad signature in the log", func(t *testing.T) {
			ix := openIndex(t)
			l := shipped(t, ix, 3)
			c := l.SignedCheckpoint()
			c.Signature[0] ^= 0xff
			l.Add(&audit.Entry{Kind: audit.KindCheckpoint, Checkpoint: c})
			_, err := ix.Ingest(ctx, gwMPS, l.Lines)
			shipErr(t, err, index.AlertCheckpoint, uint64(len(l.Lines)))
		})

		t.Run("signed by another key", func(t *testing.T) {
			ix := openIndex(t)
			l := shipped(t, ix, 3)
			_, other, _ := ed25519.GenerateKey(rand.Reader)
			c := l.SignedCheckpoint()
			c.Sign(other)
			l.Add(&audit.Entry{Kind: audit.KindCheckpoint, Checkpoint: c})
			_, err := ix.Ingest(ctx, gwMPS, l.Lines)
			shipErr(t, err, index.AlertCheckpoint, uint64(len(l.Lines)))
		})

		t.Run("root over other entries, validly signed", func(t *testing.T) {
			// The gateway rewrote entry 2 after the fact and signs a root over
			// its new history; the index holds the old one.
			ix := openIndex(t)
			l := shipped(t, ix, 3)
			if _, err := ix.Ingest(ctx, gwMPS, l.Lines); err != nil {
				t.Fatal(err)
			}
			c := l.SignedCheckpoint()
			c.Root = audit.HexHash(audit.MerkleRoot([]audit.Hash{audit.LeafHash([]byte("rewritten"))}))
			c.Sign(l.Key)
			err := ix.AddCheckpoint(ctx, gwMPS, c)
			shipErr(t, err, index.AlertCheckpoint, c.Seq)
		})

		t.Run("posted before its entries, checked when they arrive", func(t *testing.T) {
			ix := openIndex(t)
			l := shipped(t, ix, 5)
			good := l.SignedCheckpoint()
			if err := ix.AddCheckpoint(ctx, gwMPS, good); err != nil {
				t.Fatalf("pending checkpoint refused: %v", err)
			}
			if err := ix.AddCheckpoint(ctx, gwMPS, good); err != nil {
				t.Fatalf("the same checkpoint again: %v", err)
			}
			if _, err := ix.Ingest(ctx, gwMPS, l.Lines); err != nil {
				t.Fatalf("entries matching the posted checkpoint: %v", err)
			}

			ix2 := openIndex(t)
			l2 := shipped(t, ix2, 5)
			bad := l2.SignedCheckpoint()
			bad.Head = audit.EntryHash([]byte("not the head"))
			bad.Sign(l2.Key)
			if err := ix2.AddCheckpoint(ctx, gwMPS, bad); err != nil {
				t.Fatalf("pending checkpoint refused early: %v", err)
			}
			_, err := ix2.Ingest(ctx, gwMPS, l2.Lines)
			shipErr(t, err, index.AlertCheckpoint, bad.Seq)
		})

		t.Run("a second, different checkpoint at the same seq", func(t *testing.T) {
			ix := openIndex(t)
			l := shipped(t, ix, 3)
			if _, err := ix.Ingest(ctx, gwMPS, l.Lines); err != nil {
				t.Fatal(err)
			}
			c := l.SignedCheckpoint()
			if err := ix.AddCheckpoint(ctx, gwMPS, c); err != nil {
				t.Fatal(err)
			}
			c2 := *c
			c2.Time = c.Time.Add(time.Second)
			c2.Sign(l.Key)
			shipErr(t, ix.AddCheckpoint(ctx, gwMPS, &c2), index.AlertFork, c.Seq)
		})
	})
}

func TestKeys(t *testing.T) {
	backends(t, func(t *testing.T, openIndex opener) {
		ctx := context.Background()

		t.Run("genesis without an enrolled key", func(t *testing.T) {
			ix := openIndex(t)
			l := newTestLog(t, gwMPS)
			_, err := ix.Ingest(ctx, gwMPS, l.Lines)
			shipErr(t, err, index.AlertKey, 1)
		})

		t.Run("genesis naming another key", func(t *testing.T) {
			ix := openIndex(t)
			l := newTestLog(t, gwMPS)
			other := newTestLog(t, gwMPS)
			if err := ix.EnrolKey(ctx, gwMPS, other.Public(), false); err != nil {
				t.Fatal(err)
			}
			_, err := ix.Ingest(ctx, gwMPS, l.Lines)
			shipErr(t, err, index.AlertKey, 1)
		})

		t.Run("re-enrolling another key", func(t *testing.T) {
			ix := openIndex(t)
			l := newTestLog(t, gwMPS)
			if err := ix.EnrolKey(ctx, gwMPS, l.Public(), false); err != nil {
				t.Fatal(err)
			}
			if err := ix.EnrolKey(ctx, gwMPS, l.Public(), false); err != nil {
				t.Fatalf("same key again: %v", err)
			}
			other := newTestLog(t, gwMPS)
			var se *index.ShipError
			if err := ix.EnrolKey(ctx, gwMPS, other.Public(), false); !errors.As(err, &se) || se.Kind != index.AlertKey {
				t.Fatalf("another key enrolled over the first: %v", err)
			}
			if err := ix.EnrolKey(ctx, gwMPS, []byte("short"), false); !errors.Is(err, index.ErrInvalid) {
				t.Fatalf("a malformed key: %v", err)
			}
		})

		t.Run("reindex adopts the genesis key", func(t *testing.T) {
			ix := openIndex(t, index.AdoptGenesisKeys())
			l := newTestLog(t, gwMPS)
			l.Record(exchange("x", insurance, population, "", time.Now()))
			l.Checkpoint()
			if _, err := ix.Ingest(ctx, gwMPS, l.Lines); err != nil {
				t.Fatal(err)
			}
		})

		t.Run("a gateway shipping as another", func(t *testing.T) {
			ix := openIndex(t)
			l := newTestLog(t, gwVSS)
			if err := ix.EnrolKey(ctx, gwMPS, l.Public(), false); err != nil {
				t.Fatal(err)
			}
			_, err := ix.Ingest(ctx, gwMPS, l.Lines)
			shipErr(t, err, index.AlertKey, 1)
		})
	})
}

func TestIngestRefusesMalformedEntries(t *testing.T) {
	backends(t, func(t *testing.T, openIndex opener) {
		ix := openIndex(t)
		for _, line := range []string{``, `{}`, `{"seq":1,"prev":"","kind":"record","record":{},"extra":1}`, `not json`} {
			if _, err := ix.Ingest(context.Background(), gwMPS, [][]byte{[]byte(line)}); !errors.Is(err, index.ErrInvalid) {
				t.Errorf("%q: err = %v, want ErrInvalid", line, err)
			}
		}
	})
}

// A gateway cannot swap its key unseen, but the operator can accept a
// rotated one; each segment's checkpoints verify with that segment's key,
// before and after the rotation, and the old key signs nothing new.
func TestKeyRotation(t *testing.T) {
	backends(t, func(t *testing.T, openIndex opener) {
		ctx := context.Background()
		ix := openIndex(t)
		l := shipped(t, ix, 4) // segment 1 under key A, with a checkpoint
		oldKey := l.Key
		l.Record(exchange("x-late", insurance, population, "", time.Now()))
		late := l.SignedCheckpoint() // posted on its own, after the rotation
		if _, err := ix.Ingest(ctx, gwMPS, l.Lines); err != nil {
			t.Fatal(err)
		}
		l.Rotate()
		l.Record(exchange("x-new", insurance, population, "", time.Now()))
		l.Checkpoint()

		// The gateway's own enrolment of the new key is refused; its
		// segment cannot be shipped until the operator accepts the key.
		var se *index.ShipError
		if err := ix.EnrolKey(ctx, gwMPS, l.Public(), false); !errors.As(err, &se) || se.Kind != index.AlertKey {
			t.Fatalf("the gateway swapped its own key: %v", err)
		}
		_, err := ix.Ingest(ctx, gwMPS, l.Lines)
		shipErr(t, err, index.AlertKey, uint64(len(l.Lines)-2))
		if err := ix.EnrolKey(ctx, gwMPS, l.Public(), true); err != nil {
			t.Fatalf("the operator's rotation: %v", err)
		}
		if _, err := ix.Ingest(ctx, gwMPS, l.Lines); err != nil {
			t.Fatalf("the new segment after the rotation: %v", err)
		}
		if err := ix.AddCheckpoint(ctx, gwMPS, late); err != nil {
			t.Fatalf("a checkpoint of the old segment, signed with the old key: %v", err)
		}
		// The old key cannot sign for the new segment.
		forged := l.SignedCheckpoint()
		forged.From, forged.Seq = uint64(len(l.Lines)-2), uint64(len(l.Lines)-1)
		forged.Head = audit.EntryHash(l.Lines[forged.Seq-1])
		var leaves []audit.Hash
		for _, line := range l.Lines[forged.From-1 : forged.Seq] {
			leaves = append(leaves, audit.LeafHash(line))
		}
		forged.Root = audit.HexHash(audit.MerkleRoot(leaves))
		forged.Sign(oldKey)
		shipErr(t, ix.AddCheckpoint(ctx, gwMPS, forged), index.AlertCheckpoint, forged.Seq)
	})
}
