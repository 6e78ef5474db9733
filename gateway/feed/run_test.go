package feed

import (
	"bytes"
	"context"
	"path/filepath"
	"runtime"
	"strings"
	"testing"
	"time"

	"github.com/lienthong/lienthong/audit"
)

// runWithGoroutines counts the goroutines runWith started that are still
// running, from the stacks of all goroutines.
func runWithGoroutines() int {
	buf := make([]byte, 1<<20)
	for {
		n := runtime.Stack(buf, true)
		if n < len(buf) {
			return bytes.Count(buf[:n], []byte("created by github.com/lienthong/lienthong/gateway/feed.runWith"))
		}
		buf = make([]byte, 2*len(buf))
	}
}

// TestRunFailingLateLeavesNothingRunning: a router that fails after it has
// started its policy reloads (here: its outbox's DSN file is missing)
// returns with those reloads stopped, though its caller's context lives
// on, and with its audit log closed (another process may open it).
func TestRunFailingLateLeavesNothingRunning(t *testing.T) {
	w := newWorld(t, []string{"127.0.0.1:1"})
	cfg, err := LoadConfig(w.config)
	if err != nil {
		t.Fatal(err)
	}
	cfg.Outbox = &OutboxConfig{DSNFile: filepath.Join(t.TempDir(), "missing.dsn")}
	before := runWithGoroutines()
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	if err := Run(ctx, cfg, benchLog(), RunOptions{}); err == nil || !strings.Contains(err.Error(), "outbox dsn") {
		t.Fatalf("error %v, want the outbox's DSN file", err)
	}
	// The reload loop leaves at its next look at the context.
	for deadline := time.Now().Add(10 * time.Second); runWithGoroutines() > before; time.Sleep(10 * time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatalf("%d goroutines of the failed router still run", runWithGoroutines()-before)
		}
	}
	ckey, err := audit.LoadKey(cfg.AuditFile + ".checkpoint.key")
	if err != nil {
		t.Fatal(err)
	}
	sink, err := audit.OpenFile(cfg.AuditFile, audit.Options{Gateway: cfg.ID, Key: ckey})
	if err != nil {
		t.Fatalf("the failed router still holds its audit log: %v", err)
	}
	_ = sink.Close()
}
