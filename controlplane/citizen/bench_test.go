package citizen_test

import (
	"bytes"
	"context"
	"database/sql"
	"encoding/hex"
	"fmt"
	"io"
	"log/slog"
	"math/rand/v2"
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
// generated here, never committed, in SQLite: one lookup is the whole of
// Tracker.Lookup but the ID token check (the first page of 100 disclosures,
// newest first, their grants, and the admin-trail entry the lookup writes).
// The baseline, measured on the same file in the same run, is a point read
// of one record by its primary key.
//
// The generated world: 20 provider gateways; 1,000,000 ordinary citizens
// with about 9 disclosures each and 1,000 heavily read ones with about
// 1,000 each (9 + 1 million records); every record is a disclosure, the
// worst case for the tracker's index. Lookups ask for ordinary citizens 9
// times in 10. The load writes in key order inside one transaction with
// multi-row prepared statements, synchronous off, and without the auditors'
// secondary indexes of audit_records, which the tracker does not read.
func TestBenchAuditTracker(t *testing.T) {
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
	ctx := context.Background()
	// The generated index is kept between runs (it is deterministic), in
	// the temporary directory, never in the repository: the first run pays
	// the load, later runs measure at once.
	path := filepath.Join(os.TempDir(), fmt.Sprintf("lienthong-bench-audit-%s-%d.db", benchIndexVersion, total))
	_, statErr := os.Stat(path + ".complete")
	generate := statErr != nil
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
	}
	start := time.Now()
	w := loadBenchIndex(t, path, total, generate)
	loadTime := time.Since(start)
	if generate {
		if err := os.WriteFile(path+".complete", nil, 0o600); err != nil {
			t.Fatal(err)
		}
	}

	st, err := sqlstore.OpenSQLite(ctx, path)
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
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

	rng := rand.New(rand.NewPCG(7, 7))
	pick := func() string {
		if rng.IntN(10) == 0 {
			return w.heavy[rng.IntN(len(w.heavy))]
		}
		return w.ordinary[rng.IntN(len(w.ordinary))]
	}
	// Warm the page cache the way a running control plane is warm, then
	// measure lookups and the baseline interleaved, bounded in count and time.
	for i := 0; i < 200; i++ {
		if _, err := tr.Lookup(ctx, pick(), 100, ""); err != nil {
			t.Fatal(err)
		}
	}
	const count, budget = 3000, 30 * time.Second
	var lookups, points []time.Duration
	shown := 0
	deadline := time.Now().Add(budget)
	for i := 0; i < count && time.Now().Before(deadline); i++ {
		id := pick()
		t0 := time.Now()
		page, err := tr.Lookup(ctx, id, 100, "")
		if err != nil {
			t.Fatal(err)
		}
		lookups = append(lookups, time.Since(t0))
		shown += len(page.Items)

		gw, seq := fmt.Sprintf("VN:GOV:000.00.%02d.G01:GW", rng.IntN(w.gateways)), 1+rng.Int64N(w.perGateway)
		t0 = time.Now()
		var at int64
		if err := st.DB().QueryRowContext(ctx, `SELECT at FROM audit_records WHERE gateway = $1 AND seq = $2`, gw, seq).Scan(&at); err != nil {
			t.Fatalf("baseline read %s/%d: %v", gw, seq, err)
		}
		points = append(points, time.Since(t0))
	}
	if shown == 0 {
		t.Fatal("no lookup found anything: the generated index is not what the tracker reads")
	}
	t.Logf("%d records (generated now: %v) in %s; %d lookups showing %.1f entries on average", total, generate, loadTime.Round(time.Second), len(lookups), float64(shown)/float64(len(lookups)))
	m := millions(total)
	if generate {
		fmt.Printf("BENCH audit index_load_records_per_s %.0f records/s\n", float64(total)/loadTime.Seconds())
	}
	fmt.Printf("BENCH audit pk_lookup_p99_%s_ms %.3f ms\n", m, ms(pct(points, 0.99)))
	fmt.Printf("BENCH audit tracker_p50_%s_ms %.3f ms\n", m, ms(pct(lookups, 0.50)))
	fmt.Printf("BENCH audit tracker_p99_%s_ms %.3f ms\n", m, ms(pct(lookups, 0.99)))
	fmt.Printf("BENCH audit tracker_p99_over_pk_lookup_p99 %.1f x\n", float64(pct(lookups, 0.99))/float64(pct(points, 0.99)))
}

