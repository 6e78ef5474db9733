package citizen_test

import (
	"bytes"
	"context"
	"database/sql"
	"encoding/base32"
	"encoding/binary"
	"encoding/hex"
	"fmt"
	"math"
	"math/rand/v2"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/stdlib"

	"github.com/lienthong/lienthong/audit/index"
)

// The generated world of the tracker bench, deterministic from its seeds.
//
// Citizens: each is read in a number of exchanges drawn from a Pareto law
// (shape 1.3, at least one, at most 5,000): most citizens were read once or
// twice, a few hundred thousand times in all, a few dozen in thousands
// of exchanges, as when one person's record is read by every agency that
// serves them.
//
// Exchanges: each is recorded as the real index holds it. 19 in 20 reach
// the provider: four records (the consumer gateway's intent and outcome,
// the provider gateway's intent and outcome; both outcomes name the subject,
// so the tracker sees the exchange twice and must show it once). 1 in 20
// is refused by the consumer gateway itself: its intent and outcome only.
// Of those reaching the provider, 1 in 25 is refused there (403, no grant).
// Exchange ids are random, as catalog.NewID makes them.
//
// Gateways: 20 provider gateways, 40 consumer gateways; seqs count up per
// gateway in the order records are generated (by citizen), which the
// tracker's query does not depend on.
const (
	benchProviders = 20
	benchConsumers = 40
	benchMaxEach   = 5_000
	benchShape     = 1.3
)

// benchCitizen is one generated citizen: the personal ID the tracker is
// asked about, its subject HMAC and how many exchanges read its record.
type benchCitizen struct {
	id        string
	subject   []byte
	exchanges int
}

// benchWorld is what the generator made: the subject key, the citizens
// (in subject order) and the gateways' extent for the baseline.
type benchWorld struct {
	key      index.SubjectKey
	citizens []benchCitizen
	// seqs holds, per gateway name, the last seq generated.
	seqs map[string]int64
	// records, disclosures and exchanges count the generated rows.
	records, disclosures, exchanges int
}

// benchSink takes the generated rows: an audit_records row (24 values, in
// recordColumns order) and, for outcomes, its audit_disclosures row.
type benchSink interface {
	record(values []any) error
	disclosure(subject []byte, at int64, gateway string, seq int64) error
}

var recordColumns = []string{"gateway", "seq", "at", "exchange_id", "side", "phase", "consumer", "consumer_member",
	"provider", "provider_member", "dataset", "mode", "purpose", "case_ref", "subject", "subjects", "fields", "grant_id",
	"reasons", "status", "bytes", "latency_ms", "request_hash", "policy_revision"}

var disclosureColumns = []string{"subject", "at", "gateway", "seq"}

// benchKey is the fixed subject key of the bench (the HMACs of a kept
// index must match the next run's).
func benchKey(t *testing.T) index.SubjectKey {
	t.Helper()
	keyFile := filepath.Join(t.TempDir(), index.SubjectKeyFile)
	if err := os.WriteFile(keyFile, []byte("lienthong-bench-audit-subject-k"+"1"), 0o600); err != nil {
		t.Fatal(err)
	}
	key, err := index.LoadOrCreateSubjectKey(keyFile)
	if err != nil {
		t.Fatal(err)
	}
	return key
}

// benchCitizens draws citizens until their exchanges make total records
// (at about 3.9 records an exchange), in subject order.
func benchCitizens(key index.SubjectKey, total int) []benchCitizen {
	rng := rand.New(rand.NewPCG(1, 2))
	var cs []benchCitizen
	budget := total * 10 / 39 // exchanges
	for i := 0; budget > 0; i++ {
		n := int(math.Floor(math.Pow(1-rng.Float64(), -1/benchShape)))
		n = min(max(n, 1), benchMaxEach, budget)
		budget -= n
		id := fmt.Sprintf("%03d%09d", 1+i%96, i) // 12 digits, unique
		sub, _ := hex.DecodeString(key.Subject(id))
		cs = append(cs, benchCitizen{id: id, subject: sub, exchanges: n})
	}
	slices.SortFunc(cs, func(a, b benchCitizen) int { return bytes.Compare(a.subject, b.subject) })
	return cs
}

