package synthetic_test

import (
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"reflect"
	"slices"
	"sort"
	"strings"
	"testing"

	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/lienthong/lienthong/adapters"
	"github.com/lienthong/lienthong/adapters/postgres"
	"github.com/lienthong/lienthong/adapters/rest"
	"github.com/lienthong/lienthong/adapters/synthetic"
	"github.com/lienthong/lienthong/catalog"
	"github.com/lienthong/lienthong/catalog/storetest"
)

func sortedIDs(cs []synthetic.Citizen) []string {
	ids := make([]string, len(cs))
	for i, c := range cs {
		ids[i] = c.PersonalID
	}
	sort.Strings(ids)
	return ids
}

func TestHandler(t *testing.T) {
	citizens := synthetic.Citizens(250, 3)
	ids := sortedIDs(citizens)
	srv := httptest.NewServer(synthetic.Handler(citizens))
	t.Cleanup(srv.Close)
	get := func(t *testing.T, method, path string) (int, string, []byte) {
		t.Helper()
		req, err := http.NewRequestWithContext(t.Context(), method, srv.URL+path, nil)
		if err != nil {
			t.Fatal(err)
		}
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		body, err := io.ReadAll(resp.Body)
		if err != nil {
			t.Fatal(err)
		}
		return resp.StatusCode, resp.Header.Get("Content-Type"), body
	}
	listIDs := func(t *testing.T, body []byte) []string {
		t.Helper()
		var records []synthetic.Citizen
		if err := json.Unmarshal(body, &records); err != nil {
			t.Fatal(err)
		}
		out := []string{}
		for _, r := range records {
			out = append(out, r.PersonalID)
		}
		return out
	}

	want0, _ := json.Marshal(citizens[0])
	tests := []struct {
		name       string
		method     string
		path       string
		wantStatus int
		wantType   string
		wantBody   []byte
		wantIDs    []string
	}{
		{"one record", "GET", "/citizens/" + citizens[0].PersonalID, 200, "application/json", want0, nil},
		{"unknown id", "GET", "/citizens/001085999999", 404, "application/problem+json", nil, nil},
		{"malformed id", "GET", "/citizens/1'%20OR%20'1'='1", 404, "application/problem+json", nil, nil},
		{"default page", "GET", "/citizens", 200, "application/json", nil, ids[:100]},
		{"limit", "GET", "/citizens?limit=5", 200, "application/json", nil, ids[:5]},
		{"after", "GET", "/citizens?limit=3&after=" + ids[10], 200, "application/json", nil, ids[11:14]},
		{"after an unknown id", "GET", "/citizens?limit=2&after=" + ids[10] + "0", 200, "application/json", nil, ids[11:13]},
		{"past the end", "GET", "/citizens?after=999999999999", 200, "application/json", nil, []string{}},
		{"limit zero", "GET", "/citizens?limit=0", 400, "application/problem+json", nil, nil},
		{"limit too large", "GET", "/citizens?limit=1001", 400, "application/problem+json", nil, nil},
		{"limit twice", "GET", "/citizens?limit=1&limit=2", 400, "application/problem+json", nil, nil},
		{"limit not a number", "GET", "/citizens?limit=ten", 400, "application/problem+json", nil, nil},
		{"POST", "POST", "/citizens", 405, "application/problem+json", nil, nil},
		{"DELETE a record", "DELETE", "/citizens/" + citizens[0].PersonalID, 405, "application/problem+json", nil, nil},
		{"other path", "GET", "/admin", 404, "application/problem+json", nil, nil},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			status, ctype, body := get(t, tt.method, tt.path)
			if status != tt.wantStatus || ctype != tt.wantType {
				t.Fatalf("got %d %s, want %d %s: %s", status, ctype, tt.wantStatus, tt.wantType, body)
			}
			if tt.wantBody != nil && string(body) != string(tt.wantBody) {
				t.Errorf("body\n%s\nwant\n%s", body, tt.wantBody)
			}
			if tt.wantIDs != nil {
				if got := listIDs(t, body); !reflect.DeepEqual(got, tt.wantIDs) {
					t.Errorf("got %v, want %v", got, tt.wantIDs)
				}
			}
			if strings.HasPrefix(tt.wantType, "application/problem") {
				var p struct {
					Status int    `json:"status"`
					Title  string `json:"title"`
				}
				if err := json.Unmarshal(body, &p); err != nil || p.Status != status || p.Title == "" {
					t.Errorf("not a problem document: %s", body)
				}
			}
		})
	}
	t.Run("paging reaches every record once", func(t *testing.T) {
		var all []string
		after := ""
		for range len(ids) { // at least one record per page
			path := "/citizens?limit=7"
			if after != "" {
				path += "&after=" + after
			}
			_, _, body := get(t, "GET", path)
			page := listIDs(t, body)
			if len(page) == 0 {
				break
			}
			all = append(all, page...)
			after = page[len(page)-1]
		}
		if !reflect.DeepEqual(all, ids) {
			t.Errorf("paging gave %d ids, want %d in order", len(all), len(ids))
		}
	})
}

