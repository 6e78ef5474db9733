package audit

import (
	"bytes"
	"context"
	"crypto/sha256"
	"errors"
	"os"
	"path/filepath"
	"testing"
)

// Recovery tells a torn tail (what an unfinished commit can leave) from
// damage to a commit that finished, byte for byte: the last commit of a
// real log is rewritten each way, and recovery cuts (and keeps aside)
// exactly the torn ones and refuses the others without changing the file.
func TestRecoveryTellsTornFromDamaged(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "audit.jsonl")
	s, err := OpenFile(path, testOptions())
	if err != nil {
		t.Fatal(err)
	}
	for _, id := range []string{"a", "b"} {
		if err := Write(context.Background(), s, &Record{ExchangeID: id}); err != nil {
			t.Fatal(err)
		}
	}
	// The last commit: two records and its commit line, written at once.
	var rcs []*Receipt
	s.mu.Lock()
	for _, id := range []string{"c1", "c2"} {
		rc := NewReceipt()
		rec := []byte(`{"exchangeId":"` + id + `","side":"provider"}`)
		s.queue = append(s.queue, pending{rec: rec, receipt: rc})
		rcs = append(rcs, rc)
	}
	s.urgent = true
	s.startFlushLocked()
	s.mu.Unlock()
	for _, rc := range rcs {
		rc.Wait(context.Background())
	}
	end := s.end
	s.file.Close() // a crash: no closing checkpoint
	whole := mustRead(t, path)
	lines := fileLines(t, path)
	last := bytes.Join(lines[len(lines)-3:], nil) // c1, c2, commit
	start := int64(len(bytes.Join(lines[:len(lines)-3], nil)))
	if start+int64(len(last)) != end {
		t.Fatalf("the last commit is not where the sink wrote it")
	}
	flip := func(b []byte, i int) []byte { b = bytes.Clone(b); b[i] ^= 0x01; return b }
	commitAt := bytes.Index(last, []byte(commitPrefix))
	for _, tc := range []struct {
		name string
		tail []byte // replaces the last commit
		torn bool
	}{
		{"cut mid-line", last[:40], true},
		{"cut at a line end, no commit line", last[:commitAt], true},
		{"first page lost", append(make([]byte, 30), last[30:]...), true},
		{"commit line lost", append(bytes.Clone(last[:commitAt]), make([]byte, len(last)-commitAt)...), true},
		{"a byte changed in a finished commit", flip(last, 20), false},
		{"the commit line's hash changed", flip(last, len(last)-3), false},
		{"the commit line's marker changed", flip(last, commitAt), false},
		{"bytes after a finished commit", append(bytes.Clone(last), "junk\n"...), false},
		{"a line removed from a finished commit", append(bytes.Clone(lines[len(lines)-3]), lines[len(lines)-1]...), false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			p := filepath.Join(t.TempDir(), "audit.jsonl")
			file := append(bytes.Clone(whole[:start]), tc.tail...)
			file = append(file, make([]byte, len(whole)-len(file))...)
			if err := os.WriteFile(p, file, 0o600); err != nil {
				t.Fatal(err)
			}
			before := sha256.Sum256(file)
			s, err := OpenFile(p, testOptions())
			if !tc.torn {
				var d *Damage
				if !errors.As(err, &d) {
					t.Fatalf("opened (%v): damage taken for a torn tail", err)
				}
				if sha256.Sum256(mustRead(t, p)) != before {
					t.Fatal("the refused file changed")
				}
				return
			}
			if err != nil {
				t.Fatalf("a torn tail refused: %v", err)
			}
			s.Close()
			recs, err := ReadFile(p)
			if err != nil || len(recs) != 2 || recs[1].ExchangeID != "b" {
				t.Fatalf("after the cut: %v %v", recs, err)
			}
			if tc.tail[0] != 0 || len(bytes.Trim(tc.tail, "\x00")) > 0 {
				kept, _ := filepath.Glob(p + ".torn-*")
				if len(kept) != 1 || !bytes.Equal(mustRead(t, kept[0]), bytes.TrimRight(tc.tail, "\x00")) {
					t.Fatalf("the cut bytes were not kept aside: %v", kept)
				}
			}
			if _, err := Verify([]string{p}, nil); err != nil {
				t.Fatal(err)
			}
		})
	}
}
