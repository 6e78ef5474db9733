package citizen_test

import (
	"context"
	"database/sql"
	"fmt"
	"io"
	"log/slog"
	"math/rand/v2"
	"net/url"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/lienthong/lienthong/audit/index"
	"github.com/lienthong/lienthong/catalog"
	"github.com/lienthong/lienthong/catalog/sqlstore"
	"github.com/lienthong/lienthong/controlplane/citizen"
)

// TestBenchAuditTracker measures the citizen tracker's lookup over an index
// of 10,000,000 exchange records (LIENTHONG_BENCH_AUDIT_RECORDS to change),
// generated here (benchgen_test.go), never committed, in SQLite: one lookup
// is the whole of Tracker.Lookup but the ID token check, the same call the
// HTTP tracker makes (a page of 100 entries, newest first, one per exchange
// though both gateways' outcomes are indexed, their grants, the admin-trail
// entry the lookup writes). The baseline, measured on the same file in the
// same run, is a point read of one record by its primary key.
//
// The index is built in a temporary directory and deleted afterwards (about
// 4 GB); set LIENTHONG_BENCH_AUDIT_DB to a file path to keep it there and
// reuse it in later runs (it is deterministic).
func TestBenchAuditTracker(t *testing.T) {
	total := benchTotal(t)
	ctx := context.Background()
	path := os.Getenv("LIENTHONG_BENCH_AUDIT_DB")
	if path == "" {
		path = filepath.Join(t.TempDir(), "audit-index.db")
	} else {
		path = fmt.Sprintf("%s-%s-%d", path, benchIndexVersion, total)
	}
	key := benchKey(t)
	_, statErr := os.Stat(path + ".complete")
	generate := statErr != nil
	var w *benchWorld
	start := time.Now()
	if generate {
		for _, f := range []string{path, path + "-wal", path + "-shm"} {
			_ = os.Remove(f)
		}
		st, err := sqlstore.OpenSQLite(ctx, path)
		if err != nil {
			t.Fatal(err)
		}
		benchGrant(t, st)
		st.Close()
		w = loadSQLite(t, path, key, total)
		if err := os.WriteFile(path+".complete", nil, 0o600); err != nil {
			t.Fatal(err)
		}
	} else {
		var err error
		if w, err = generateBench(key, total, discardSink{}); err != nil {
			t.Fatal(err)
		}
	}
	loadTime := time.Since(start)
	st, err := sqlstore.OpenSQLite(ctx, path)
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	runTrackerBench(t, "", st, w, total, generate, loadTime)
}

// TestBenchAuditTrackerPostgres is TestBenchAuditTracker on PostgreSQL
// (LIENTHONG_POSTGRES_DSN), in a database it creates and drops afterwards.
func TestBenchAuditTrackerPostgres(t *testing.T) {
	total := benchTotal(t)
	dsn := os.Getenv("LIENTHONG_POSTGRES_DSN")
	if dsn == "" {
		const msg = "PostgreSQL not available: set LIENTHONG_POSTGRES_DSN (scripts/postgres.sh start prints one)"
		if os.Getenv("LIENTHONG_REQUIRE_SERVICES") == "1" {
			t.Fatal(msg)
		}
		t.Skip(msg)
	}
	ctx := context.Background()
	admin, err := sql.Open("pgx", dsn)
	if err != nil {
		t.Fatal(err)
	}
	defer admin.Close()
	name := fmt.Sprintf("lienthong_bench_audit_%d", time.Now().UnixNano())
	if _, err := admin.ExecContext(ctx, "CREATE DATABASE "+name); err != nil {
		t.Fatal(err)
	}
	defer func() {
		if _, err := admin.ExecContext(context.Background(), "DROP DATABASE "+name+" WITH (FORCE)"); err != nil {
			t.Errorf("drop the bench database %s: %v", name, err)
		}
	}()
	u, err := url.Parse(dsn)
	if err != nil {
		t.Fatalf("LIENTHONG_POSTGRES_DSN must be a URL here: %v", err)
	}
	u.Path = "/" + name
	st, err := sqlstore.OpenPostgres(ctx, u.String())
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	benchGrant(t, st)
	start := time.Now()
	w := loadPostgres(t, st.DB(), benchKey(t), total)
	runTrackerBench(t, "_postgres", st, w, total, true, time.Since(start))
}

