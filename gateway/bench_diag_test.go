package gateway_test

import (
	"fmt"
	"os"
	"runtime/metrics"
	"slices"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	dto "github.com/prometheus/client_model/go"

	gwmetrics "github.com/lienthong/lienthong/gateway/metrics"
)

// diagnose64 is the gateway bench's diagnostic mode, for finding what limits
// the 64-caller figure (LIENTHONG_BENCH_GATEWAY_DIAG=<target>, one of
// direct, proxy, gateway, gateway_nodisk): it runs only that target's
// 64-caller closed loop, long enough to profile (-cpuprofile,
// -mutexprofile, -blockprofile cover little else), and prints DIAG lines,
// not BENCH figures: the rate, and for a durable gateway target each
// gateway's group commits (records per commit, time per commit).
// LIENTHONG_BENCH_GATEWAY_DIAG_N sets the number of requests (20,000).
// With the suffix _500 (gateway_500) it runs the target at 500 req/s
// instead, with _8 from 8 callers, and shows where the time goes.
func diagnose64(t *testing.T, name string, all []target) {
	n := 20000
	if s := os.Getenv("LIENTHONG_BENCH_GATEWAY_DIAG_N"); s != "" {
		var err error
		if n, err = strconv.Atoi(s); err != nil || n < 100 {
			t.Fatalf("LIENTHONG_BENCH_GATEWAY_DIAG_N=%q: want a number >= 100", s)
		}
	}
	base, at500 := strings.CutSuffix(name, "_500")
	base, at8 := strings.CutSuffix(base, "_8")
	for _, tg := range all {
		if tg.name != base {
			continue
		}
		if at500 || at8 {
			diagnoseTail(t, tg, n, at8)
			return
		}
		tg.closedLoopN(t, 640, 64) // open the 64 callers' connections
		before, idle0 := commitStats(t, tg), machineIdle()
		pIdle0, gc0 := schedulerCPU()
		user0, sys0 := processCPU()
		r := tg.closedLoopN(t, n, 64)
		user, sys := processCPU()
		user, sys = user-user0, sys-sys0
		cpu, idle := user+sys, machineIdle()-idle0
		wall := float64(n) / r.rps
		pIdle, gc := schedulerCPU()
		fmt.Printf("DIAG gateway %s_rps_64callers %.0f req/s p50 %.3f ms p99 %.3f ms\n", name, r.rps, r.p50, r.p99)
		fmt.Printf("DIAG gateway %s cpu_us_per_request %.0f (user %.0f, system %.0f) process_cores %.2f machine_idle_cores %.2f idle_p_cores %.2f gc_cores %.2f\n",
			name, 1e6*cpu/float64(n), 1e6*user/float64(n), 1e6*sys/float64(n), cpu/wall, idle/wall, (pIdle-pIdle0)/wall, (gc-gc0)/wall)
		for i, after := range commitStats(t, tg) {
			d := after.minus(before[i])
			if d.commits == 0 {
				continue
			}
			fmt.Printf("DIAG gateway %s %s commits %d records %.0f records_per_commit %.1f commit_ms %.3f commits_per_s %.0f\n",
				name, []string{"consumer", "provider"}[i], d.commits, d.records, d.records/float64(d.commits),
				1000*d.seconds/float64(d.commits), float64(d.commits)/(float64(n)/r.rps))
		}
		return
	}
	t.Fatalf("LIENTHONG_BENCH_GATEWAY_DIAG=%q: no such target", name)
}

// schedulerCPU is the runtime's own account, in CPU-seconds: Ps idle (no
// goroutine to run) and the collector's work. Fewer process cores than Ps
// with no P idle means Ps held by threads blocked in system calls: how the
// log's fdatasync once idled a core (audit/datasync_linux.go).
func schedulerCPU() (idle, gc float64) {
	s := []metrics.Sample{{Name: "/cpu/classes/idle:cpu-seconds"}, {Name: "/cpu/classes/gc/total:cpu-seconds"}}
	metrics.Read(s)
	return s[0].Value.Float64(), s[1].Value.Float64()
}