// generateBench writes the world into sink, exactly total records.
func generateBench(key index.SubjectKey, total int, sink benchSink) (*benchWorld, error) {
	w := &benchWorld{key: key, citizens: benchCitizens(key, total), seqs: map[string]int64{}}
	rng := rand.New(rand.NewPCG(3, 4))
	providerGWs := make([]string, benchProviders)
	for i := range providerGWs {
		providerGWs[i] = fmt.Sprintf("VN:GOV:000.00.%02d.G01:GW", i)
	}
	consumerGWs := make([]string, benchConsumers)
	for i := range consumerGWs {
		consumerGWs[i] = fmt.Sprintf("VN:GOV:000.%02d.00.G14:GW", i)
	}
	base := time.Date(2025, 1, 1, 0, 0, 0, 0, time.UTC).UnixMicro()
	span := int64(365 * 24 * time.Hour / time.Microsecond)
	idEnc := base32.StdEncoding.WithPadding(base32.NoPadding)
	const fields = `["fullName","dateOfBirth","permanentResidence"]`

	emit := func(gw string, at int64, xid, side, phase, consumer, provider, grant, reasons string, status int, subject []byte) error {
		w.seqs[gw]++
		seq := w.seqs[gw]
		f := fields
		if status != 200 {
			f = "[]"
		}
		if err := sink.record([]any{gw, seq, at, xid, side, phase, consumer, consumer[7:20], provider, provider[7:20],
			"population", "query", "1.001234", "", hex.EncodeToString(subject), int64(1), f, grant, reasons, int64(status),
			int64(812), 3.2, "", "r1"}); err != nil {
			return err
		}
		w.records++
		if phase != "outcome" {
			return nil
		}
		w.disclosures++
		return sink.disclosure(subject, at, gw, seq)
	}
	// exchange generates one exchange's records: 4 when it reaches the
	// provider, 2 when the consumer gateway refuses it, 1 when only the
	// consumer's intent was written (a crash before the outcome).
	exchange := func(subject []byte, at int64, records int) error {
		var b [10]byte
		binary.LittleEndian.PutUint64(b[:], rng.Uint64())
		binary.LittleEndian.PutUint16(b[8:], uint16(rng.Uint32()))
		xid := "exc-" + strings.ToLower(idEnc.EncodeToString(b[:]))
		cgw, pg := rng.IntN(benchConsumers), rng.IntN(benchProviders)
		consumer := fmt.Sprintf("VN:GOV:000.%02d.00.G14:SYS%03d", cgw, rng.IntN(5))
		provider := fmt.Sprintf("VN:GOV:000.00.%02d.G01:CSDLDC", pg)
		w.exchanges++
		if err := emit(consumerGWs[cgw], at, xid, "consumer", "intent", consumer, provider, "", "[]", 0, subject); err != nil || records == 1 {
			return err
		}
		if records == 2 {
			return emit(consumerGWs[cgw], at+300, xid, "consumer", "outcome", consumer, provider, "", `["no_grant"]`, 403, subject)
		}
		grant, reasons, status := "grant-bench", "[]", 200
		if rng.IntN(25) == 0 {
			grant, reasons, status = "", `["no_grant"]`, 403
		}
		if err := emit(providerGWs[pg], at+2_000, xid, "provider", "intent", consumer, provider, grant, "[]", 0, subject); err != nil {
			return err
		}
		if err := emit(providerGWs[pg], at+5_000, xid, "provider", "outcome", consumer, provider, grant, reasons, status, subject); err != nil {
			return err
		}
		return emit(consumerGWs[cgw], at+6_000, xid, "consumer", "outcome", consumer, provider, grant, reasons, status, subject)
	}

	remaining := total
	// step generates one exchange of 4 records, 1 in 20 of 2, fewer only
	// when fewer remain.
	step := func(subject []byte, at int64) error {
		n := 4
		if rng.IntN(20) == 0 {
			n = 2
		}
		switch {
		case remaining >= n:
		case remaining >= 2:
			n = 2
		default:
			n = 1
		}
		remaining -= n
		return exchange(subject, at, n)
	}
	times := make([]int64, 0, benchMaxEach)
	for ci, c := range w.citizens {
		if remaining == 0 {
			w.citizens = w.citizens[:ci] // the budget ran out: the rest were never read
			break
		}
		times = times[:0]
		for k := 0; k < c.exchanges; k++ {
			times = append(times, base+rng.Int64N(span))
		}
		slices.Sort(times)
		for _, at := range times {
			if remaining == 0 {
				break
			}
			if err := step(c.subject, at); err != nil {
				return nil, err
			}
		}
	}
	// Records left over go to the last citizen, after everything else.
	for at := base + span; remaining > 0; at += 10_000 {
		if err := step(w.citizens[len(w.citizens)-1].subject, at); err != nil {
			return nil, err
		}
	}
	if w.records != total {
		return nil, fmt.Errorf("generated %d records, want %d", w.records, total)
	}
	return w, nil
}

