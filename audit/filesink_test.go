package audit

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"runtime"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"
)

func TestFileSinkAppendsWholeLines(t *testing.T) {
	path := filepath.Join(t.TempDir(), "audit.jsonl")
	s, err := OpenFile(path)
	if err != nil {
		t.Fatal(err)
	}
	var wg sync.WaitGroup
	for i := range 50 {
		wg.Go(func() {
			r := &Record{Time: time.Now(), ExchangeID: "x" + string(rune('a'+i%26)), Side: "provider", Fields: []string{"fullName"}, Status: 200}
			if err := Write(context.Background(), s, r); err != nil {
				t.Error(err)
			}
		})
	}
	wg.Wait()
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	// Reopening appends rather than truncating.
	s, err = OpenFile(path)
	if err != nil {
		t.Fatal(err)
	}
	if err := Write(context.Background(), s, &Record{ExchangeID: "last"}); err != nil {
		t.Fatal(err)
	}
	s.Close()

	recs, err := ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	if len(recs) != 51 || recs[50].ExchangeID != "last" {
		t.Fatalf("%d records, want 51 ending with the one written after reopening", len(recs))
	}
	if info, _ := os.Stat(path); info.Mode().Perm() != 0o600 {
		t.Errorf("audit file mode %v, want 0600", info.Mode().Perm())
	}
	if err := Write(context.Background(), s, &Record{}); err == nil {
		t.Error("write after close succeeded")
	}
}

// A failed write settles the records of its round with the error and
// refuses every later one: after a failed sync nothing may be reported
// durable again. /dev/full fails every write (ENOSPC) and allocation, as a full disk does.
func TestFileSinkFailureIsFinal(t *testing.T) {
	s, err := OpenFile("/dev/full")
	if err != nil {
		if runtime.GOOS == "linux" {
			t.Fatalf("/dev/full: %v", err)
		}
		t.Skipf("no /dev/full here: %v", err)
	}
	defer s.Close()
	ctx := context.Background()
	first := s.Submit(&Record{ExchangeID: "a", Phase: Intent}, CommitNow)
	if err := first.Wait(ctx); err == nil {
		t.Fatal("a write to a full disk was reported durable")
	}
	// Waiting again gives the same answer.
	if err := first.Wait(ctx); err == nil {
		t.Fatal("second Wait reported the lost record durable")
	}
	if err := Write(ctx, s, &Record{ExchangeID: "b"}); err == nil || err.Error() != first.Wait(ctx).Error() {
		t.Fatalf("record after a failed write: %v, want the write's error %v", err, first.Wait(ctx))
	}
}

// Submit does not wait for the disk; the receipt settles once the record is
// synced, and the caller may reuse its Record at once.
func TestFileSinkSubmitCopiesAndSettles(t *testing.T) {
	path := filepath.Join(t.TempDir(), "audit.jsonl")
	s, err := OpenFile(path)
	if err != nil {
		t.Fatal(err)
	}
	r := &Record{ExchangeID: "x1", Phase: Intent}
	rc := s.Submit(r, CommitNow)
	r.ExchangeID, r.Phase = "x1-changed", Outcome
	if err := rc.Wait(context.Background()); err != nil {
		t.Fatal(err)
	}
	s.Close()
	recs, err := ReadFile(path)
	if err != nil || len(recs) != 1 {
		t.Fatalf("%d records, %v", len(recs), err)
	}
	if got := recs[0]; got.ExchangeID != "x1" || got.Phase != Intent {
		t.Fatalf("the sink wrote %+v, not the record as submitted", got)
	}
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	if err := NewReceipt().Wait(ctx); err != context.Canceled {
		t.Fatalf("Wait on an unsettled receipt with a cancelled context: %v", err)
	}
}

