package postgres_test

import (
	"context"
	"encoding/json"
	"errors"
	"io"
	"net/url"
	"reflect"
	"slices"
	"sort"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/lienthong/lienthong/adapters"
	"github.com/lienthong/lienthong/adapters/postgres"
	"github.com/lienthong/lienthong/catalog"
	"github.com/lienthong/lienthong/catalog/storetest"
)

// tracer records every statement the pool sends, so tests can prove what
// SQL was built and that request values travel only as parameters.
type tracer struct {
	mu      sync.Mutex
	queries []traced
}

type traced struct {
	sql  string
	args []any
}

func (tr *tracer) TraceQueryStart(ctx context.Context, _ *pgx.Conn, d pgx.TraceQueryStartData) context.Context {
	tr.mu.Lock()
	defer tr.mu.Unlock()
	tr.queries = append(tr.queries, traced{d.SQL, slices.Clone(d.Args)})
	return ctx
}

func (tr *tracer) TraceQueryEnd(context.Context, *pgx.Conn, pgx.TraceQueryEndData) {}

func (tr *tracer) count() int {
	tr.mu.Lock()
	defer tr.mu.Unlock()
	return len(tr.queries)
}

func (tr *tracer) last(t *testing.T) traced {
	t.Helper()
	tr.mu.Lock()
	defer tr.mu.Unlock()
	if len(tr.queries) == 0 {
		t.Fatal("no query was sent")
	}
	return tr.queries[len(tr.queries)-1]
}

// freshPool creates database lt_<random> on the test server, dropped when
// the test ends, and returns a traced pool on it.
func freshPool(t *testing.T) (*pgxpool.Pool, *tracer) {
	t.Helper()
	dsn := storetest.FreshPostgresDatabase(t)
	ctx := t.Context()
	cfg, err := pgxpool.ParseConfig(dsn)
	if err != nil {
		t.Fatal(err)
	}
	cfg.MaxConns = 4
	tr := &tracer{}
	cfg.ConnConfig.Tracer = tr
	pool, err := pgxpool.NewWithConfig(ctx, cfg)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(pool.Close)
	return pool, tr
}

const schema = `
CREATE TABLE citizens (
	personal_id   text PRIMARY KEY,
	full_name     text NOT NULL,
	date_of_birth date NOT NULL,
	sex           text NOT NULL,
	ethnicity     text,
	religion      text,
	perm_province text,
	perm_ward     text,
	perm_line     text,
	spouse_id     text,
	spouse_name   text,
	relatives     jsonb,
	children      integer,
	height_m      numeric(3,2),
	alive         boolean,
	updated_at    timestamptz
);
INSERT INTO citizens VALUES
 ('001085001234', 'Nguyễn Văn An', '1985-02-03', 'male', '01', NULL, '01', '00004', 'Số 12 ngõ 34 phố Kim Mã',
  '001188004321', 'Trần Thị Bình', '[{"relationship":"Con đẻ","fullName":"Nguyễn Minh Châu","personalId":"001214005678"}]',
  1, 1.72, true, '2025-03-14 09:26:53.589793+07'),
 ('001188004321', 'Trần Thị Bình', '1988-11-30', 'female', '01', 'Phật giáo', '01', '00004', 'Số 12 ngõ 34 phố Kim Mã',
  '001085001234', 'Nguyễn Văn An', '[]', 1, 1.58, true, '2025-03-14 09:26:53+07'),
 ('048095000777', 'Lê Văn Đức', '1995-07-01', 'male', '02', NULL, '48', '20194', 'Số 5 đường Bạch Đằng',
  NULL, NULL, NULL, NULL, NULL, NULL, NULL),
 ('079203001234', 'Phạm Thị Hoa', '2003-12-24', 'female', '01', 'Công giáo', '79', '26734', 'Số 45 đường Lê Lợi',
  NULL, NULL, '[]', 0, 1.60, true, '2024-12-31 17:00:00Z'),
 ('079301009999', 'Võ Minh Khang', '2001-05-09', 'male', '05', NULL, '79', '26737', 'Số 7 đường Pasteur',
  NULL, NULL, '[]', 0, 1.81, false, '2026-01-02 03:04:05Z');
CREATE VIEW slow_citizens AS SELECT c.* FROM citizens c, pg_sleep(3) s;
CREATE VIEW twice_citizens AS SELECT * FROM citizens UNION ALL SELECT * FROM citizens;
CREATE TABLE events (id bigint PRIMARY KEY, kind text NOT NULL);
INSERT INTO events VALUES (1, 'birth'), (2, 'death');
`