func benchTotal(t *testing.T) int {
	t.Helper()
	if os.Getenv("LIENTHONG_BENCH") != "1" {
		t.Skip("set LIENTHONG_BENCH=1 to run the audit tracker benchmark")
	}
	total := 10_000_000
	if s := os.Getenv("LIENTHONG_BENCH_AUDIT_RECORDS"); s != "" {
		n, err := strconv.Atoi(s)
		if err != nil || n < 10_000 {
			t.Fatalf("LIENTHONG_BENCH_AUDIT_RECORDS=%q: want a number >= 10000", s)
		}
		total = n
	}
	return total
}

// benchIndexVersion names the generator: change it when the generator or
// the schema changes, so a kept index from an older run is not reused.
const benchIndexVersion = "v3-0006"

// runTrackerBench looks citizens up as the HTTP tracker does and prints the
// figures. 9 lookups in 10 are of a citizen drawn uniformly (most were read
// a few times), 1 in 10 of one of the 1,000 read most. A citizen with more
// than a page is, 1 time in 3, followed through up to 3 further pages with
// the cursor each page gave, each page timed as one lookup.
func runTrackerBench(t *testing.T, suffix string, st *sqlstore.Store, w *benchWorld, total int, generated bool, loadTime time.Duration) {
	t.Helper()
	ctx := context.Background()
	ix, err := index.New(st.DB(), st.Dialect())
	if err != nil {
		t.Fatal(err)
	}
	log := slog.New(slog.NewTextHandler(io.Discard, nil))
	v, err := citizen.NewVerifier(citizen.Config{Issuer: "https://id.example", ClientID: "bench"})
	if err != nil {
		t.Fatal(err)
	}
	tr := citizen.NewTracker(v, w.key, ix, st, time.Now, log)
	everyone, heavy := benchIDs(w)
	rng := rand.New(rand.NewPCG(7, 7))
	pick := func() string {
		if rng.IntN(10) == 0 {
			return heavy[rng.IntN(len(heavy))]
		}
		return everyone[rng.IntN(len(everyone))]
	}
	// Warm the caches the way a running control plane is warm, then
	// measure lookups and the baseline interleaved, bounded in count and time.
	for i := 0; i < 200; i++ {
		if _, err := tr.Lookup(ctx, pick(), 100, ""); err != nil {
			t.Fatal(err)
		}
	}
	gateways := make([]string, 0, len(w.seqs))
	for g := range w.seqs {
		gateways = append(gateways, g)
	}
	slices.Sort(gateways)
	const count, budget = 3000, 60 * time.Second
	var lookups, later, points []time.Duration
	shown, pages := 0, 0
	deadline := time.Now().Add(budget)
	for len(lookups) < count && time.Now().Before(deadline) {
		id, cursor := pick(), ""
		follow := rng.IntN(3) == 0
		for page := 0; page < 4; page++ {
			t0 := time.Now()
			p, err := tr.Lookup(ctx, id, 100, cursor)
			if err != nil {
				t.Fatal(err)
			}
			d := time.Since(t0)
			lookups = append(lookups, d)
			if page > 0 {
				later = append(later, d)
			}
			shown += len(p.Items)
			seen := map[string]bool{}
			for _, e := range p.Items {
				if seen[e.ExchangeID] {
					t.Fatalf("exchange %s listed twice on one page: the tracker shows both gateways' outcomes", e.ExchangeID)
				}
				seen[e.ExchangeID] = true
			}
			pages++
			if !follow || p.Next == "" {
				break
			}
			cursor = p.Next
		}

		gw := gateways[rng.IntN(len(gateways))]
		seq := 1 + rng.Int64N(w.seqs[gw])
		t0 := time.Now()
		var at int64
		if err := st.DB().QueryRowContext(ctx, `SELECT at FROM audit_records WHERE gateway = $1 AND seq = $2`, gw, seq).Scan(&at); err != nil {
			t.Fatalf("baseline read %s/%d: %v", gw, seq, err)
		}
		points = append(points, time.Since(t0))
	}
	if shown == 0 || len(later) == 0 {
		t.Fatalf("lookups showed %d entries, %d later pages: the generated index is not what the tracker reads", shown, len(later))
	}
	t.Logf("%s: %d records (%d exchanges, %d outcomes indexed for the tracker, %d citizens; generated now: %v, in %s); %d lookups (%d later pages) showing %.1f entries on average",
		st.Dialect(), w.records, w.exchanges, w.disclosures, len(w.citizens), generated, loadTime.Round(time.Second), len(lookups), len(later), float64(shown)/float64(pages))
	m := millions(total) + suffix
	if generated {
		fmt.Printf("BENCH audit index_load_records_per_s%s %.0f records/s\n", suffix, float64(total)/loadTime.Seconds())
	}
	fmt.Printf("BENCH audit pk_lookup_p99_%s_ms %.3f ms\n", m, ms(pct(points, 0.99)))
	fmt.Printf("BENCH audit tracker_p50_%s_ms %.3f ms\n", m, ms(pct(lookups, 0.50)))
	fmt.Printf("BENCH audit tracker_p99_%s_ms %.3f ms\n", m, ms(pct(lookups, 0.99)))
	fmt.Printf("BENCH audit tracker_later_pages_p99_%s_ms %.3f ms\n", m, ms(pct(later, 0.99)))
	fmt.Printf("BENCH audit tracker_p99_over_pk_lookup_p99%s %.1f x\n", suffix, float64(pct(lookups, 0.99))/float64(pct(points, 0.99)))
}

