package opsmux_test

import (
	"context"
	"encoding/json"
	"errors"
	"net"
	"net/http"
	"net/http/httptest"
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

// TestGroupedChecksDoNotGateReadyz: a failing check of a group (a
// component beside the process's main work) is listed on /readyz marked
// not gating and leaves it 200; /readyz/{group} fails for it, naming it,
// and lists only the group's checks; an unknown group is 404; and a
// failing ungrouped check still turns /readyz 503.
func TestGroupedChecksDoNotGateReadyz(t *testing.T) {
	var own, feeds atomic.Bool
	checks := func() []opsmux.Check {
		c := []opsmux.Check{{Name: "store"}, {Name: "feed.kafka", Group: "feeds"}, {Name: "feed.routing", Group: "feeds"}}
		if own.Load() {
			c[0].Err = errors.New("the store does not answer")
		}
		if feeds.Load() {
			c[1].Err = errors.New("the Kafka cluster does not answer")
		}
		return c
	}
	h := opsmux.Handler(nil, checks)
	get := func(path string) (int, map[string]string) {
		rec := httptest.NewRecorder()
		h.ServeHTTP(rec, httptest.NewRequest(http.MethodGet, path, nil))
		var body map[string]string
		_ = json.Unmarshal(rec.Body.Bytes(), &body)
		return rec.Code, body
	}
	for _, tc := range []struct {
		name              string
		own, feeds        bool
		ready, readyFeeds int
		kafkaOnReadyz     string
	}{
		{"all passing", false, false, http.StatusOK, http.StatusOK, opsmux.NotGating + "ok"},
		{"feeds failing", false, true, http.StatusOK, http.StatusServiceUnavailable, opsmux.NotGating + "the Kafka cluster does not answer"},
		{"own failing", true, false, http.StatusServiceUnavailable, http.StatusOK, opsmux.NotGating + "ok"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			own.Store(tc.own)
			feeds.Store(tc.feeds)
			status, body := get("/readyz")
			if status != tc.ready || body["feed.kafka"] != tc.kafkaOnReadyz || body["feed.routing"] != opsmux.NotGating+"ok" || len(body) != 3 {
				t.Errorf("/readyz: %d %v, want %d with feed.kafka %q", status, body, tc.ready, tc.kafkaOnReadyz)
			}
			status, body = get("/readyz/feeds")
			wantKafka := "ok"
			if tc.feeds {
				wantKafka = "the Kafka cluster does not answer"
			}
			if status != tc.readyFeeds || len(body) != 2 || body["feed.kafka"] != wantKafka || body["feed.routing"] != "ok" {
				t.Errorf("/readyz/feeds: %d %v, want %d and the group's two checks", status, body, tc.readyFeeds)
			}
		})
	}
	if status, _ := get("/readyz/nothing"); status != http.StatusNotFound {
		t.Errorf("/readyz of an unknown group: %d, want 404", status)
	}
}

// TestServeOnAHandedListener: Serve answers on the very listener handed to
// it (its address known before serving), and Close frees the port.
func TestServeOnAHandedListener(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := ln.Addr().String()
	s := opsmux.Serve(ln, opsmux.Handler(nil, nil), nil)
	if s.Addr() != addr {
		t.Fatalf("serving on %s, handed %s", s.Addr(), addr)
	}
	resp, err := http.Get("http://" + addr + "/readyz")
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("/readyz with no checks: %d", resp.StatusCode)
	}
	if err := s.Close(context.Background()); err != nil {
		t.Fatal(err)
	}
	again, err := net.Listen("tcp", addr)
	if err != nil {
		t.Fatalf("%s still held after Close: %v", addr, err)
	}
	_ = again.Close()
}
