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

// newTestSyncer is the sink's AIO syncer, or a skip saying why there is
// none (the sink then uses fdatasync, which the other tests cover).
func newTestSyncer(t *testing.T) *dataSyncer {
	t.Helper()
	d := newDataSyncer()
	if d == nil {
		t.Skip("this kernel offers no AIO context (CONFIG_AIO off or aio-max-nr reached): the sink syncs with fdatasync")
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
	if d := newDataSyncer(); d == nil {
		t.Skip("this kernel offers no AIO context: the sink syncs with fdatasync")
	} else {
		d.close()
	}
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