// discardSink counts a kept index's world without writing it.
type discardSink struct{}

func (discardSink) record([]any) error                            { return nil }
func (discardSink) disclosure([]byte, int64, string, int64) error { return nil }

func ms(d time.Duration) float64 { return float64(d) / float64(time.Millisecond) }

func pct(ds []time.Duration, p float64) time.Duration {
	s := slices.Clone(ds)
	slices.Sort(s)
	return s[int(p*float64(len(s)-1))]
}

// benchGrant stores the grant every generated record names, so each lookup
// reads its purpose and legal basis as a real one does.
func benchGrant(t *testing.T, st *sqlstore.Store) {
	t.Helper()
	ctx := context.Background()
	now := time.Now().UTC()
	err := st.Update(ctx, func(tx catalog.Tx) error {
		for _, m := range []string{"000.00.00.G01", "000.00.00.G14"} {
			if err := tx.CreateMember(ctx, &catalog.Member{Code: m, Name: m, CreatedAt: now}); err != nil {
				return err
			}
		}
		for _, s := range []string{"VN:GOV:000.00.00.G01:CSDLDC", "VN:GOV:000.00.00.G14:SYS000"} {
			if err := tx.CreateSystem(ctx, &catalog.System{ID: s, Member: strings.Split(s, ":")[2], Name: s, SecurityLevel: 3, CreatedAt: now}); err != nil {
				return err
			}
		}
		return tx.CreateGrant(ctx, &catalog.Grant{ID: "grant-bench", RequestID: "req-bench", Consumer: "VN:GOV:000.00.00.G14:SYS000",
			Provider: "VN:GOV:000.00.00.G01:CSDLDC", Dataset: "population", Fields: []catalog.GrantedField{{Path: "fullName"}},
			Purposes: []catalog.Purpose{{Code: "1.001234", Text: "cấp thẻ BHYT"}}, LegalBasis: catalog.LegalBasis{Reference: "Nghị định 13/2023/NĐ-CP"},
			Modes: []catalog.Mode{catalog.ModeQuery}, ValidFrom: now, ValidUntil: now.Add(time.Hour), State: catalog.GrantActive,
			ApprovedBy: "bench", CreatedAt: now})
	})
	if err != nil {
		t.Fatal(err)
	}
}