// sqliteSink inserts with multi-row prepared statements inside one
// transaction ("?" parameters: modernc.org/sqlite looks each "$n" up by
// name, which is quadratic in a statement of a thousand parameters).
type sqliteSink struct {
	ctx            context.Context
	tx             *sql.Tx
	rec, dis       *sql.Stmt
	recArgs, dArgs []any
}

// sqliteRowsPerInsert rows go into one INSERT (24 parameters a record
// row: 1,200, well under SQLite's limit).
const sqliteRowsPerInsert = 50

func newSQLiteSink(ctx context.Context, tx *sql.Tx) (*sqliteSink, error) {
	s := &sqliteSink{ctx: ctx, tx: tx}
	var err error
	if s.rec, err = tx.PrepareContext(ctx, multiInsert("audit_records", recordColumns, sqliteRowsPerInsert)); err != nil {
		return nil, err
	}
	if s.dis, err = tx.PrepareContext(ctx, multiInsert("audit_disclosures", disclosureColumns, sqliteRowsPerInsert)); err != nil {
		return nil, err
	}
	return s, nil
}

func (s *sqliteSink) record(values []any) error {
	s.recArgs = append(s.recArgs, values...)
	if len(s.recArgs) < len(recordColumns)*sqliteRowsPerInsert {
		return nil
	}
	_, err := s.rec.ExecContext(s.ctx, s.recArgs...)
	s.recArgs = s.recArgs[:0]
	return err
}

func (s *sqliteSink) disclosure(subject []byte, at int64, gateway string, seq int64) error {
	s.dArgs = append(s.dArgs, subject, at, gateway, seq)
	if len(s.dArgs) < len(disclosureColumns)*sqliteRowsPerInsert {
		return nil
	}
	_, err := s.dis.ExecContext(s.ctx, s.dArgs...)
	s.dArgs = s.dArgs[:0]
	return err
}

// flush writes the last, short statements.
func (s *sqliteSink) flush() error {
	if n := len(s.recArgs) / len(recordColumns); n > 0 {
		if _, err := s.tx.ExecContext(s.ctx, multiInsert("audit_records", recordColumns, n), s.recArgs...); err != nil {
			return err
		}
	}
	if n := len(s.dArgs) / len(disclosureColumns); n > 0 {
		if _, err := s.tx.ExecContext(s.ctx, multiInsert("audit_disclosures", disclosureColumns, n), s.dArgs...); err != nil {
			return err
		}
	}
	return nil
}

// multiInsert is an INSERT of rows rows of "?" parameters.
func multiInsert(table string, cols []string, rows int) string {
	var b strings.Builder
	b.WriteString("INSERT INTO " + table + " (" + strings.Join(cols, ", ") + ") VALUES ")
	row := "(" + strings.TrimSuffix(strings.Repeat("?,", len(cols)), ",") + ")"
	for r := 0; r < rows; r++ {
		if r > 0 {
			b.WriteByte(',')
		}
		b.WriteString(row)
	}
	return b.String()
}

// benchDroppedIndexes are the auditors' secondary indexes of audit_records,
// which the tracker does not read: the load drops them, for speed. The
// index the tracker's de-duplication reads (audit_records_exchange) is
// dropped too and built again after the load, faster than row by row.
var benchDroppedIndexes = []string{"audit_records_at", "audit_records_consumer_member", "audit_records_provider_member", "audit_records_subject"}

