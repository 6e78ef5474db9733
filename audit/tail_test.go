package audit

import (
	"context"
	"fmt"
	"path/filepath"
	"testing"
)

// The tailer returns whole commits from any seq on, across rotations,
// never past its limit, and each entry once.
func TestTailerFollowsCommitsAndLimit(t *testing.T) {
	path := filepath.Join(t.TempDir(), "audit.jsonl")
	opts := testOptions()
	opts.SegmentBytes = 4 << 10
	s, err := OpenFile(path, opts)
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	for i := range 40 {
		if err := Write(context.Background(), s, &Record{ExchangeID: fmt.Sprintf("t%02d", i)}); err != nil {
			t.Fatal(err)
		}
	}
	head := s.Head().Seq
	limit := uint64(10)
	tl, err := NewTailer(path, 3)
	if err != nil {
		t.Fatal(err)
	}
	defer tl.Close()
	tl.Limit = func() uint64 { return limit }
	next := uint64(3)
	read := func() {
		for {
			lines, err := tl.Next(7)
			if err != nil {
				t.Fatal(err)
			}
			if len(lines) == 0 {
				return
			}
			for _, l := range lines {
				e, err := ParseEntry(l)
				if err != nil || e.Seq != next {
					t.Fatalf("got entry %d (%v), want %d", e.Seq, err, next)
				}
				if e.Seq > limit {
					t.Fatalf("entry %d past the limit %d", e.Seq, limit)
				}
				next++
			}
		}
	}
	read()
	if next != limit+1 {
		t.Fatalf("stopped before %d, want at the limit %d", next, limit)
	}
	limit = head
	read()
	if next != head+1 {
		t.Fatalf("read up to %d, the log's head is %d", next-1, head)
	}
	if segs, _ := listSegments(path); len(segs) < 2 {
		t.Fatalf("%d sealed segments: the test wants rotations", len(segs))
	}
}
