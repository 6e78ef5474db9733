package audit

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"runtime"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"
)

// TestBenchAuditExchanges measures the log's own cost on a gateway's path:
// 64 callers, each making exchanges as the exchange core does (an intent
// submitted CommitNow and waited for, then an outcome submitted CommitSoon
// and only checked for refusal), with no other work between them. It
// prints the process's CPU time and the allocations per record, and the
// rate; it asserts no timing.
func TestBenchAuditExchanges(t *testing.T) {
	if os.Getenv("LIENTHONG_BENCH") != "1" {
		t.Skip("benchmark report: run with LIENTHONG_BENCH=1 (make bench)")
	}
	opts := testOptions()
	var commits, committed atomic.Int64
	opts.OnCommit = func(records int, _ time.Duration) { commits.Add(1); committed.Add(int64(records)) }
	s, err := OpenFile(filepath.Join(t.TempDir(), "exchanges.jsonl"), opts)
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	const exchanges, callers = 100_000, 64
	var next atomic.Int64
	var wg sync.WaitGroup
	var m0, m1 runtime.MemStats
	runtime.GC()
	runtime.ReadMemStats(&m0)
	u0, s0 := cpuTimes()
	start := time.Now()
	for range callers {
		wg.Go(func() {
			ctx := context.Background()
			for {
				i := int(next.Add(1))
				if i > exchanges {
					return
				}
				r := benchPool[i%len(benchPool)]
				if err := s.Submit(r, CommitNow).Wait(ctx); err != nil {
					t.Error(err)
					return
				}
				if err := s.Submit(r, CommitSoon).Failed(); err != nil {
					t.Error(err)
					return
				}
			}
		})
	}
	wg.Wait()
	took := time.Since(start)
	u1, s1 := cpuTimes()
	cpu := u1 - u0 + s1 - s0
	runtime.ReadMemStats(&m1)
	const records = 2 * exchanges
	fmt.Printf("BENCH audit exchanges_per_s_64callers %.0f /s\n", exchanges/took.Seconds())
	fmt.Printf("BENCH audit record_cpu_us_64callers %.2f us\n", float64(cpu.Nanoseconds())/1000/records)
	fmt.Printf("BENCH audit record_cpu_user_us_64callers %.2f us\n", float64((u1-u0).Nanoseconds())/1000/records)
	fmt.Printf("BENCH audit record_cpu_system_us_64callers %.2f us\n", float64((s1-s0).Nanoseconds())/1000/records)
	fmt.Printf("BENCH audit records_per_commit_64callers %.1f records\n", float64(committed.Load())/float64(max(commits.Load(), 1)))
	fmt.Printf("BENCH audit record_allocs_64callers %.1f allocs\n", float64(m1.Mallocs-m0.Mallocs)/records)
	fmt.Printf("BENCH audit record_alloc_bytes_64callers %.0f B\n", float64(m1.TotalAlloc-m0.TotalAlloc)/records)
}

// cpuTimes is the process's user and system CPU time so far.
func cpuTimes() (user, system time.Duration) {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		return 0, 0
	}
	return time.Duration(ru.Utime.Nano()), time.Duration(ru.Stime.Nano())
}
