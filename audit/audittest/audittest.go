// Package audittest is the conformance suite every audit.Sink passes, as
// catalog/storetest is for stores and certs/authoritytest for authorities:
// what the gateway relies on from a sink, checked the same way for each.
package audittest

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/lienthong/lienthong/audit"
)

// Harness opens and reads the sink under test.
type Harness struct {
	// Open returns a sink on the log at dir, continuing what is there.
	Open func(t *testing.T, dir string) audit.Sink
	// Close closes a sink Open returned, syncing what it accepted.
	Close func(s audit.Sink) error
	// Read returns the records durable in the log at dir, in order.
	Read func(t *testing.T, dir string) []audit.Record
	// Chained says receipts report positions (seq and hash) in a chain.
	Chained bool
}

// Run runs the suite; each subtest gets its own log directory.
func Run(t *testing.T, h Harness) {
	t.Run("DurableOnSettle", func(t *testing.T) { testDurable(t, h) })
	t.Run("CopiesTheRecord", func(t *testing.T) { testCopies(t, h) })
	t.Run("CommitSoonSettlesAlone", func(t *testing.T) { testCommitSoon(t, h) })
	t.Run("ConcurrentWritersOnceEach", func(t *testing.T) { testConcurrent(t, h) })
	t.Run("ContinuesAfterReopen", func(t *testing.T) { testReopen(t, h) })
	t.Run("RefusesAfterClose", func(t *testing.T) { testClosed(t, h) })
}

func ctx(t *testing.T) context.Context {
	c, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	t.Cleanup(cancel)
	return c
}

func rec(id string) *audit.Record {
	return &audit.Record{Time: time.Now().UTC(), ExchangeID: id, Side: "provider", Phase: audit.Outcome,
		Consumer: "VN:GOV:000.00.00.G13:BHXH", Provider: "VN:GOV:000.00.00.G01:CSDLDC", Dataset: "citizen",
		Fields: []string{"fullName"}, Status: 200}
}

func ids(recs []audit.Record) []string {
	out := make([]string, len(recs))
	for i, r := range recs {
		out[i] = r.ExchangeID
	}
	return out
}

// A settled receipt means the record is in the log: read back (after the
// sink is closed) it is there, whole; a chained sink's positions increase.
func testDurable(t *testing.T, h Harness) {
	dir := t.TempDir()
	s := h.Open(t, dir)
	var last audit.Position
	for i := range 20 {
		rc := s.Submit(rec(fmt.Sprintf("d%02d", i)), audit.CommitNow)
		if err := rc.Wait(ctx(t)); err != nil {
			t.Fatal(err)
		}
		if h.Chained {
			p := rc.Position()
			if p.Seq <= last.Seq || len(p.Hash) != 64 || p.Hash == last.Hash {
				t.Fatalf("record %d at position %+v after %+v", i, p, last)
			}
			last = p
		}
	}
	if err := h.Close(s); err != nil {
		t.Fatal(err)
	}
	got := h.Read(t, dir)
	if len(got) != 20 || got[0].ExchangeID != "d00" || got[19].ExchangeID != "d19" || got[5].Fields[0] != "fullName" {
		t.Fatalf("read back %v", ids(got))
	}
}

// The caller may change or reuse a record once Submit returns.
func testCopies(t *testing.T, h Harness) {
	dir := t.TempDir()
	s := h.Open(t, dir)
	r := rec("orig")
	rc := s.Submit(r, audit.CommitNow)
	r.ExchangeID, r.Fields[0] = "changed", "secretField"
	if err := rc.Wait(ctx(t)); err != nil {
		t.Fatal(err)
	}
	h.Close(s)
	got := h.Read(t, dir)
	if len(got) != 1 || got[0].ExchangeID != "orig" || got[0].Fields[0] != "fullName" {
		t.Fatalf("stored %+v, not the record as submitted", got)
	}
}

// A CommitSoon record with nothing after it still becomes durable.
func testCommitSoon(t *testing.T, h Harness) {
	dir := t.TempDir()
	s := h.Open(t, dir)
	defer h.Close(s)
	if err := s.Submit(rec("soon"), audit.CommitSoon).Wait(ctx(t)); err != nil {
		t.Fatalf("a lone CommitSoon record never settled: %v", err)
	}
}

// Many writers, both commit kinds: every receipt settles, every record is
// read back exactly once, and chained positions are unique.
func testConcurrent(t *testing.T, h Harness) {
	dir := t.TempDir()
	s := h.Open(t, dir)
	const writers, each = 8, 50
	var mu sync.Mutex
	seqs := map[uint64]bool{}
	var wg sync.WaitGroup
	for w := range writers {
		wg.Go(func() {
			for i := range each {
				c := audit.CommitNow
				if i%2 == 0 {
					c = audit.CommitSoon
				}
				rc := s.Submit(rec(fmt.Sprintf("w%d-%02d", w, i)), c)
				if err := rc.Wait(ctx(t)); err != nil {
					t.Error(err)
					return
				}
				if h.Chained {
					mu.Lock()
					if seqs[rc.Position().Seq] {
						t.Errorf("two records at seq %d", rc.Position().Seq)
					}
					seqs[rc.Position().Seq] = true
					mu.Unlock()
				}
			}
		})
	}
	wg.Wait()
	h.Close(s)
	seen := map[string]bool{}
	for _, r := range h.Read(t, dir) {
		if seen[r.ExchangeID] {
			t.Fatalf("%s read twice", r.ExchangeID)
		}
		seen[r.ExchangeID] = true
	}
	if len(seen) != writers*each {
		t.Fatalf("%d records read back, want %d", len(seen), writers*each)
	}
}

// A sink reopened on its log continues it: earlier records stay, positions
// go on increasing.
func testReopen(t *testing.T, h Harness) {
	dir := t.TempDir()
	s := h.Open(t, dir)
	first := s.Submit(rec("before"), audit.CommitNow)
	if err := first.Wait(ctx(t)); err != nil {
		t.Fatal(err)
	}
	h.Close(s)
	s = h.Open(t, dir)
	second := s.Submit(rec("after"), audit.CommitNow)
	if err := second.Wait(ctx(t)); err != nil {
		t.Fatal(err)
	}
	h.Close(s)
	if got := ids(h.Read(t, dir)); len(got) != 2 || got[0] != "before" || got[1] != "after" {
		t.Fatalf("after reopening: %v", got)
	}
	if h.Chained && second.Position().Seq <= first.Position().Seq {
		t.Fatalf("positions went back: %+v then %+v", first.Position(), second.Position())
	}
}

// After Close a record is refused at once, never reported durable.
func testClosed(t *testing.T, h Harness) {
	dir := t.TempDir()
	s := h.Open(t, dir)
	if err := h.Close(s); err != nil {
		t.Fatal(err)
	}
	err := s.Submit(rec("late"), audit.CommitNow).Wait(ctx(t))
	if err == nil || errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("a record submitted after Close: %v", err)
	}
	if got := h.Read(t, dir); len(got) != 0 {
		t.Fatalf("records after Close: %v", ids(got))
	}
}