// loadSQLite generates the world into the SQLite file at path, whose
// schema the store already made.
func loadSQLite(t *testing.T, path string, key index.SubjectKey, total int) *benchWorld {
	t.Helper()
	ctx := context.Background()
	// The loader has the file to itself: no journal, no syncs, a large cache.
	db, err := sql.Open("sqlite", path+"?_pragma=journal_mode(OFF)&_pragma=synchronous(OFF)&_pragma=locking_mode(EXCLUSIVE)"+
		"&_pragma=cache_size(-1000000)&_pragma=temp_store(MEMORY)")
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	db.SetMaxOpenConns(1)
	for _, ix := range append(benchDroppedIndexes, "audit_records_exchange") {
		if _, err := db.ExecContext(ctx, "DROP INDEX "+ix); err != nil {
			t.Fatal(err)
		}
	}
	tx, err := db.BeginTx(ctx, nil)
	if err != nil {
		t.Fatal(err)
	}
	sink, err := newSQLiteSink(ctx, tx)
	if err != nil {
		t.Fatal(err)
	}
	w, err := generateBench(key, total, sink)
	if err == nil {
		err = sink.flush()
	}
	if err != nil {
		t.Fatal(err)
	}
	if err := tx.Commit(); err != nil {
		t.Fatal(err)
	}
	if _, err := db.ExecContext(ctx, "CREATE INDEX audit_records_exchange ON audit_records (exchange_id)"); err != nil {
		t.Fatal(err)
	}
	return w
}

// pgSink copies rows in batches (COPY, pgx's CopyFrom).
type pgSink struct {
	ctx      context.Context
	conn     *pgx.Conn
	rec, dis [][]any
}

const pgRowsPerCopy = 20_000

func (s *pgSink) record(values []any) error {
	s.rec = append(s.rec, slices.Clone(values))
	if len(s.rec) < pgRowsPerCopy {
		return nil
	}
	return s.copyRecords()
}

func (s *pgSink) disclosure(subject []byte, at int64, gateway string, seq int64) error {
	s.dis = append(s.dis, []any{subject, at, gateway, seq})
	if len(s.dis) < pgRowsPerCopy {
		return nil
	}
	return s.copyDisclosures()
}

func (s *pgSink) copyRecords() error {
	_, err := s.conn.CopyFrom(s.ctx, pgx.Identifier{"audit_records"}, recordColumns, pgx.CopyFromRows(s.rec))
	s.rec = s.rec[:0]
	return err
}

func (s *pgSink) copyDisclosures() error {
	_, err := s.conn.CopyFrom(s.ctx, pgx.Identifier{"audit_disclosures"}, disclosureColumns, pgx.CopyFromRows(s.dis))
	s.dis = s.dis[:0]
	return err
}

// loadPostgres generates the world into the PostgreSQL database db, whose
// schema the store already made, then analyses it as autovacuum would.
func loadPostgres(t *testing.T, db *sql.DB, key index.SubjectKey, total int) *benchWorld {
	t.Helper()
	ctx := context.Background()
	for _, ix := range append(benchDroppedIndexes, "audit_records_exchange") {
		if _, err := db.ExecContext(ctx, "DROP INDEX "+ix); err != nil {
			t.Fatal(err)
		}
	}
	conn, err := db.Conn(ctx)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	var w *benchWorld
	err = conn.Raw(func(dc any) error {
		s := &pgSink{ctx: ctx, conn: dc.(*stdlib.Conn).Conn()}
		var err error
		if w, err = generateBench(key, total, s); err != nil {
			return err
		}
		if err := s.copyRecords(); err != nil {
			return err
		}
		return s.copyDisclosures()
	})
	if err != nil {
		t.Fatal(err)
	}
	for _, q := range []string{"CREATE INDEX audit_records_exchange ON audit_records (exchange_id)", "ANALYZE"} {
		if _, err := db.ExecContext(ctx, q); err != nil {
			t.Fatal(err)
		}
	}
	return w
}

// benchIDs lists the citizens to look up: everyone, and the 1,000 read
// most (the worst case for a page).
func benchIDs(w *benchWorld) (everyone, heavy []string) {
	cs := slices.Clone(w.citizens)
	slices.SortFunc(cs, func(a, b benchCitizen) int { return b.exchanges - a.exchanges })
	for _, c := range cs {
		everyone = append(everyone, c.id)
	}
	return everyone, everyone[:min(1000, len(everyone))]
}

func millions(n int) string {
	if n%1_000_000 == 0 {
		return strconv.Itoa(n/1_000_000) + "m"
	}
	return strconv.Itoa(n)
}
