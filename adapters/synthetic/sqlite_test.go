package synthetic

import (
	"context"
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"path/filepath"
	"testing"
)

// TestSQLiteStoreLoadsOnceAndServesTheGeneratedRecords loads a population
// file, reopens it (nothing is generated again, even with other arguments)
// and serves the very records the generator made, through the REST routes
// the gateway's adapter calls.
func TestSQLiteStoreLoadsOnceAndServesTheGeneratedRecords(t *testing.T) {
	ctx := context.Background()
	path := filepath.Join(t.TempDir(), "population.sqlite")
	n := 1200
	// A load stopped half-way leaves nothing behind: the next open loads
	// the whole set.
	stopped, cancel := context.WithCancel(ctx)
	cancel()
	if _, _, err := OpenSQLite(stopped, path, n, 7); err == nil {
		t.Fatal("a load whose context had ended succeeded")
	}
	st, created, err := OpenSQLite(ctx, path, n, 7)
	if err != nil {
		t.Fatal(err)
	}
	if !created || st.Count != n || st.Seed != 7 {
		t.Fatalf("first open: created %v, count %d, seed %d", created, st.Count, st.Seed)
	}
	st.Close()
	st, created, err = OpenSQLite(ctx, path, 10, 8)
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	if created || st.Count != n || st.Seed != 7 {
		t.Fatalf("reopen generated again or changed: created %v, count %d, seed %d", created, st.Count, st.Seed)
	}
	want := Citizens(3, 7)
	srv := httptest.NewServer(st.Handler())
	defer srv.Close()
	for _, c := range want {
		resp, err := http.Get(srv.URL + "/citizens/" + c.PersonalID)
		if err != nil {
			t.Fatal(err)
		}
		body, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		wantJSON, _ := json.Marshal(&c)
		if resp.StatusCode != 200 || string(body) != string(wantJSON) {
			t.Errorf("%s: %d %s\nwant %s", c.PersonalID, resp.StatusCode, body, wantJSON)
		}
	}
	for _, tc := range []struct {
		path   string
		status int
	}{
		{"/citizens/001000000000", 404},
		{"/citizens?limit=0", 400},
		{"/citizens?limit=2&after=" + want[0].PersonalID, 200},
		{"/nothing", 404},
	} {
		resp, err := http.Get(srv.URL + tc.path)
		if err != nil {
			t.Fatal(err)
		}
		body, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		if resp.StatusCode != tc.status {
			t.Errorf("%s: %d %s", tc.path, resp.StatusCode, body)
		}
		if tc.status == 200 {
			var page []Citizen
			if err := json.Unmarshal(body, &page); err != nil || len(page) != 2 || page[0].PersonalID <= want[0].PersonalID {
				t.Errorf("%s: page %v (%v)", tc.path, page, err)
			}
		}
	}
}