func millions(n int) string {
	if n%1_000_000 == 0 {
		return strconv.Itoa(n/1_000_000) + "m"
	}
	return strconv.Itoa(n)
}

func ms(d time.Duration) float64 { return float64(d) / float64(time.Millisecond) }

func pct(ds []time.Duration, p float64) time.Duration {
	s := slices.Clone(ds)
	slices.Sort(s)
	return s[int(p*float64(len(s)-1))]
}

// benchWorld is what the load generated: the subject key, the personal IDs
// to look up, and the gateways' extent for the baseline.
type benchWorld struct {
	key             index.SubjectKey
	ordinary, heavy []string
	gateways        int
	perGateway      int64
}

// benchRowsPerInsert rows go into one INSERT statement (24 parameters a
// record row: 1,200, well under SQLite's limit).
const benchRowsPerInsert = 50

// benchIndexVersion names the generator: change it when the generator or
// the schema changes, so a kept index from an older run is not reused.
const benchIndexVersion = "v2-0005"

// loadBenchIndex generates the world (deterministically) and, when insert
// is set, writes it into the index at path.
func loadBenchIndex(t *testing.T, path string, total int, insert bool) *benchWorld {
	t.Helper()
	ctx := context.Background()
	// A fixed subject key: the kept index must match the next run's HMACs.
	keyFile := filepath.Join(t.TempDir(), index.SubjectKeyFile)
	if err := os.WriteFile(keyFile, []byte("lienthong-bench-audit-subject-k"+"1"), 0o600); err != nil {
		t.Fatal(err)
	}
	key, err := index.LoadOrCreateSubjectKey(keyFile)
	if err != nil {
		t.Fatal(err)
	}

	// Citizens, in the order of their subject HMAC, so both tables are
	// written in key order.
	heavyN, ordinaryN := 1_000, total/10
	heavyEach := total / 10 / heavyN
	type citizenRow struct {
		id      string
		subject []byte
		records int
	}
	rng := rand.New(rand.NewPCG(1, 2))
	cs := make([]citizenRow, 0, heavyN+ordinaryN)
	w := &benchWorld{key: key, gateways: 20}
	remaining := total - heavyN*heavyEach
	for i := 0; i < heavyN+ordinaryN; i++ {
		id := fmt.Sprintf("%03d%d%02d%06d", 1+i%96, rng.IntN(4), rng.IntN(100), i%1_000_000)
		n := heavyEach
		if i >= heavyN {
			n = remaining / (heavyN + ordinaryN - i) // spread what is left evenly
			remaining -= n
			w.ordinary = append(w.ordinary, id)
		} else {
			w.heavy = append(w.heavy, id)
		}
		sub, _ := hex.DecodeString(key.Subject(id))
		cs = append(cs, citizenRow{id: id, subject: sub, records: n})
	}
	slices.SortFunc(cs, func(a, b citizenRow) int { return bytes.Compare(a.subject, b.subject) })
	w.perGateway = int64(total / w.gateways)
	if !insert {
		return w
	}

	// The loader has the file to itself: no journal, no syncs, a large cache.
	db, err := sql.Open("sqlite", path+"?_pragma=journal_mode(OFF)&_pragma=synchronous(OFF)&_pragma=locking_mode(EXCLUSIVE)"+
		"&_pragma=cache_size(-1000000)&_pragma=temp_store(MEMORY)")
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	db.SetMaxOpenConns(1)
	for _, ix := range []string{"audit_records_at", "audit_records_consumer_member", "audit_records_provider_member", "audit_records_exchange", "audit_records_subject"} {
		if _, err := db.ExecContext(ctx, "DROP INDEX "+ix); err != nil {
			t.Fatal(err)
		}
	}

	tx, err := db.BeginTx(ctx, nil)
	if err != nil {
		t.Fatal(err)
	}
	const recHead = `INSERT INTO audit_records (gateway, seq, at, exchange_id, side, phase, consumer, consumer_member, provider,
		provider_member, dataset, mode, purpose, case_ref, subject, subjects, fields, grant_id, reasons, status, bytes, latency_ms,
		request_hash, policy_revision) VALUES `
	const disHead = `INSERT INTO audit_disclosures (subject, at, gateway, seq) VALUES `
	recStmt, err := tx.PrepareContext(ctx, multiInsert(recHead, 24, benchRowsPerInsert))
	if err != nil {
		t.Fatal(err)
	}
	disStmt, err := tx.PrepareContext(ctx, multiInsert(disHead, 4, benchRowsPerInsert))
	if err != nil {
		t.Fatal(err)
	}
	gateways := make([]string, w.gateways)
	for i := range gateways {
		gateways[i] = fmt.Sprintf("VN:GOV:000.00.%02d.G01:GW", i)
	}
	seqs := make([]int64, w.gateways)
	base := time.Date(2025, 1, 1, 0, 0, 0, 0, time.UTC).UnixMicro()
	span := int64(365 * 24 * time.Hour / time.Microsecond)
	var recArgs, disArgs []any
	flush := func(final bool) {
		if len(disArgs) == 4*benchRowsPerInsert || (final && len(disArgs) > 0) {
			n := len(disArgs) / 4
			rs, ds := recStmt, disStmt
			if n < benchRowsPerInsert { // the last, short statement
				if rs, err = tx.PrepareContext(ctx, multiInsert(recHead, 24, n)); err != nil {
					t.Fatal(err)
				}
				if ds, err = tx.PrepareContext(ctx, multiInsert(disHead, 4, n)); err != nil {
					t.Fatal(err)
				}
			}
			if _, err := rs.ExecContext(ctx, recArgs...); err != nil {
				t.Fatal(err)
			}
			if _, err := ds.ExecContext(ctx, disArgs...); err != nil {
				t.Fatal(err)
			}
			recArgs, disArgs = recArgs[:0], disArgs[:0]
		}
	}
	const fields = `["fullName","dateOfBirth","permanentResidence"]`
	n := 0
	for _, c := range cs {
		// A citizen's records, oldest first, at distinct times.
		at := base + rng.Int64N(span/2)
		for k := 0; k < c.records; k++ {
			g := n % w.gateways
			seqs[g]++
			at += 1 + rng.Int64N(span/2/int64(c.records+1))
			consumer := fmt.Sprintf("VN:GOV:000.00.%02d.G14:SYS%03d", n%60, n%200)
			provider := fmt.Sprintf("VN:GOV:000.00.%02d.G01:CSDLDC", g)
			recArgs = append(recArgs, gateways[g], seqs[g], at, "x-"+strconv.Itoa(n), "provider", "outcome",
				consumer, consumer[7:20], provider, provider[7:20], "population", "query", "1.001234", "",
				hex.EncodeToString(c.subject), 1, fields, "grant-bench", "[]", 200, 812, 3.2, "", "r1")
			disArgs = append(disArgs, c.subject, at, gateways[g], seqs[g])
			n++
			flush(false)
		}
	}
	flush(true)
	if err := tx.Commit(); err != nil {
		t.Fatal(err)
	}
	if n != total {
		t.Fatalf("generated %d records, want %d", n, total)
	}
	if seqs[w.gateways-1] != w.perGateway {
		t.Fatalf("gateway %d holds %d records, want %d", w.gateways-1, seqs[w.gateways-1], w.perGateway)
	}
	return w
}

// multiInsert repeats a row of cols parameters rows times. The parameters
// are positional ("?"): modernc.org/sqlite looks each "$n" up by name,
// which is quadratic in a statement of a thousand parameters.
func multiInsert(head string, cols, rows int) string {
	var b strings.Builder
	b.WriteString(head)
	for r := 0; r < rows; r++ {
		if r > 0 {
			b.WriteByte(',')
		}
		b.WriteByte('(')
		for c := 0; c < cols; c++ {
			if c > 0 {
				b.WriteByte(',')
			}
			b.WriteByte('?')
		}
		b.WriteByte(')')
	}
	return b.String()
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
