package gateway_test

import (
	"net/http"
	"os"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/lienthong/lienthong/gateway"
)

// TestReadyzNamesEachFailingCondition breaks one condition at a time on the
// consumer gateway of a running federation and reads /readyz on its
// operations listener: each turns it 503 and is named with why. The
// policy bundle cannot fail on its own in a running gateway (it is
// installed with the configuration, as one); its check is tested in
// ready_internal_test.go.
func TestReadyzNamesEachFailingCondition(t *testing.T) {
	for _, tc := range []struct {
		check, why string
		// others that fail with it, by consequence.
		also []string
		brk  func(f *federation, cfg *gateway.Config)
	}{
		{"configuration", "stale", nil, func(f *federation, _ *gateway.Config) {
			f.clock.Store(int64(11 * time.Minute))
		}},
		{"certificate", "expired", []string{"configuration"}, func(f *federation, _ *gateway.Config) {
			f.clock.Store(int64(73 * time.Hour))
		}},
		{"audit-log", "not writable", nil, func(_ *federation, cfg *gateway.Config) {
			if err := os.Remove(cfg.AuditFile); err != nil {
				t.Fatal(err)
			}
		}},
	} {
		t.Run(tc.check, func(t *testing.T) {
			ln := liveListener(t)
			ops := ln.Addr().String()
			f := newFederationFull(t, 0, nil, nil, []gateway.Option{gateway.WithMetricsListener(ln)})
			status, body := readyz(t, ops)
			if status != http.StatusOK || len(body) != 4 {
				t.Fatalf("healthy: %d %v", status, body)
			}
			cfg := &gateway.Config{AuditFile: f.auditFile[vss]}
			tc.brk(f, cfg)
			status, body = readyz(t, ops)
			if status != http.StatusServiceUnavailable || !strings.Contains(body[tc.check], tc.why) {
				t.Fatalf("%s broken: %d %v", tc.check, status, body)
			}
			for name, v := range body {
				if name != tc.check && v != "ok" && !slices.Contains(tc.also, name) {
					t.Errorf("%s broken, but %s fails too: %s", tc.check, name, v)
				}
			}
		})
	}
}