// populationDataset is the published population dataset, as adapters see it.
func populationDataset(t *testing.T) *catalog.Dataset {
	t.Helper()
	doc, err := os.ReadFile("../../examples/population.yaml")
	if err != nil {
		t.Fatal(err)
	}
	sum := sha256.Sum256(doc)
	return &catalog.Dataset{System: "VN:GOV:000.00.00.G01:CSDLDC", Code: "population", Version: 1,
		RecordSchema: "Citizen", Digest: hex.EncodeToString(sum[:]), Document: doc}
}

func readJSON(t *testing.T, resp *adapters.Response) any {
	t.Helper()
	defer resp.Body.Close()
	raw, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	var v any
	if err := json.Unmarshal(raw, &v); err != nil {
		t.Fatalf("%v: %s", err, raw)
	}
	return v
}

// TestHandlerThroughRESTAdapter serves synthetic citizens to the REST
// adapter under the population dataset's own document.
func TestHandlerThroughRESTAdapter(t *testing.T) {
	citizens := synthetic.Citizens(200, 5)
	srv := httptest.NewServer(synthetic.Handler(citizens))
	t.Cleanup(srv.Close)
	a, err := rest.New(rest.Config{BaseURL: srv.URL})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(a.Close)
	ds := populationDataset(t)
	schema := citizenSchema(t)
	for i, c := range citizens {
		resp, err := a.Fetch(t.Context(), adapters.Request{Dataset: ds, Path: "citizens/" + c.PersonalID})
		if err != nil {
			t.Fatalf("%s: %v", c.PersonalID, err)
		}
		got := readJSON(t, resp)
		if want := decode(t, c); !reflect.DeepEqual(got, want) {
			t.Fatalf("%s: got %v\nwant %v", c.PersonalID, got, want)
		}
		if err := validate(t, schema, got, i < 5); err != nil {
			t.Fatalf("%s: %v", c.PersonalID, err)
		}
	}
	if _, err := a.Fetch(t.Context(), adapters.Request{Dataset: ds, Path: "citizens/001085999999"}); !errors.Is(err, adapters.ErrNotFound) {
		t.Errorf("unknown id: got %v", err)
	}
}

// freshPool creates database lt_<random> on the test server, dropped when
// the test ends.
func freshPool(t *testing.T) *pgxpool.Pool {
	t.Helper()
	cfg, err := pgxpool.ParseConfig(storetest.FreshPostgresDatabase(t))
	if err != nil {
		t.Fatal(err)
	}
	cfg.MaxConns = 4
	pool, err := pgxpool.NewWithConfig(t.Context(), cfg)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(pool.Close)
	return pool
}