var allIDs = []string{"001085001234", "001188004321", "048095000777", "079203001234", "079301009999"}

func citizenMapping(table string) postgres.Mapping {
	return postgres.Mapping{
		Table:    table,
		Key:      "personal_id",
		ListPath: "citizens",
		Columns: map[string]string{
			"personalId":                      "personal_id",
			"fullName":                        "full_name",
			"dateOfBirth":                     "date_of_birth",
			"sex":                             "sex",
			"ethnicity":                       "ethnicity",
			"religion":                        "religion",
			"permanentResidence.provinceCode": "perm_province",
			"permanentResidence.wardCode":     "perm_ward",
			"permanentResidence.addressLine":  "perm_line",
			"spouse.personalId":               "spouse_id",
			"spouse.fullName":                 "spouse_name",
			"relatives":                       "relatives",
			"childrenCount":                   "children",
			"height":                          "height_m",
			"alive":                           "alive",
			"updatedAt":                       "updated_at",
		},
	}
}

// setup returns an adapter over a fresh citizens table.
func setup(t *testing.T, m postgres.Mapping) (*postgres.Adapter, *pgxpool.Pool, *tracer) {
	t.Helper()
	pool, tr := freshPool(t)
	if _, err := pool.Exec(t.Context(), schema); err != nil {
		t.Fatalf("schema: %v", err)
	}
	a, err := postgres.New(pool, m)
	if err != nil {
		t.Fatalf("New: %v", err)
	}
	return a, pool, tr
}

var testDataset = &catalog.Dataset{System: "VN:GOV:000.00.00.G01:CSDLDC", Code: "population"}

// fetch runs Fetch and decodes the body.
func fetch(t *testing.T, a *postgres.Adapter, req adapters.Request) (any, error) {
	t.Helper()
	req.Dataset = testDataset
	resp, err := a.Fetch(t.Context(), req)
	if err != nil {
		return nil, err
	}
	defer resp.Body.Close()
	if !resp.Scoped {
		t.Error("PostgreSQL responses apply the row scope and must say so")
	}
	raw, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	var v any
	if err := json.Unmarshal(raw, &v); err != nil {
		t.Fatalf("body is not JSON: %v\n%s", err, raw)
	}
	return v, nil
}

// selectList returns the column list of a traced SELECT.
func selectList(t *testing.T, sql string) []string {
	t.Helper()
	rest, ok := strings.CutPrefix(sql, "SELECT ")
	if !ok {
		t.Fatalf("not a SELECT: %s", sql)
	}
	list, _, ok := strings.Cut(rest, " FROM ")
	if !ok {
		t.Fatalf("no FROM: %s", sql)
	}
	return strings.Split(list, ", ")
}

// leaves lists the dotted paths of the leaves of a decoded JSON object.
func leaves(prefix string, v any) []string {
	m, ok := v.(map[string]any)
	if !ok {
		return []string{prefix}
	}
	var out []string
	for k, child := range m {
		p := k
		if prefix != "" {
			p = prefix + "." + k
		}
		out = append(out, leaves(p, child)...)
	}
	sort.Strings(out)
	return out
}

