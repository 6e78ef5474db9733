//go:build linux && (amd64 || arm64 || riscv64 || loong64 || ppc64le)

package audit

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"sync"
	"syscall"
	"testing"
	"time"
)

// newTestSyncer is the sink's AIO syncer. Without one (no kernel AIO) the
// test is skipped, but fails under LIENTHONG_REQUIRE_SERVICES=1 (CI),
// where a skip would hide that the sink's own sync path never ran.
func newTestSyncer(t *testing.T) *dataSyncer {
	t.Helper()
	d := newDataSyncer()
	if d == nil {
		const msg = "this kernel offers no AIO context (CONFIG_AIO off or aio-max-nr reached): the sink syncs with fdatasync"
		if os.Getenv("LIENTHONG_REQUIRE_SERVICES") == "1" {
			t.Fatal(msg + "; LIENTHONG_REQUIRE_SERVICES=1 requires AIO")
		}
		t.Skip(msg)
	}
	t.Cleanup(d.close)
	return d
}

// Every sync of many, of two sinks at once, completes through AIO with
// its own result: no completion is taken for another's, none is lost.
func TestDataSyncerSyncsThroughAIO(t *testing.T) {
	dir := t.TempDir()
	var wg sync.WaitGroup
	for k := range 2 {
		d := newTestSyncer(t)
		f, err := os.Create(filepath.Join(dir, "log"+string(rune('a'+k))))
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { f.Close() })
		wg.Go(func() {
			line := make([]byte, 512)
			for i := range 300 {
				if _, err := f.WriteAt(line, int64(i*len(line))); err != nil {
					t.Error(err)
					return
				}
				if err := d.sync(f); err != nil {
					t.Errorf("sync %d: %v", i, err)
					return
				}
			}
			if d.plain {
				t.Error("the kernel refused AIO fdsync on a regular file: the sink fell back to fdatasync (Linux before 4.18?)")
			}
			// The last completion reaped was the last request's, and a
			// success: each sync waited for its own.
			if d.seq != 300 || d.event.data != 300 || d.event.res != 0 {
				t.Errorf("after 300 syncs: request %d, last completion %d with result %d", d.seq, d.event.data, d.event.res)
			}
		})
	}
	wg.Wait()
}

// A sync that cannot be done is an error, never a silent success: a
// closed descriptor is refused at submission, and a file with no fsync
// (a pipe) gets fdatasync's own answer.
func TestDataSyncerReportsFailures(t *testing.T) {
	d := newTestSyncer(t)
	f, err := os.Create(filepath.Join(t.TempDir(), "log"))
	if err != nil {
		t.Fatal(err)
	}
	f.Close()
	if err := d.sync(f); err == nil {
		t.Fatal("sync of a closed file succeeded")
	}
	r, w, err := os.Pipe()
	if err != nil {
		t.Fatal(err)
	}
	defer r.Close()
	defer w.Close()
	if err := d.sync(w); !errors.Is(err, syscall.EINVAL) {
		t.Fatalf("sync of a pipe: %v, want EINVAL", err)
	}
}

// A sink on Linux syncs its commits through AIO, and its records are
// read back whole after Close released the context.
func TestFileSinkSyncsThroughAIO(t *testing.T) {
	newTestSyncer(t) // skips, or fails in CI, without kernel AIO
	path := filepath.Join(t.TempDir(), "audit.log")
	s, err := OpenFile(path, testOptions())
	if err != nil {
		t.Fatal(err)
	}
	if s.aio == nil {
		t.Fatal("the sink did not set up its AIO syncer")
	}
	for i := range 20 {
		r := &Record{Time: time.Now(), ExchangeID: fmt.Sprintf("x%d", i), Side: "provider", Status: 200}
		if err := Write(context.Background(), s, r); err != nil {
			t.Fatal(err)
		}
	}
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	recs, err := ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	if len(recs) != 20 || recs[19].ExchangeID != "x19" {
		t.Fatalf("read %d records back, want 20 ending with x19", len(recs))
	}
}
