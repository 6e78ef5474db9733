package opsmux_test

import (
	"context"
	"encoding/json"
	"errors"
	"net/http"
	"strings"
	"sync/atomic"
	"testing"

	"github.com/lienthong/lienthong/internal/opsmux"
)

// TestLoopbackDefault: an address without a host never listens beyond
// loopback; one with a host is kept; a malformed one is refused.
func TestLoopbackDefault(t *testing.T) {
	for in, want := range map[string]string{":9464": "127.0.0.1:9464", "0.0.0.0:9464": "0.0.0.0:9464", "[::1]:0": "[::1]:0", "127.0.0.1:0": "127.0.0.1:0"} {
		if got, err := opsmux.LoopbackDefault(in); err != nil || got != want {
			t.Errorf("%s: %s %v, want %s", in, got, err, want)
		}
	}
	if _, err := opsmux.LoopbackDefault("9464"); err == nil {
		t.Error("an address without a port was accepted")
	}
}

// TestListenerServesHealthAndNamesFailingChecks runs a listener on
// loopback: /healthz answers while a check fails, /readyz names it with
// 503, /metrics is absent when no registry is given.
func TestListenerServesHealthAndNamesFailingChecks(t *testing.T) {
	var failing atomic.Bool
	failing.Store(true)
	checks := func() []opsmux.Check {
		c := []opsmux.Check{{Name: "store"}, {Name: "data-dir"}}
		if failing.Load() {
			c[1].Err = errors.New("the data directory cannot be written")
		}
		return c
	}
	s, err := opsmux.Listen(":0", opsmux.Handler(nil, checks), nil)
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close(context.Background())
	if !strings.HasPrefix(s.Addr(), "127.0.0.1:") {
		t.Fatalf("listening on %s", s.Addr())
	}
	get := func(path string) (int, map[string]string) {
		resp, err := http.Get("http://" + s.Addr() + path)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		var body map[string]string
		_ = json.NewDecoder(resp.Body).Decode(&body)
		return resp.StatusCode, body
	}
	if status, _ := get("/healthz"); status != http.StatusOK {
		t.Errorf("healthz: %d", status)
	}
	if status, body := get("/readyz"); status != http.StatusServiceUnavailable || body["data-dir"] != "the data directory cannot be written" || body["store"] != "ok" {
		t.Errorf("readyz: %d %v", status, body)
	}
	failing.Store(false)
	if status, _ := get("/readyz"); status != http.StatusOK {
		t.Errorf("readyz, all passing: %d", status)
	}
	if status, _ := get("/metrics"); status != http.StatusNotFound {
		t.Errorf("metrics without a registry: %d", status)
	}
}