func TestNewValidatesMapping(t *testing.T) {
	pool, err := pgxpool.New(t.Context(), "postgres://127.0.0.1:1/none") // never connects
	if err != nil {
		t.Fatal(err)
	}
	defer pool.Close()
	good := citizenMapping("citizens")
	with := func(f func(m *postgres.Mapping)) postgres.Mapping {
		m := citizenMapping("citizens")
		m.Columns = map[string]string{}
		for k, v := range good.Columns {
			m.Columns[k] = v
		}
		f(&m)
		return m
	}
	tests := []struct {
		name string
		m    postgres.Mapping
		want string
	}{
		{"injection in table", with(func(m *postgres.Mapping) { m.Table = "citizens; DROP TABLE citizens" }), "table"},
		{"upper case table", with(func(m *postgres.Mapping) { m.Table = "Citizens" }), "table"},
		{"quoted table", with(func(m *postgres.Mapping) { m.Table = `"citizens"` }), "table"},
		{"three-part table", with(func(m *postgres.Mapping) { m.Table = "a.b.c" }), "table"},
		{"empty table", with(func(m *postgres.Mapping) { m.Table = "" }), "table"},
		{"bad key", with(func(m *postgres.Mapping) { m.Key = "personal id" }), "key"},
		{"bad column", with(func(m *postgres.Mapping) { m.Columns["fullName"] = `full"name` }), "column"},
		{"expression column", with(func(m *postgres.Mapping) { m.Columns["x"] = "pg_read_file('/etc/passwd')" }), "column"},
		{"bad field path", with(func(m *postgres.Mapping) { m.Columns["a..b"] = "full_name" }), "field path"},
		{"overlapping fields", with(func(m *postgres.Mapping) { m.Columns["spouse"] = "spouse_id" }), "overlap"},
		{"no columns", with(func(m *postgres.Mapping) { m.Columns = nil }), "no columns"},
		{"list path with slash", with(func(m *postgres.Mapping) { m.ListPath = "/citizens" }), "list path"},
		{"empty list path", with(func(m *postgres.Mapping) { m.ListPath = "" }), "list path"},
		{"dot list path", with(func(m *postgres.Mapping) { m.ListPath = "../citizens" }), "list path"},
		{"negative max rows", with(func(m *postgres.Mapping) { m.MaxRows = -1 }), "max rows"},
		{"huge max rows", with(func(m *postgres.Mapping) { m.MaxRows = 1 << 30 }), "max rows"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := postgres.New(pool, tt.m)
			if err == nil || !strings.Contains(err.Error(), tt.want) {
				t.Fatalf("got %v, want an error mentioning %q", err, tt.want)
			}
		})
	}
	if _, err := postgres.New(nil, good); err == nil {
		t.Error("nil pool accepted")
	}
	for _, table := range []string{"citizens", "population.citizens_v2", "_x"} {
		m := good
		m.Table = table
		if _, err := postgres.New(pool, m); err != nil {
			t.Errorf("table %q: %v", table, err)
		}
	}
}

func TestFetchSelectsOnlyGrantedColumns(t *testing.T) {
	a, _, tr := setup(t, citizenMapping("citizens"))
	tests := []struct {
		name        string
		fields      []string
		wantColumns []string
		wantLeaves  []string
	}{
		{"one field", []string{"fullName"}, []string{`"full_name"`}, []string{"fullName"}},
		{"granted object allows its members", []string{"permanentResidence"},
			[]string{`"perm_line"`, `"perm_province"`, `"perm_ward"`},
			[]string{"permanentResidence.addressLine", "permanentResidence.provinceCode", "permanentResidence.wardCode"}},
		{"one nested member", []string{"permanentResidence.provinceCode", "ethnicity"},
			[]string{`"ethnicity"`, `"perm_province"`},
			[]string{"ethnicity", "permanentResidence.provinceCode"}},
		{"member of a json column fetches the column", []string{"relatives.fullName"},
			[]string{`"relatives"`}, []string{"relatives"}},
		{"duplicates", []string{"sex", "sex"}, []string{`"sex"`}, []string{"sex"}},
		{"nothing mapped granted", []string{"homeTown", "spouseless", "full"}, []string{"1"}, nil},
		{"nothing granted", nil, []string{"1"}, nil},
		{"prefix is not a parent", []string{"full", "permanentResidence.province"}, []string{"1"}, nil},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := fetch(t, a, adapters.Request{Path: "citizens/001085001234", Fields: tt.fields})
			if err != nil {
				t.Fatal(err)
			}
			if cols := selectList(t, tr.last(t).sql); !reflect.DeepEqual(cols, tt.wantColumns) {
				t.Errorf("SELECT list %v, want %v", cols, tt.wantColumns)
			}
			var gotLeaves []string
			if len(got.(map[string]any)) > 0 {
				gotLeaves = leaves("", got)
			}
			if !reflect.DeepEqual(gotLeaves, tt.wantLeaves) {
				t.Errorf("output fields %v, want %v\n%v", gotLeaves, tt.wantLeaves, got)
			}
		})
	}
}

