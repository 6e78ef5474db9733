package gateway_test

import (
	"context"
	"encoding/json"
	"io"
	"log/slog"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/lienthong/lienthong/gateway"
)

func readyz(t *testing.T, addr string) (int, map[string]string) {
	t.Helper()
	resp, err := http.Get("http://" + addr + "/readyz")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var body map[string]string
	if err := json.NewDecoder(resp.Body).Decode(&body); err != nil {
		t.Fatal(err)
	}
	return resp.StatusCode, body
}

// TestReadyzNamesEachCheck: ready with every check passing, and not ready,
// naming the check, once the audit log cannot be written.
func TestReadyzNamesEachCheck(t *testing.T) {
	healthLn := liveListener(t)
	health := healthLn.Addr().String()
	var cfg *gateway.Config
	f := newFederationWith(t, func(c *gateway.Config) { cfg = c }, gateway.WithHealthListener(healthLn))
	status, body := readyz(t, health)
	if status != http.StatusOK || body["certificate"] != "ok" || body["audit-log"] != "ok" || body["configuration"] != "ok" {
		t.Fatalf("healthy gateway: %d %v", status, body)
	}
	if got := f.provider.Readiness(); len(got) != 4 {
		t.Errorf("%d checks, want certificate, audit-log, configuration, policy-bundle", len(got))
	}
	if err := os.Remove(cfg.AuditFile); err != nil {
		t.Fatal(err)
	}
	status, body = readyz(t, health)
	if status != http.StatusServiceUnavailable || body["audit-log"] == "ok" || body["certificate"] != "ok" {
		t.Errorf("audit log gone: %d %v", status, body)
	}
}

// TestTruncatedCertificateChainIsNotReady copies a gateway's identity with
// its certificate file cut short (the intermediate lost): the gateway must
// refuse to start, saying why, instead of answering every read with 502.
func TestTruncatedCertificateChainIsNotReady(t *testing.T) {
	var cfg *gateway.Config
	newFederationWith(t, func(c *gateway.Config) { cfg = c })
	dir := t.TempDir()
	chain, err := os.ReadFile(cfg.Identity.CertFile)
	if err != nil {
		t.Fatal(err)
	}
	second := strings.Index(string(chain), "-----BEGIN CERTIFICATE-----\n") + 1
	second += strings.Index(string(chain[second:]), "-----BEGIN CERTIFICATE-----")
	if second <= 0 {
		t.Fatalf("the chain holds one certificate: nothing to truncate\n%s", chain)
	}
	key, err := os.ReadFile(cfg.Identity.KeyFile)
	if err != nil {
		t.Fatal(err)
	}
	writeFile(t, filepath.Join(dir, "cert.pem"), chain[:second+40])
	writeFile(t, filepath.Join(dir, "key.pem"), key)
	c := *cfg
	c.Identity.KeyFile, c.Identity.CertFile = filepath.Join(dir, "key.pem"), filepath.Join(dir, "cert.pem")
	c.StateDir, c.AuditFile, c.MaskingKeyFile = filepath.Join(dir, "state"), filepath.Join(dir, "audit.jsonl"), filepath.Join(dir, "masking.key")
	c.Inbound.Listen, c.Outbound.Listen = "", ""
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	gw, err := gateway.New(ctx, &c, slog.New(slog.NewTextHandler(io.Discard, nil)), gateway.WithListeners(nil, liveListener(t)))
	if err != nil {
		// The control plane knows a gateway by its certificate: it refuses
		// a chain that does not verify before the gateway gets any
		// configuration, and the refusal says the certificate is the cause.
		if !strings.Contains(err.Error(), "certificate") {
			t.Fatalf("the refusal does not name the certificate: %v", err)
		}
		return
	}
	readyCalled := false
	err = gw.Run(ctx, func(gateway.Addrs) { readyCalled = true })
	if err == nil || readyCalled {
		t.Fatalf("a gateway with a truncated chain started (ready called: %v, err %v)", readyCalled, err)
	}
	if !strings.Contains(err.Error(), "certificate") || !strings.Contains(err.Error(), "does not verify") {
		t.Errorf("the refusal does not name the certificate check: %v", err)
	}
}