// A CommitSoon record alone is synced within the commit delay; one that
// arrives with a CommitNow record rides its sync; Close syncs what is left.
func TestFileSinkCommitSoon(t *testing.T) {
	path := filepath.Join(t.TempDir(), "audit.jsonl")
	s, err := OpenFile(path)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	alone := s.Submit(&Record{ExchangeID: "soon", Phase: Outcome}, CommitSoon)
	if err := alone.Wait(ctx); err != nil {
		t.Fatalf("a CommitSoon record was never synced: %v", err)
	}
	soon := s.Submit(&Record{ExchangeID: "soon2", Phase: Outcome}, CommitSoon)
	if err := Write(ctx, s, &Record{ExchangeID: "now", Phase: Intent}); err != nil {
		t.Fatal(err)
	}
	if soon.Failed() != nil {
		t.Fatal(soon.Failed())
	}
	select {
	case <-soon.done:
	default:
		t.Error("a CommitSoon record queued before a CommitNow one did not ride its sync")
	}
	last := s.Submit(&Record{ExchangeID: "last", Phase: Outcome}, CommitSoon)
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	select {
	case <-last.done:
	default:
		t.Fatal("Close left a queued record unsynced")
	}
	if recs, err := ReadFile(path); err != nil || len(recs) != 4 {
		t.Fatalf("%d records (%v), want 4", len(recs), err)
	}
}

// Records larger than a chunk, and enough records to cross several chunks,
// are written whole.
func TestFileSinkGrowsAcrossChunks(t *testing.T) {
	path := filepath.Join(t.TempDir(), "audit.jsonl")
	s, err := OpenFile(path)
	if err != nil {
		t.Fatal(err)
	}
	big := strings.Repeat("f", chunk+100)
	ctx := context.Background()
	if err := Write(ctx, s, &Record{ExchangeID: "big", Fields: []string{big}}); err != nil {
		t.Fatal(err)
	}
	for i := range 3 {
		if err := Write(ctx, s, &Record{ExchangeID: "after" + strconv.Itoa(i)}); err != nil {
			t.Fatal(err)
		}
	}
	s.Close()
	recs, err := ReadFile(path)
	if err != nil || len(recs) != 4 || recs[0].Fields[0] != big || recs[3].ExchangeID != "after2" {
		t.Fatalf("%d records, %v", len(recs), err)
	}
	if info, _ := os.Stat(path); info.Size()%chunk != 0 || info.Size() < 2*chunk {
		t.Fatalf("file size %d, want whole chunks", info.Size())
	}
}

// afterCrash writes record "a" through a sink, then tail right after it as a
// crash could leave it, reopens the file, writes record "z", and returns the
// ids read back. It fails if the file did not grow by whole chunks or if any
// byte of the tail survives after the records.
func afterCrash(t *testing.T, tail []byte) []string {
	t.Helper()
	path := filepath.Join(t.TempDir(), "audit.jsonl")
	s, err := OpenFile(path)
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	if err := Write(ctx, s, &Record{ExchangeID: "a", Phase: Outcome}); err != nil {
		t.Fatal(err)
	}
	end := s.end
	s.Close()
	if info, _ := os.Stat(path); info.Size() != chunk {
		t.Fatalf("file size %d, want one chunk of %d", info.Size(), chunk)
	}
	f, err := os.OpenFile(path, os.O_RDWR, 0)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := f.WriteAt(tail, end); err != nil {
		t.Fatal(err)
	}
	f.Close()

	if s, err = OpenFile(path); err != nil {
		t.Fatal(err)
	}
	if err := Write(ctx, s, &Record{ExchangeID: "z", Phase: Outcome}); err != nil {
		t.Fatal(err)
	}
	end = s.end
	s.Close()
	bs, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	if rest := bytes.Trim(bs[end:], "\x00"); len(rest) > 0 {
		t.Fatalf("bytes the crash left survive after the records: %q", rest)
	}
	recs, err := ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	var ids []string
	for _, r := range recs {
		ids = append(ids, r.ExchangeID)
	}
	return ids
}

// What a crash leaves after the last whole record was written by a commit
// whose sync never completed, so no answer depended on it: a record cut
// short, or pages of it on disk in any order with the rest reading as
// zeros. Reopening ends the log at the last whole record and zeroes the
// rest, so records written afterwards are read after it, not lost behind a
// gap.
func TestFileSinkRecoversFromACrash(t *testing.T) {
	for _, tc := range []struct {
		name string
		tail string // NUL is a lost page
	}{
		{"torn record", `{"exchangeId":"torn","side":"prov`},
		{"record after a gap", strings.Repeat("\x00", 4096) + `{"exchangeId":"C"}` + "\n"},
		{"torn record, gap, end of the next", `{"exchangeId":"B","si` + strings.Repeat("\x00", 4096) + `de":"x"}` + "\n" + `{"exchangeId":"D"}` + "\n"},
		{"last line without its newline", `{"exchangeId":"E"}`},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if got := afterCrash(t, []byte(tc.tail)); strings.Join(got, ",") != "a,z" {
				t.Fatalf("records after recovery: %v, want a,z", got)
			}
		})
	}
}