func TestFetchOutput(t *testing.T) {
	a, _, _ := setup(t, citizenMapping("citizens"))
	all := []string{"personalId", "fullName", "dateOfBirth", "sex", "ethnicity", "religion", "permanentResidence",
		"spouse", "relatives", "childrenCount", "height", "alive", "updatedAt"}
	tests := []struct {
		path string
		want string
	}{
		{"citizens/001085001234", `{
			"personalId": "001085001234", "fullName": "Nguyễn Văn An", "dateOfBirth": "1985-02-03", "sex": "male",
			"ethnicity": "01", "religion": null,
			"permanentResidence": {"provinceCode": "01", "wardCode": "00004", "addressLine": "Số 12 ngõ 34 phố Kim Mã"},
			"spouse": {"personalId": "001188004321", "fullName": "Trần Thị Bình"},
			"relatives": [{"relationship": "Con đẻ", "fullName": "Nguyễn Minh Châu", "personalId": "001214005678"}],
			"childrenCount": 1, "height": 1.72, "alive": true, "updatedAt": "2025-03-14T02:26:53.589793Z"}`},
		{"citizens/048095000777", `{
			"personalId": "048095000777", "fullName": "Lê Văn Đức", "dateOfBirth": "1995-07-01", "sex": "male",
			"ethnicity": "02", "religion": null,
			"permanentResidence": {"provinceCode": "48", "wardCode": "20194", "addressLine": "Số 5 đường Bạch Đằng"},
			"spouse": null, "relatives": null, "childrenCount": null, "height": null, "alive": null, "updatedAt": null}`},
	}
	for _, tt := range tests {
		t.Run(tt.path, func(t *testing.T) {
			got, err := fetch(t, a, adapters.Request{Path: tt.path, Fields: all})
			if err != nil {
				t.Fatal(err)
			}
			var want any
			if err := json.Unmarshal([]byte(tt.want), &want); err != nil {
				t.Fatal(err)
			}
			if !reflect.DeepEqual(got, want) {
				g, _ := json.Marshal(got)
				t.Errorf("got  %s\nwant %s", g, tt.want)
			}
		})
	}
	// A nested object with only some members granted is null only when
	// those members are all NULL.
	got, err := fetch(t, a, adapters.Request{Path: "citizens/001085001234", Fields: []string{"spouse.fullName"}})
	if err != nil {
		t.Fatal(err)
	}
	if want := map[string]any{"spouse": map[string]any{"fullName": "Trần Thị Bình"}}; !reflect.DeepEqual(got, want) {
		t.Errorf("got %v, want %v", got, want)
	}
}

func TestFetchRowScope(t *testing.T) {
	a, _, tr := setup(t, citizenMapping("citizens"))
	scope := func(values ...string) *catalog.RowScope {
		return &catalog.RowScope{Field: "permanentResidence.provinceCode", Values: values}
	}
	tests := []struct {
		name    string
		path    string
		scope   *catalog.RowScope
		wantIDs []string // for lists
		wantErr error    // for gets
	}{
		{"get inside the scope", "citizens/001085001234", scope("01"), nil, nil},
		{"get outside the scope", "citizens/079203001234", scope("01"), nil, adapters.ErrNotFound},
		{"get with several values", "citizens/079203001234", scope("01", "79"), nil, nil},
		{"get with an empty scope", "citizens/001085001234", scope(), nil, adapters.ErrNotFound},
		{"list one province", "citizens", scope("79"), []string{"079203001234", "079301009999"}, nil},
		{"list two provinces", "citizens", scope("48", "79"), []string{"048095000777", "079203001234", "079301009999"}, nil},
		{"list with an empty scope", "citizens", scope(), []string{}, nil},
		{"list with a quote in a value", "citizens", scope("01' OR '1'='1"), []string{}, nil},
		{"list without a scope", "citizens", nil, allIDs, nil},
		{"unmapped scope field", "citizens", &catalog.RowScope{Field: "homeTown.provinceCode", Values: []string{"01"}}, nil, postgres.ErrUnmappedScope},
		{"unmapped scope field on a get", "citizens/001085001234", &catalog.RowScope{Field: "permanentResidence", Values: []string{"01"}}, nil, postgres.ErrUnmappedScope},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			before := tr.count()
			// The scope field is not granted: it filters without being read.
			got, err := fetch(t, a, adapters.Request{Path: tt.path, Fields: []string{"personalId"}, RowScope: tt.scope})
			if tt.wantErr != nil {
				if !errors.Is(err, tt.wantErr) {
					t.Fatalf("got %v, want %v", err, tt.wantErr)
				}
				if errors.Is(err, postgres.ErrUnmappedScope) && tr.count() != before {
					t.Error("a query ran although the row scope cannot be applied")
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if tt.wantIDs != nil {
				ids := []string{}
				for _, r := range got.([]any) {
					ids = append(ids, r.(map[string]any)["personalId"].(string))
				}
				if !reflect.DeepEqual(ids, tt.wantIDs) {
					t.Errorf("got %v, want %v", ids, tt.wantIDs)
				}
			}
			q := tr.last(t)
			if cols := selectList(t, q.sql); !reflect.DeepEqual(cols, []string{`"personal_id"`}) {
				t.Errorf("SELECT list %v: the scope column must not be read", cols)
			}
			if tt.scope == nil {
				return
			}
			if !strings.Contains(q.sql, `"perm_province" = ANY($`) {
				t.Errorf("no parameterised scope in %s", q.sql)
			}
			for _, v := range tt.scope.Values {
				if strings.Contains(q.sql, v) {
					t.Errorf("scope value %q appears in the SQL text %s", v, q.sql)
				}
			}
			if !slices.ContainsFunc(q.args, func(arg any) bool {
				v, ok := arg.([]string)
				return ok && slices.Equal(v, tt.scope.Values)
			}) {
				t.Errorf("scope values %v not among the parameters %v", tt.scope.Values, q.args)
			}
		})
	}
}

