package audit

import (
	"bytes"
	"context"
	"crypto/ed25519"
	"encoding/json"
	"errors"
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

// testOptions are a sink's options with a fixed test key.
func testOptions() Options {
	return Options{Gateway: "VN:GOV:000.00.00.G01:GW", Key: ed25519.NewKeyFromSeed(bytes.Repeat([]byte{7}, ed25519.SeedSize))}
}

func TestFileSinkAppendsWholeLines(t *testing.T) {
	path := filepath.Join(t.TempDir(), "audit.jsonl")
	s, err := OpenFile(path, testOptions())
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
	s, err = OpenFile(path, testOptions())
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
// durable again. The sink's file is swapped for a read-only descriptor of
// it, so every write fails as on a broken disk.
func TestFileSinkFailureIsFinal(t *testing.T) {
	path := filepath.Join(t.TempDir(), "audit.jsonl")
	s, err := OpenFile(path, testOptions())
	if err != nil {
		t.Fatal(err)
	}
	ro, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	s.mu.Lock()
	for s.flushing {
		s.idle.Wait()
	}
	rw := s.file
	s.file = ro
	s.mu.Unlock()
	defer rw.Close()
	defer s.Close()
	ctx := context.Background()
	first := s.Submit(&Record{ExchangeID: "a", Phase: Intent}, CommitNow)
	if err := first.Wait(ctx); err == nil {
		t.Fatal("a failed write was reported durable")
	}
	// Waiting again gives the same answer.
	if err := first.Wait(ctx); err == nil {
		t.Fatal("second Wait reported the lost record durable")
	}
	if err := Write(ctx, s, &Record{ExchangeID: "b"}); err == nil || err.Error() != first.Wait(ctx).Error() {
		t.Fatalf("record after a failed write: %v, want the write's error %v", err, first.Wait(ctx))
	}
}

// OpenFile on a full disk fails rather than start a log it cannot write.
func TestFileSinkFullDisk(t *testing.T) {
	if runtime.GOOS != "linux" {
		t.Skip("/dev/full is Linux's")
	}
	if _, err := OpenFile("/dev/full", testOptions()); err == nil {
		t.Fatal("opened a log on /dev/full")
	}
}

// Submit does not wait for the disk; the receipt settles once the record is
// synced, and the caller may reuse its Record at once.
func TestFileSinkSubmitCopiesAndSettles(t *testing.T) {
	path := filepath.Join(t.TempDir(), "audit.jsonl")
	s, err := OpenFile(path, testOptions())
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
	s, err := OpenFile(path, testOptions())
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
	s, err := OpenFile(path, testOptions())
	if err != nil {
		t.Fatal(err)
	}
	big := strings.Repeat("f", maxRecord-1000)
	ctx := context.Background()
	for range 5 {
		if err := Write(ctx, s, &Record{ExchangeID: "big", Fields: []string{big}}); err != nil {
			t.Fatal(err)
		}
	}
	if err := Write(ctx, s, &Record{ExchangeID: "huge", Fields: []string{big, big}}); err == nil {
		t.Fatal("a record past the size bound was written")
	}
	for i := range 3 {
		if err := Write(ctx, s, &Record{ExchangeID: "after" + strconv.Itoa(i)}); err != nil {
			t.Fatal(err)
		}
	}
	s.Close()
	recs, err := ReadFile(path)
	if err != nil || len(recs) != 8 || recs[4].Fields[0] != big || recs[7].ExchangeID != "after2" {
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
	s, err := OpenFile(path, testOptions())
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	if err := Write(ctx, s, &Record{ExchangeID: "a", Phase: Outcome}); err != nil {
		t.Fatal(err)
	}
	s.Close()
	end := s.end
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

	if s, err = OpenFile(path, testOptions()); err != nil {
		t.Fatal(err)
	}
	if err := Write(ctx, s, &Record{ExchangeID: "z", Phase: Outcome}); err != nil {
		t.Fatal(err)
	}
	s.Close()
	end = s.end
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
// reopening keeps exactly the records of the commits that finished, and the
// chain verifies with the records written after it.
func TestFileSinkRecoversFromACutAnywhere(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "audit.jsonl")
	s, err := OpenFile(path, testOptions())
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	if err := Write(ctx, s, &Record{ExchangeID: "a", Phase: Outcome}); err != nil {
		t.Fatal(err)
	}
	s.Close()
	before, _ := os.ReadFile(path)
	s, err = OpenFile(path, testOptions())
	if err != nil {
		t.Fatal(err)
	}
	end := s.end
	var rcs []*Receipt
	s.mu.Lock() // queue three records so that one commit writes them
	for _, id := range []string{"b1", "b2", "b3"} {
		rec, _ := json.Marshal(&Record{ExchangeID: id, Phase: Outcome, Fields: []string{"fullName", "dateOfBirth"}})
		rc := NewReceipt()
		s.queue = append(s.queue, pending{rec: rec, receipt: rc})
		rcs = append(rcs, rc)
	}
	s.urgent = true
	s.startFlushLocked()
	s.mu.Unlock()
	for _, rc := range rcs {
		if err := rc.Wait(ctx); err != nil {
			t.Fatal(err)
		}
	}
	s.Close()
	whole := bytes.TrimRight(mustRead(t, path)[end:], "\x00")
	// whole is the commit of b1..b3 and the checkpoint Close wrote after it;
	// the first commit line ends the records' commit.
	commit := whole[:bytes.Index(whole, []byte(commitPrefix))]
	commit = whole[:len(commit)+bytes.IndexByte(whole[len(commit):], '\n')+1]
	for cut := 0; cut <= len(commit); cut += 29 {
		if cut > len(commit)-29 {
			cut = len(commit)
		}
		want := []string{"a"}
		if cut == len(commit) {
			want = append(want, "b1", "b2", "b3")
		}
		want = append(want, "z")
		p := filepath.Join(dir, fmt.Sprintf("cut%d.jsonl", cut))
		if err := os.WriteFile(p, before, 0o600); err != nil {
			t.Fatal(err)
		}
		f, _ := os.OpenFile(p, os.O_RDWR, 0)
		f.WriteAt(commit[:cut], end)
		f.Close()
		s, err := OpenFile(p, testOptions())
		if err != nil {
			t.Fatalf("cut at %d: %v", cut, err)
		}
		if err := Write(ctx, s, &Record{ExchangeID: "z"}); err != nil {
			t.Fatal(err)
		}
		s.Close()
		recs, err := ReadFile(p)
		if err != nil {
			t.Fatal(err)
		}
		var got []string
		for _, r := range recs {
			got = append(got, r.ExchangeID)
		}
		if !slices.Equal(got, want) {
			t.Fatalf("cut at %d: records %v, want %v", cut, got, want)
		}
		if _, err := Verify([]string{p}, nil); err != nil {
			t.Fatalf("cut at %d: %v", cut, err)
		}
	}
}

func mustRead(t *testing.T, path string) []byte {
	t.Helper()
	bs, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	return bs
}

// Two sinks never write one file (they would overwrite each other's
// records), and a file truncated under the sink stops it rather than leave
// a gap its records end at.
func TestFileSinkIsTheOnlyWriter(t *testing.T) {
	path := filepath.Join(t.TempDir(), "audit.jsonl")
	s, err := OpenFile(path, testOptions())
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	if second, err := OpenFile(path, testOptions()); err == nil {
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
	s, err := OpenFile(path, testOptions())
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

// A sync that fails while the next commit is being built behind it loses
// both: no record of either is reported durable, neither is left readable
// in the file, and the sink refuses everything after. (The failing sync is
// injected: no disk here fails on demand.)
func TestFileSinkFailedSyncLosesTheCommitBuiltBehindIt(t *testing.T) {
	path := filepath.Join(t.TempDir(), "audit.jsonl")
	s, err := OpenFile(path, testOptions())
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	entered, release := make(chan struct{}), make(chan struct{})
	s.mu.Lock()
	for s.flushing {
		s.idle.Wait()
	}
	s.syncCommit = func(*os.File) error {
		close(entered)
		<-release
		return errors.New("injected EIO")
	}
	s.mu.Unlock()
	first := s.Submit(&Record{ExchangeID: "lost-first", Phase: Intent}, CommitNow)
	<-entered
	var behind []*Receipt
	for i := range 50 {
		behind = append(behind, s.Submit(&Record{ExchangeID: fmt.Sprintf("lost-behind-%02d", i), Phase: Intent}, CommitNow))
	}
	close(release)
	ctx := context.Background()
	for i, rc := range append([]*Receipt{first}, behind...) {
		if err := rc.Wait(ctx); err == nil || !strings.Contains(err.Error(), "injected EIO") {
			t.Fatalf("record %d: %v, want the sync's error", i, err)
		}
	}
	if err := Write(ctx, s, &Record{ExchangeID: "after"}); err == nil {
		t.Fatal("a record after a failed sync was reported durable")
	}
	raw, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	if bytes.Contains(raw, []byte("lost-")) {
		t.Fatal("a record reported lost is readable in the file")
	}
}

// Records encoded into pooled buffers and queued in recycled arrays, from
// many writers, some large enough that a commit takes only part of the
// queue: each record is read back once with its own content, at the
// position its receipt reports (seq and the hash of its stored bytes).
func TestFileSinkPooledRecordsKeepTheirOwnBytes(t *testing.T) {
	path := filepath.Join(t.TempDir(), "audit.jsonl")
	s, err := OpenFile(path, testOptions())
	if err != nil {
		t.Fatal(err)
	}
	const writers, each = 8, 60
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	// body makes a record's one field from its id, so a record that got
	// another's bytes (a buffer reused too early) does not match its id.
	body := func(id string, n int) string { return strings.Repeat(id+".", n/(len(id)+1)+1) }
	var mu sync.Mutex
	receipts := map[string]*Receipt{}
	var wg sync.WaitGroup
	for w := range writers {
		wg.Go(func() {
			for i := range each {
				id := fmt.Sprintf("w%d-%02d", w, i)
				size := 50 + 40*i
				if i%10 == 9 {
					size = 300 << 10 // three of them outgrow one commit
				}
				r := &Record{ExchangeID: id, Phase: Intent, Fields: []string{body(id, size)}}
				commit := CommitNow
				if i%4 == 1 {
					commit = CommitSoon
				}
				rc := s.Submit(r, commit)
				r.ExchangeID, r.Fields[0] = "changed", "changed" // the sink copied them
				mu.Lock()
				receipts[id] = rc
				mu.Unlock()
				if commit == CommitNow {
					if err := rc.Wait(ctx); err != nil {
						t.Error(err)
						return
					}
				}
			}
		})
	}
	wg.Wait()
	for id, rc := range receipts {
		if err := rc.Wait(ctx); err != nil {
			t.Fatalf("record %s: %v", id, err)
		}
	}
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	files, err := LogFiles(path)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := Verify(files, nil); err != nil {
		t.Fatal(err)
	}
	read := 0
	err = EachEntry(files, func(e *Entry, line []byte) error {
		if e.Record == nil {
			return nil
		}
		read++
		id := e.Record.ExchangeID
		rc := receipts[id]
		switch {
		case rc == nil:
			return fmt.Errorf("entry %d holds record %q, which no writer submitted", e.Seq, id)
		case len(e.Record.Fields) != 1 || !strings.HasPrefix(e.Record.Fields[0], id+".") || e.Record.Fields[0] != body(id, len(e.Record.Fields[0])-1):
			return fmt.Errorf("entry %d: record %s holds another record's bytes", e.Seq, id)
		case rc.Position() != Position{Seq: e.Seq, Hash: EntryHash(line)}:
			return fmt.Errorf("record %s: receipt at %+v, the log has it at seq %d hash %s", id, rc.Position(), e.Seq, EntryHash(line))
		}
		delete(receipts, id)
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	if read != writers*each || len(receipts) != 0 {
		t.Fatalf("%d records read back, want %d (%d missing)", read, writers*each, len(receipts))
	}
}