// A crash can cut a group commit's write anywhere: whatever the cut,
// reopening keeps exactly the records written whole before it.
func TestFileSinkRecoversFromACutAnywhere(t *testing.T) {
	var batch []byte
	for _, id := range []string{"b1", "b2", "b3"} {
		line, _ := json.Marshal(&Record{ExchangeID: id, Phase: Outcome, Fields: []string{"fullName", "dateOfBirth"}})
		batch = append(append(batch, line...), '\n')
	}
	for cut := 0; cut <= len(batch); cut += 9 {
		want := []string{"a"}
		for i, id := range []string{"b1", "b2", "b3"} {
			if bytes.Count(batch[:cut], []byte("\n")) > i {
				want = append(want, id)
			}
		}
		want = append(want, "z")
		if got := afterCrash(t, batch[:cut]); !slices.Equal(got, want) {
			t.Fatalf("cut at %d: records %v, want %v", cut, got, want)
		}
	}
}

// Two sinks never write one file (they would overwrite each other's
// records), and a file truncated under the sink stops it rather than leave
// a gap its records end at.
func TestFileSinkIsTheOnlyWriter(t *testing.T) {
	path := filepath.Join(t.TempDir(), "audit.jsonl")
	s, err := OpenFile(path)
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	if second, err := OpenFile(path); err == nil {
		second.Close()
		if runtime.GOOS == "linux" {
			t.Fatal("a second sink opened a file the first one writes")
		}
	}
	ctx := context.Background()
	if err := Write(ctx, s, &Record{ExchangeID: "a"}); err != nil {
		t.Fatal(err)
	}
	if err := os.Truncate(path, 0); err != nil {
		t.Fatal(err)
	}
	if err := Write(ctx, s, &Record{ExchangeID: "b"}); err == nil || !strings.Contains(err.Error(), "truncated") {
		t.Fatalf("write after the file was truncated: %v", err)
	}
}

// Many writers mixing both kinds of records: every receipt settles, every
// record is read back whole and once, in an order that keeps each writer's
// durable records in sequence.
func TestFileSinkManyWriters(t *testing.T) {
	path := filepath.Join(t.TempDir(), "audit.jsonl")
	s, err := OpenFile(path)
	if err != nil {
		t.Fatal(err)
	}
	const writers, each = 16, 100
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	var wg sync.WaitGroup
	for w := range writers {
		wg.Go(func() {
			var soon []*Receipt
			for i := range each {
				r := &Record{ExchangeID: fmt.Sprintf("w%02d-%03d", w, i), Phase: Intent}
				if i%3 == 0 {
					soon = append(soon, s.Submit(r, CommitSoon))
					continue
				}
				if err := Write(ctx, s, r); err != nil {
					t.Error(err)
					return
				}
				if i%17 == 0 {
					time.Sleep(time.Duration(w%3) * time.Millisecond)
				}
			}
			for _, rc := range soon {
				if err := rc.Wait(ctx); err != nil {
					t.Error(err)
				}
			}
		})
	}
	wg.Wait()
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	recs, err := ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	seen := map[string]bool{}
	last := map[string]string{}
	for _, r := range recs {
		if seen[r.ExchangeID] {
			t.Fatalf("record %s read twice", r.ExchangeID)
		}
		seen[r.ExchangeID] = true
		w := r.ExchangeID[:3]
		if n, _ := strconv.Atoi(r.ExchangeID[4:]); n%3 != 0 {
			if r.ExchangeID < last[w] {
				t.Fatalf("record %s after %s", r.ExchangeID, last[w])
			}
			last[w] = r.ExchangeID
		}
	}
	if len(seen) != writers*each {
		t.Fatalf("%d records read back, want %d", len(seen), writers*each)
	}
}
