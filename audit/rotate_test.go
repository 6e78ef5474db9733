package audit

import (
	"bytes"
	"context"
	"crypto/ed25519"
	"fmt"
	"os"
	"path/filepath"
	"sync"
	"testing"
	"time"
)

// Segments rotate by size and by age, the chain continuing across them,
// and a crash at any step of a rotation (the old segment renamed but no new
// one, or a new one still empty) is recovered on start: the log verifies.
func TestRotationBySizeAndAgeAndItsCrashes(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "audit.jsonl")
	var mu sync.Mutex
	now := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	clock := func() time.Time { mu.Lock(); defer mu.Unlock(); return now }
	advance := func(d time.Duration) { mu.Lock(); now = now.Add(d); mu.Unlock() }
	opts := testOptions()
	opts.SegmentBytes, opts.SegmentAge, opts.Now = 8<<10, time.Hour, clock
	write := func(s *FileSink, prefix string, n int) {
		for i := range n {
			if err := Write(context.Background(), s, &Record{ExchangeID: fmt.Sprintf("%s%03d", prefix, i)}); err != nil {
				t.Fatal(err)
			}
		}
	}
	verify := func(wantSegs int) *Report {
		t.Helper()
		files, err := LogFiles(path)
		if err != nil {
			t.Fatal(err)
		}
		if len(files) < wantSegs {
			t.Fatalf("%d files, want at least %d", len(files), wantSegs)
		}
		rep, err := Verify(files, nil)
		if err != nil {
			t.Fatal(err)
		}
		return rep
	}
	s, err := OpenFile(path, opts)
	if err != nil {
		t.Fatal(err)
	}
	write(s, "size", 60) // > 8 KiB: rotations by size
	n := len(mustSegments(t, path))
	if n < 2 {
		t.Fatalf("%d sealed segments after 60 records of 8 KiB segments", n)
	}
	advance(2 * time.Hour) // the next commit rotates by age
	write(s, "age", 1)
	if got := len(mustSegments(t, path)); got != n+1 {
		t.Fatalf("%d sealed segments after the age passed, want %d", got, n+1)
	}
	s.Close()
	for _, seg := range mustSegments(t, path) {
		if info, _ := os.Stat(seg.path); info.Size()%chunk == 0 {
			t.Fatalf("sealed segment %s kept its zeros", seg.path)
		}
	}
	verify(n + 2)

	// Crash after the rename, before the new segment: no active file.
	sealActive(t, path)
	s, err = OpenFile(path, opts)
	if err != nil {
		t.Fatal(err)
	}
	write(s, "after-rename", 2)
	s.Close()
	verify(n + 3)

	// Crash after creating the new segment, before its genesis: empty.
	head := verify(0).Last
	sealActive(t, path)
	os.WriteFile(path, nil, 0o600)
	s, err = OpenFile(path, opts)
	if err != nil {
		t.Fatal(err)
	}
	rc := s.Submit(&Record{ExchangeID: "after-empty"}, CommitNow)
	if err := rc.Wait(context.Background()); err != nil {
		t.Fatal(err)
	}
	s.Close()
	if rc.Position().Seq != head.Seq+2 {
		t.Fatalf("first record after an empty active segment at %d, want %d", rc.Position().Seq, head.Seq+2)
	}
	verify(0)
}

func mustSegments(t *testing.T, path string) []segmentFile {
	t.Helper()
	segs, err := listSegments(path)
	if err != nil {
		t.Fatal(err)
	}
	return segs
}

// sealActive renames the active segment as a rotation does, leaving no
// active segment: the state a crash right after the rename leaves.
func sealActive(t *testing.T, path string) {
	t.Helper()
	f, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	first := genesisSeq(f)
	f.Close()
	if err := os.Rename(path, sealedName(path, first)); err != nil {
		t.Fatal(err)
	}
}

// A new checkpoint key seals the segment and starts one whose genesis names
// it; the chain continues and verifies, each segment under its own key.
func TestChangedKeyStartsASegment(t *testing.T) {
	path := filepath.Join(t.TempDir(), "audit.jsonl")
	s, err := OpenFile(path, testOptions())
	if err != nil {
		t.Fatal(err)
	}
	if err := Write(context.Background(), s, &Record{ExchangeID: "old-key"}); err != nil {
		t.Fatal(err)
	}
	s.Close()
	opts := testOptions()
	opts.Key = ed25519.NewKeyFromSeed(bytes.Repeat([]byte{42}, ed25519.SeedSize))
	if s, err = OpenFile(path, opts); err != nil {
		t.Fatal(err)
	}
	if err := Write(context.Background(), s, &Record{ExchangeID: "new-key"}); err != nil {
		t.Fatal(err)
	}
	s.Close()
	files, _ := LogFiles(path)
	rep, err := Verify(files, nil)
	if err != nil || len(files) != 2 || rep.Records != 2 || !bytes.Equal(rep.Key, opts.Key.Public().(ed25519.PublicKey)) {
		t.Fatalf("%d files, %+v, %v", len(files), rep, err)
	}
}