// TestLoadPostgres loads citizens and reads them back through the
// PostgreSQL adapter: the flat table re-nests into exactly the records
// the REST handler serves.
func TestLoadPostgres(t *testing.T) {
	pool := freshPool(t)
	citizens := synthetic.Citizens(400, 11)
	if err := synthetic.LoadPostgres(t.Context(), pool, "citizens", citizens); err != nil {
		t.Fatal(err)
	}
	a, err := postgres.New(pool, synthetic.CitizenMapping("citizens"))
	if err != nil {
		t.Fatal(err)
	}
	if err := a.Check(t.Context()); err != nil {
		t.Fatal(err)
	}
	ds := populationDataset(t)
	schema := citizenSchema(t)
	var all []string
	for name := range schema.Properties {
		all = append(all, name)
	}

	t.Run("every record round-trips", func(t *testing.T) {
		for i, c := range citizens {
			resp, err := a.Fetch(t.Context(), adapters.Request{Dataset: ds, Path: "citizens/" + c.PersonalID, Fields: all})
			if err != nil {
				t.Fatalf("%s: %v", c.PersonalID, err)
			}
			got := readJSON(t, resp)
			if want := decode(t, c); !reflect.DeepEqual(got, want) {
				g, _ := json.Marshal(got)
				w, _ := json.Marshal(want)
				t.Fatalf("%s:\ngot  %s\nwant %s", c.PersonalID, g, w)
			}
			if err := validate(t, schema, got, i < 5); err != nil {
				t.Fatalf("%s: %v", c.PersonalID, err)
			}
		}
	})
	t.Run("granted subset", func(t *testing.T) {
		c := citizens[0]
		resp, err := a.Fetch(t.Context(), adapters.Request{Dataset: ds, Path: "citizens/" + c.PersonalID,
			Fields: []string{"fullName", "permanentResidence.provinceCode", "relatives.fullName"}})
		if err != nil {
			t.Fatal(err)
		}
		got := readJSON(t, resp).(map[string]any)
		want := decode(t, c).(map[string]any)
		if !reflect.DeepEqual(got, map[string]any{
			"fullName":           want["fullName"],
			"permanentResidence": map[string]any{"provinceCode": c.PermanentResidence.ProvinceCode},
			"relatives":          want["relatives"], // a json column: the gateway projects it
		}) {
			t.Errorf("got %v", got)
		}
	})
	t.Run("list and row scope", func(t *testing.T) {
		var inHCMC []string
		for _, c := range citizens {
			if c.PermanentResidence.ProvinceCode == "79" {
				inHCMC = append(inHCMC, c.PersonalID)
			}
		}
		sort.Strings(inHCMC)
		if len(inHCMC) < 10 {
			t.Fatalf("only %d citizens live in Hồ Chí Minh City", len(inHCMC))
		}
		resp, err := a.Fetch(t.Context(), adapters.Request{Dataset: ds, Path: "citizens", Fields: all,
			RowScope: &catalog.RowScope{Field: "permanentResidence.provinceCode", Values: []string{"79"}}})
		if err != nil {
			t.Fatal(err)
		}
		var got []string
		for i, r := range readJSON(t, resp).([]any) {
			m := r.(map[string]any)
			if m["permanentResidence"].(map[string]any)["provinceCode"] != "79" {
				t.Errorf("record %v outside the scope", m["personalId"])
			}
			if err := validate(t, schema, m, i < 2); err != nil {
				t.Fatal(err)
			}
			got = append(got, m["personalId"].(string))
		}
		if !reflect.DeepEqual(got, inHCMC) {
			t.Errorf("scoped list: %d records, want %d", len(got), len(inHCMC))
		}

		resp, err = a.Fetch(t.Context(), adapters.Request{Dataset: ds, Path: "citizens", Fields: []string{"personalId"}})
		if err != nil {
			t.Fatal(err)
		}
		got = got[:0]
		for _, r := range readJSON(t, resp).([]any) {
			got = append(got, r.(map[string]any)["personalId"].(string))
		}
		if !slices.Equal(got, sortedIDs(citizens)) {
			t.Errorf("list: %d ids, want all %d in order", len(got), len(citizens))
		}
	})
	t.Run("refusals", func(t *testing.T) {
		if err := synthetic.LoadPostgres(t.Context(), pool, "citizens", citizens[:1]); err == nil {
			t.Error("loading into an existing table succeeded")
		}
		for _, table := range []string{"", "Citizens", "citizens; DROP TABLE citizens", "a.b.c"} {
			if err := synthetic.LoadPostgres(t.Context(), pool, table, citizens[:1]); err == nil {
				t.Errorf("table %q accepted", table)
			}
		}
		if err := synthetic.LoadPostgres(t.Context(), nil, "x", citizens[:1]); err == nil {
			t.Error("nil pool accepted")
		}
	})
	t.Run("schema-qualified table", func(t *testing.T) {
		if _, err := pool.Exec(t.Context(), "CREATE SCHEMA demo"); err != nil {
			t.Fatal(err)
		}
		if err := synthetic.LoadPostgres(t.Context(), pool, "demo.citizens", citizens[:20]); err != nil {
			t.Fatal(err)
		}
		var n int
		if err := pool.QueryRow(t.Context(), "SELECT count(*) FROM demo.citizens").Scan(&n); err != nil || n != 20 {
			t.Fatalf("got %d rows, %v", n, err)
		}
	})
}