func TestFetchInjectionLookingIDs(t *testing.T) {
	a, pool, tr := setup(t, citizenMapping("citizens"))
	ids := []string{
		"1' OR '1'='1",
		"001085001234' --",
		"001085001234'; DROP TABLE citizens; --",
		`"; SELECT 1; --`,
		"001085001234 OR 1=1",
		"%",
		"00108500123_",
		"\\x00",
	}
	for _, id := range ids {
		t.Run(id, func(t *testing.T) {
			_, err := fetch(t, a, adapters.Request{Path: "citizens/" + id, Fields: []string{"fullName"}})
			if !errors.Is(err, adapters.ErrNotFound) {
				t.Fatalf("got %v, want ErrNotFound", err)
			}
			if strings.Contains(err.Error(), id) {
				t.Errorf("the error repeats the id: %v", err)
			}
			q := tr.last(t)
			if strings.Contains(q.sql, id) {
				t.Errorf("the id appears in the SQL text: %s", q.sql)
			}
			if len(q.args) == 0 || q.args[0] != id {
				t.Errorf("the id is not the first parameter: %v", q.args)
			}
		})
	}
	var n int
	if err := pool.QueryRow(t.Context(), "SELECT count(*) FROM citizens").Scan(&n); err != nil || n != len(allIDs) {
		t.Fatalf("the table changed: %d rows, %v", n, err)
	}

	t.Run("id of the wrong type for the key", func(t *testing.T) {
		events, err := postgres.New(pool, postgres.Mapping{Table: "events", Key: "id", ListPath: "events", Columns: map[string]string{"kind": "kind"}})
		if err != nil {
			t.Fatal(err)
		}
		for _, id := range []string{"1 OR 1=1", "abc", "99999999999999999999999", "1.5"} {
			if _, err := fetch(t, events, adapters.Request{Path: "events/" + id, Fields: []string{"kind"}}); !errors.Is(err, adapters.ErrNotFound) {
				t.Errorf("id %q: got %v, want ErrNotFound", id, err)
			}
		}
		got, err := fetch(t, events, adapters.Request{Path: "events/2", Fields: []string{"kind"}})
		if err != nil || !reflect.DeepEqual(got, map[string]any{"kind": "death"}) {
			t.Errorf("events/2: got %v, %v", got, err)
		}
	})
}