// diagnoseTail runs n requests of tg at 500 req/s (or, with closed, from 8
// callers as fast as they are answered) and prints its p50, p99 and p99.9,
// then, per gateway, how many group commits and how many exchanges' stages
// fell past each latency bound (the metrics' histogram buckets), to show
// where the time goes.
func diagnoseTail(t *testing.T, tg target, n int, closed bool) {
	tg.closedLoop(t, 200)
	before := histograms(t, tg)
	name := tg.name + "_500"
	if closed {
		name = tg.name + "_8"
		r := tg.closedLoopN(t, n, 8)
		fmt.Printf("DIAG gateway %s rps %.0f p50 %.3f ms p99 %.3f ms\n", name, r.rps, r.p50, r.p99)
	} else {
		lat := make([]time.Duration, 0, n)
		var mu sync.Mutex
		fixedRateFunc(500, n, func() time.Duration {
			d := tg.once(t)
			mu.Lock()
			lat = append(lat, d)
			mu.Unlock()
			return d
		})
		slices.Sort(lat)
		q := func(f float64) float64 { return float64(lat[int(f*float64(len(lat)-1))]) / float64(time.Millisecond) }
		fmt.Printf("DIAG gateway %s p50 %.3f ms p99 %.3f ms p99.9 %.3f ms max %.3f ms\n", name, q(0.5), q(0.99), q(0.999), q(1))
	}
	for i, after := range histograms(t, tg) {
		for key, h := range after {
			var line strings.Builder
			prev := before[i][key]
			for j, b := range h.GetBucket() {
				c := b.GetCumulativeCount()
				if prev != nil {
					c -= prev.GetBucket()[j].GetCumulativeCount()
				}
				fmt.Fprintf(&line, " le%gms:%d", 1000*b.GetUpperBound(), c)
			}
			total := h.GetSampleCount()
			if prev != nil {
				total -= prev.GetSampleCount()
			}
			fmt.Printf("DIAG gateway %s %s %s count %d%s\n", name, []string{"consumer", "provider"}[i], key, total, line.String())
		}
	}
}

// histograms reads each of the target's gateways' commit-duration and
// audit-wait histograms, by name (and side for the stage).
func histograms(t *testing.T, tg target) []map[string]*dto.Histogram {
	out := make([]map[string]*dto.Histogram, len(tg.gateways))
	for i, g := range tg.gateways {
		out[i] = map[string]*dto.Histogram{}
		mfs, err := g.Metrics().Registry().Gather()
		if err != nil {
			t.Fatal(err)
		}
		for _, mf := range mfs {
			for _, m := range mf.GetMetric() {
				switch mf.GetName() {
				case gwmetrics.AuditCommitDuration:
					out[i]["commit"] = m.GetHistogram()
				case gwmetrics.StageDuration:
					var side, stage string
					for _, l := range m.GetLabel() {
						switch l.GetName() {
						case "side":
							side = l.GetValue()
						case "stage":
							stage = l.GetValue()
						}
					}
					if stage == "audit_wait" || stage == "backend" {
						out[i][side+"_"+stage] = m.GetHistogram()
					}
				}
			}
		}
	}
	return out
}

// processCPU is the seconds of user and of system CPU this process used.
func processCPU() (user, sys float64) {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		return 0, 0
	}
	return time.Duration(ru.Utime.Nano()).Seconds(), time.Duration(ru.Stime.Nano()).Seconds()
}

// machineIdle is the seconds all CPUs of the machine spent idle since boot
// (Linux /proc/stat; 0 elsewhere), to tell a saturated machine from a
// waiting gateway.
func machineIdle() float64 {
	b, err := os.ReadFile("/proc/stat")
	if err != nil {
		return 0
	}
	line, _, _ := strings.Cut(string(b), "\n")
	f := strings.Fields(line)
	if len(f) < 5 || f[0] != "cpu" {
		return 0
	}
	idle, _ := strconv.ParseFloat(f[4], 64)
	return idle / 100 // USER_HZ is 100 on Linux
}

// commits are a gateway's group-commit totals as its metrics count them.
type commits struct {
	commits          uint64
	records, seconds float64
}

func (c commits) minus(o commits) commits {
	return commits{c.commits - o.commits, c.records - o.records, c.seconds - o.seconds}
}

// commitStats reads each of the target's gateways' group-commit totals.
func commitStats(t *testing.T, tg target) []commits {
	out := make([]commits, len(tg.gateways))
	for i, g := range tg.gateways {
		mfs, err := g.Metrics().Registry().Gather()
		if err != nil {
			t.Fatal(err)
		}
		for _, mf := range mfs {
			for _, m := range mf.GetMetric() {
				h := m.GetHistogram()
				switch mf.GetName() {
				case gwmetrics.AuditCommitBatch:
					out[i].commits, out[i].records = h.GetSampleCount(), h.GetSampleSum()
				case gwmetrics.AuditCommitDuration:
					out[i].seconds = h.GetSampleSum()
				}
			}
		}
	}
	return out
}
