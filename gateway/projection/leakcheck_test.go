package projection

import (
	"bytes"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"reflect"
	"runtime"
	"strconv"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

// recordsPerGrant is how many records the property projects with one
// compiled plan: a plan serves many records in the gateway too, and
// compiling one per record would measure the compiler, not the projector.
const recordsPerGrant = 16

// leakRun checks generated pairs from seed until pairs reaches target or
// stop passes, counting pairs and failures, and keeping a few failures.
type leakRun struct {
	pairs, leaks atomic.Int64
	mu           sync.Mutex
	examples     []string
}

func (lr *leakRun) worker(t testing.TB, seed uint64, target int64, stop time.Time) {
	s, m := leakSchema(t), testMasker(t)
	g := newLeakGen(seed)
	for n := 0; ; n++ {
		if lr.pairs.Load() >= target || (n%64 == 0 && time.Now().After(stop)) {
			return
		}
		spec := g.grant()
		lg := compileGrant(s, m, spec)
		for range recordsPerGrant {
			c := g.next(spec)
			if lg == nil {
				continue
			}
			if msg := checkLeak(lg, &c); msg != "" {
				lr.leaks.Add(1)
				lr.mu.Lock()
				if len(lr.examples) < 5 {
					lr.examples = append(lr.examples, fmt.Sprintf("%s\n grant %q\n claim %q\n body  %s", msg, c.grantSpec, c.claim, c.body))
				}
				lr.mu.Unlock()
			}
		}
		lr.pairs.Add(recordsPerGrant)
	}
}

// run checks target pairs (or as many as fit before stop) on every core.
func (lr *leakRun) run(t testing.TB, seed uint64, target int64, stop time.Time) {
	var wg sync.WaitGroup
	for w := range runtime.GOMAXPROCS(0) {
		wg.Add(1)
		go func() {
			defer wg.Done()
			lr.worker(t, seed+uint64(w)*0x1000193, target, stop)
		}()
	}
	wg.Wait()
}

// TestLeakcheckGenerated runs the leak property over a few thousand
// generated pairs on every test run; make bench runs ten million.
func TestLeakcheckGenerated(t *testing.T) {
	var lr leakRun
	lr.run(t, 1, 20000, time.Now().Add(time.Minute))
	for _, e := range lr.examples {
		t.Error(e)
	}
	if lr.leaks.Load() > 0 {
		t.Fatalf("%d of %d pairs fail the leak property", lr.leaks.Load(), lr.pairs.Load())
	}
}

// TestLeakGeneratorAgreesWithEncodingJSON checks the generator's own
// account of its records: valid JSON that encoding/json decodes to the
// value it says, and a repeated key exactly when it says so. The property
// trusts that account instead of parsing every record.
func TestLeakGeneratorAgreesWithEncodingJSON(t *testing.T) {
	g := newLeakGen(7)
	var dups, undeclared int
	for range 3000 {
		body, truth, dup := g.record()
		if !json.Valid(body) {
			t.Fatalf("invalid JSON: %s", body)
		}
		if got := hasDuplicateKey(body); got != dup {
			t.Fatalf("the generator says duplicate %v, the token walk %v: %s", dup, got, body)
		}
		if bytes.Contains(body, []byte(`"religion"`)) || bytes.Contains(body, []byte(`Ethnicity`)) {
			undeclared++
		}
		if dup {
			dups++
			continue
		}
		dec := json.NewDecoder(bytes.NewReader(body))
		dec.UseNumber()
		var want any
		if err := dec.Decode(&want); err != nil {
			t.Fatal(err)
		}
		if !reflect.DeepEqual(truth, want) {
			t.Fatalf("the generator's value differs from encoding/json's for %s", body)
		}
	}
	if dups == 0 || undeclared == 0 {
		t.Fatalf("the generator made %d records with duplicates and %d with undeclared keys", dups, undeclared)
	}
}

// TestBenchLeakcheck runs the leak property over at least 10,000,000
// generated (grant, record) pairs on every core, bounded at 20 minutes,
// and reports how many failed (the goal is 0). LIENTHONG_LEAKCHECK_PAIRS
// changes the count.
func TestBenchLeakcheck(t *testing.T) {
	if os.Getenv("LIENTHONG_BENCH") != "1" {
		t.Skip("benchmark report: run with LIENTHONG_BENCH=1 (make bench)")
	}
	target := int64(10_000_000)
	if s := os.Getenv("LIENTHONG_LEAKCHECK_PAIRS"); s != "" {
		n, err := strconv.ParseInt(s, 10, 64)
		if err != nil {
			t.Fatal(err)
		}
		target = n
	}
	var lr leakRun
	start := time.Now()
	lr.run(t, uint64(start.UnixNano()), target, start.Add(20*time.Minute))
	elapsed := time.Since(start)
	fmt.Printf("BENCH leakcheck pairs %d count\n", lr.pairs.Load())
	fmt.Printf("BENCH leakcheck leaks %d count\n", lr.leaks.Load())
	fmt.Printf("BENCH leakcheck pairs_per_second %.0f pairs/s\n", float64(lr.pairs.Load())/elapsed.Seconds())
	for _, e := range lr.examples {
		t.Error(e)
	}
	if lr.pairs.Load() < target {
		t.Errorf("only %d of %d pairs were checked in time", lr.pairs.Load(), target)
	}
}

// TestWriteLeakSeeds writes generated pairs into the fuzz corpus of
// FuzzProjectNeverLeaks when LIENTHONG_WRITE_SEEDS=1.
func TestWriteLeakSeeds(t *testing.T) {
	if os.Getenv("LIENTHONG_WRITE_SEEDS") != "1" {
		t.Skip("writes testdata: run with LIENTHONG_WRITE_SEEDS=1")
	}
	g := newLeakGen(2026)
	dir := filepath.Join("testdata", "fuzz", "FuzzProjectNeverLeaks")
	for i := range 24 {
		c := g.next(g.grant())
		data := fmt.Sprintf("go test fuzz v1\nstring(%q)\n[]byte(%q)\n", c.grantSpec, c.body)
		if err := os.WriteFile(filepath.Join(dir, fmt.Sprintf("gen-%02d", i)), []byte(data), 0o644); err != nil {
			t.Fatal(err)
		}
	}
}
