package gateway_test

import (
	"context"
	"io"
	"log/slog"
	"net"
	"os"
	"path/filepath"
	"testing"

	"github.com/lienthong/lienthong/gateway"
)

// liveListener is a loopback port bound for a gateway's door and handed
// in live: no other process can take it between its choosing and its
// serving, as it could with a port bound, closed and named again.
func liveListener(t *testing.T) net.Listener {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = ln.Close() })
	return ln
}

// handedListeners binds the three doors a caller can hand a gateway.
func handedListeners(t *testing.T) (outbound, inbound, envoy net.Listener, opts []gateway.Option) {
	t.Helper()
	var lns [3]net.Listener
	for i := range lns {
		lns[i] = liveListener(t)
	}
	return lns[0], lns[1], lns[2], []gateway.Option{gateway.WithListeners(lns[0], lns[1]), gateway.WithEnvoyListener(lns[2])}
}

// requireFree binds each address again: a listener the gateway failed to
// close holds its port, and the bind fails.
func requireFree(t *testing.T, lns ...net.Listener) {
	t.Helper()
	for _, ln := range lns {
		again, err := net.Listen("tcp", ln.Addr().String())
		if err != nil {
			t.Errorf("%s still held after the gateway returned: %v", ln.Addr(), err)
			continue
		}
		_ = again.Close()
	}
}

// freshCopy is the provider gateway's configuration with its own state,
// audit log and masking key, so a second gateway can start from it.
func freshCopy(t *testing.T, cfg *gateway.Config) *gateway.Config {
	dir := t.TempDir()
	c := *cfg
	c.StateDir, c.AuditFile, c.MaskingKeyFile = filepath.Join(dir, "state"), filepath.Join(dir, "audit.jsonl"), filepath.Join(dir, "masking.key")
	c.Outbound.Listen, c.Inbound.Listen, c.Health.Listen, c.Envoy.Listen = "", "", "", ""
	return &c
}

// TestHandedListenersClosedWhenNewFails: from New on the gateway owns the
// listeners handed to it, so a New that fails (before or after it reads
// its options) leaves their ports free.
func TestHandedListenersClosedWhenNewFails(t *testing.T) {
	var cfg *gateway.Config
	newFederationWith(t, func(c *gateway.Config) { cfg = c })
	for _, tc := range []struct {
		name  string
		spoil func(t *testing.T, c *gateway.Config)
	}{
		{"no audit subject key", func(t *testing.T, c *gateway.Config) {
			c.AuditSubjectKeyFile = filepath.Join(t.TempDir(), "missing.key")
		}},
		{"masking key too short", func(t *testing.T, c *gateway.Config) {
			writeFile(t, c.MaskingKeyFile, []byte("short"))
		}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			c := freshCopy(t, cfg)
			tc.spoil(t, c)
			out, in, envoy, opts := handedListeners(t)
			if _, err := gateway.New(context.Background(), c, slog.New(slog.NewTextHandler(io.Discard, nil)), opts...); err == nil {
				t.Fatal("New accepted a broken configuration")
			}
			requireFree(t, out, in, envoy)
		})
	}
}

// TestHandedListenersClosedWhenRunFailsEarly: a Run that refuses to start,
// or fails while starting with some doors already serving, stops those
// doors and leaves every handed port free.
func TestHandedListenersClosedWhenRunFailsEarly(t *testing.T) {
	var cfg *gateway.Config
	newFederationWith(t, func(c *gateway.Config) { cfg = c })
	held, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer held.Close()
	for _, tc := range []struct {
		name   string
		before func(t *testing.T, c *gateway.Config) // after New, before Run
	}{
		{"not ready: audit log gone", func(t *testing.T, c *gateway.Config) {
			if err := os.Remove(c.AuditFile); err != nil {
				t.Fatal(err)
			}
		}},
		{"health port taken after two doors serve", func(t *testing.T, c *gateway.Config) {}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			c := freshCopy(t, cfg)
			c.Health.Listen = held.Addr().String()
			out, in, envoy, opts := handedListeners(t)
			ctx, cancel := context.WithCancel(context.Background())
			defer cancel()
			gw, err := gateway.New(ctx, c, slog.New(slog.NewTextHandler(io.Discard, nil)), opts...)
			if err != nil {
				t.Fatal(err)
			}
			tc.before(t, c)
			if err := gw.Run(ctx, func(gateway.Addrs) { t.Error("ready called") }); err == nil {
				t.Fatal("Run started")
			}
			requireFree(t, out, in, envoy)
		})
	}
}

// TestHandedListenersClosedWhenRunStops: a gateway that served on the
// listeners handed to it, the Envoy doors', /readyz's and the operations
// listener's included, leaves every port free once Run returns.
func TestHandedListenersClosedWhenRunStops(t *testing.T) {
	var cfg *gateway.Config
	newFederationWith(t, func(c *gateway.Config) { cfg = c })
	c := freshCopy(t, cfg)
	out, in, envoy, opts := handedListeners(t)
	health, ops := liveListener(t), liveListener(t)
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	gw, err := gateway.New(ctx, c, slog.New(slog.NewTextHandler(io.Discard, nil)),
		append(opts, gateway.WithHealthListener(health), gateway.WithMetricsListener(ops))...)
	if err != nil {
		t.Fatal(err)
	}
	var served gateway.Addrs
	done := make(chan error, 1)
	go func() { done <- gw.Run(ctx, func(a gateway.Addrs) { served = a; cancel() }) }()
	if err := <-done; err != nil {
		t.Fatal(err)
	}
	want := gateway.Addrs{Outbound: out.Addr().String(), Inbound: in.Addr().String(), Envoy: envoy.Addr().String(), Health: health.Addr().String(),
		Metrics: ops.Addr().String()}
	if served != want {
		t.Errorf("served on %+v, want the listeners handed in %+v", served, want)
	}
	requireFree(t, out, in, envoy, health, ops)
}