func TestFetchPathsAndList(t *testing.T) {
	m := citizenMapping("citizens")
	m.MaxRows = 3
	a, _, tr := setup(t, m)
	tests := []struct {
		name    string
		path    string
		query   url.Values
		wantIDs []string
		wantErr error
	}{
		{"list stops at MaxRows", "citizens", nil, allIDs[:3], nil},
		{"limit", "citizens", url.Values{"limit": {"2"}}, allIDs[:2], nil},
		{"after", "citizens", url.Values{"after": {allIDs[1]}}, allIDs[2:5], nil},
		{"after and limit", "citizens", url.Values{"after": {allIDs[2]}, "limit": {"1"}}, allIDs[3:4], nil},
		{"after the end", "citizens", url.Values{"after": {"999"}}, []string{}, nil},
		{"after with a quote", "citizens", url.Values{"after": {"0' OR '1'='1"}}, allIDs[:3], nil},
		{"unknown parameters ignored", "citizens", url.Values{"orderBy": {"full_name; DROP TABLE citizens"}}, allIDs[:3], nil},
		{"limit above MaxRows", "citizens", url.Values{"limit": {"4"}}, nil, postgres.ErrBadQuery},
		{"limit zero", "citizens", url.Values{"limit": {"0"}}, nil, postgres.ErrBadQuery},
		{"limit not a number", "citizens", url.Values{"limit": {"1; DROP TABLE citizens"}}, nil, postgres.ErrBadQuery},
		{"limit twice", "citizens", url.Values{"limit": {"1", "2"}}, nil, postgres.ErrBadQuery},
		{"empty id", "citizens/", nil, nil, adapters.ErrNotFound},
		{"two segments", "citizens/001085001234/x", nil, nil, adapters.ErrNotFound},
		{"other collection", "people/001085001234", nil, nil, adapters.ErrNotFound},
		{"case differs", "Citizens", nil, nil, adapters.ErrNotFound},
		{"leading slash", "/citizens", nil, nil, adapters.ErrNotFound},
		{"no such record", "citizens/001085009999", nil, nil, adapters.ErrNotFound},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := fetch(t, a, adapters.Request{Path: tt.path, Query: tt.query, Fields: []string{"personalId"}})
			if tt.wantErr != nil {
				if !errors.Is(err, tt.wantErr) {
					t.Fatalf("got %v, want %v", err, tt.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			ids := []string{}
			for _, r := range got.([]any) {
				ids = append(ids, r.(map[string]any)["personalId"].(string))
			}
			if !reflect.DeepEqual(ids, tt.wantIDs) {
				t.Errorf("got %v, want %v", ids, tt.wantIDs)
			}
			q := tr.last(t)
			if !strings.Contains(q.sql, ` ORDER BY "personal_id" LIMIT $`) {
				t.Errorf("list SQL %s", q.sql)
			}
			for _, vs := range tt.query {
				for _, v := range vs {
					if len(v) > 2 && strings.Contains(q.sql, v) {
						t.Errorf("query value %q appears in the SQL text %s", v, q.sql)
					}
				}
			}
		})
	}
}

func TestFetchNonUniqueKey(t *testing.T) {
	a, _, _ := setup(t, citizenMapping("twice_citizens"))
	if _, err := fetch(t, a, adapters.Request{Path: "citizens/001085001234", Fields: []string{"fullName"}}); !errors.Is(err, adapters.ErrBackend) {
		t.Fatalf("got %v, want ErrBackend for a key matching two rows", err)
	}
}

func TestFetchTimeout(t *testing.T) {
	a, _, _ := setup(t, citizenMapping("slow_citizens"))
	ctx, cancel := context.WithTimeout(t.Context(), 200*time.Millisecond)
	defer cancel()
	start := time.Now()
	_, err := a.Fetch(ctx, adapters.Request{Dataset: testDataset, Path: "citizens/001085001234", Fields: []string{"fullName"}})
	if !errors.Is(err, adapters.ErrTimeout) {
		t.Fatalf("got %v, want ErrTimeout", err)
	}
	if d := time.Since(start); d > 2*time.Second {
		t.Errorf("took %v with a 200ms deadline", d)
	}

	ctx, cancel = context.WithCancel(t.Context())
	cancel()
	if _, err := a.Fetch(ctx, adapters.Request{Dataset: testDataset, Path: "citizens", Fields: []string{"fullName"}}); !errors.Is(err, context.Canceled) || errors.Is(err, adapters.ErrTimeout) {
		t.Fatalf("cancelled: got %v, want context.Canceled", err)
	}
}

func TestCheck(t *testing.T) {
	a, pool, _ := setup(t, citizenMapping("citizens"))
	if err := a.Check(t.Context()); err != nil {
		t.Fatalf("Check: %v", err)
	}
	tests := []struct {
		name string
		m    postgres.Mapping
	}{
		{"missing table", citizenMapping("no_such_table")},
		{"missing column", func() postgres.Mapping {
			m := citizenMapping("citizens")
			m.Columns["bloodType"] = "blood_type"
			return m
		}()},
		{"missing key", func() postgres.Mapping {
			m := citizenMapping("citizens")
			m.Key = "id"
			return m
		}()},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			bad, err := postgres.New(pool, tt.m)
			if err != nil {
				t.Fatal(err)
			}
			if err := bad.Check(t.Context()); !errors.Is(err, adapters.ErrBackend) {
				t.Fatalf("got %v, want ErrBackend", err)
			}
		})
	}
}
