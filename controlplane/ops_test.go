package controlplane_test

import (
	"context"
	"crypto/tls"
	"encoding/json"
	"log/slog"
	"net/http"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/prometheus/common/expfmt"
	"github.com/prometheus/common/model"

	"github.com/lienthong/lienthong/controlplane"
	"github.com/lienthong/lienthong/controlplane/metrics"
)

// TestOperationsListener runs a control plane with its operations
// listener: /readyz is 200 with every check named, and /metrics counts API
// requests under their route pattern, never the path with its ids.
func TestOperationsListener(t *testing.T) {
	ctx, cancel := context.WithCancel(context.Background())
	ready := make(chan controlplane.Ready, 1)
	var wg sync.WaitGroup
	wg.Go(func() {
		err := controlplane.Run(ctx, controlplane.Config{DataDir: t.TempDir(), Listen: "127.0.0.1:0", MetricsListen: ":0", Log: slog.New(slog.DiscardHandler)},
			func(r controlplane.Ready) { ready <- r })
		if err != nil {
			t.Errorf("control plane: %v", err)
		}
	})
	t.Cleanup(func() { cancel(); wg.Wait() })
	var r controlplane.Ready
	select {
	case r = <-ready:
	case <-time.After(30 * time.Second):
		t.Fatal("control plane did not start")
	}
	if !strings.HasPrefix(r.MetricsAddress, "127.0.0.1:") {
		t.Fatalf("a host-less metrics address listens on %s, not loopback", r.MetricsAddress)
	}
	resp, err := http.Get("http://" + r.MetricsAddress + "/readyz")
	if err != nil {
		t.Fatal(err)
	}
	var checks map[string]string
	_ = json.NewDecoder(resp.Body).Decode(&checks)
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK || len(checks) != 5 {
		t.Fatalf("readyz: %d %v", resp.StatusCode, checks)
	}

	// The management CA is not what is tested here.
	api := &http.Client{Transport: &http.Transport{TLSClientConfig: &tls.Config{InsecureSkipVerify: true}}}
	call := func(path, token string) int {
		req, _ := http.NewRequest(http.MethodGet, r.URL+path, nil)
		if token != "" {
			req.Header.Set("Authorization", "Bearer "+token)
		}
		resp, err := api.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		return resp.StatusCode
	}
	const secretLooking = "000.00.00.H99"
	for range 3 {
		if s := call("/v1/members/"+secretLooking, ""); s != http.StatusUnauthorized {
			t.Fatalf("unauthenticated: %d", s)
		}
	}
	if s := call("/v1/members/"+secretLooking, r.AdminToken); s != http.StatusNotFound {
		t.Fatalf("unknown member: %d", s)
	}
	if s := call("/no/such/route", ""); s != http.StatusNotFound {
		t.Fatalf("unknown route: %d", s)
	}

	resp, err = http.Get("http://" + r.MetricsAddress + "/metrics")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	p := expfmt.NewTextParser(model.UTF8Validation)
	mfs, err := p.TextToMetricFamilies(resp.Body)
	if err != nil {
		t.Fatalf("the exposition does not parse: %v", err)
	}
	count := map[[2]string]float64{}
	for _, m := range mfs[metrics.APIRequestsTotal].GetMetric() {
		var route, status string
		for _, l := range m.GetLabel() {
			if strings.Contains(l.GetValue(), secretLooking) {
				t.Errorf("a path id became a label: %s", l.GetValue())
			}
			switch l.GetName() {
			case "route":
				route = l.GetValue()
			case "status":
				status = l.GetValue()
			}
		}
		count[[2]string{route, status}] += m.GetCounter().GetValue()
	}
	for k, want := range map[[2]string]float64{
		{"GET /v1/members/{code}", "401"}: 3,
		{"GET /v1/members/{code}", "404"}: 1,
		{"unmatched", "404"}:              1,
	} {
		if count[k] != want {
			t.Errorf("%v: %v, want %v (all: %v)", k, count[k], want, count)
		}
	}
	for _, name := range []string{metrics.AccessRequests, metrics.GrantsActive, metrics.GrantsExpiring, metrics.SystemsAssessmentLapsing,
		metrics.CertificatesIssuedTotal, metrics.CertificatesRevokedTotal, metrics.ReadyCheck} {
		if mfs[name] == nil {
			t.Errorf("%s is not exposed", name)
		}
	}
}
