package main

import (
	"bytes"
	"context"
	"crypto/ed25519"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"

	"github.com/lienthong/lienthong/audit"
)

// runCLI runs one lienthong command in-process and returns its output.
func runCLI(t *testing.T, args ...string) (string, error) {
	t.Helper()
	root := newRootCommand()
	var out bytes.Buffer
	root.SetOut(&out)
	root.SetErr(&out)
	root.SetArgs(args)
	err := root.ExecuteContext(context.Background())
	return out.String(), err
}

// The audit commands over a real log: verify passes, prove's proof checks
// without the log, and after a changed byte verify fails naming the
// position, the gateway refuses the log, and set-aside lets it start again.
func TestAuditCommands(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "audit.jsonl")
	key := ed25519.NewKeyFromSeed(bytes.Repeat([]byte{3}, ed25519.SeedSize))
	var mu sync.Mutex
	var published []audit.Checkpoint
	opts := audit.Options{Gateway: "VN:GOV:000.00.00.G01:GW", Key: key, CheckpointEvery: 16,
		SegmentBytes: 8 << 10, // several segments
		OnCheckpoint: func(c audit.Checkpoint) { mu.Lock(); published = append(published, c); mu.Unlock() }}
	s, err := audit.OpenFile(path, opts)
	if err != nil {
		t.Fatal(err)
	}
	for i := range 120 {
		if err := audit.Write(context.Background(), s, &audit.Record{ExchangeID: fmt.Sprintf("x%03d", i), Phase: audit.Outcome}); err != nil {
			t.Fatal(err)
		}
	}
	s.Close()
	files, _ := audit.LogFiles(path)
	if len(files) < 3 {
		t.Fatalf("%d segment files, want rotation to have made several", len(files))
	}
	cps := filepath.Join(dir, "checkpoints.json")
	bs, _ := json.Marshal(published)
	os.WriteFile(cps, bs, 0o600)

	out, err := runCLI(t, "audit", "verify", path, "--checkpoints", cps)
	if err != nil || !strings.Contains(out, "120 records") {
		t.Fatalf("verify: %v\n%s", err, out)
	}
	out, err = runCLI(t, "audit", "read", path, "-o", "json")
	if err != nil || strings.Count(out, "\n") != 120 {
		t.Fatalf("read: %v, %d lines", err, strings.Count(out, "\n"))
	}
	out, err = runCLI(t, "audit", "prove", path, "--seq", "5")
	if err != nil {
		t.Fatalf("prove: %v\n%s", err, out)
	}
	proof := filepath.Join(dir, "proof.json")
	os.WriteFile(proof, []byte(out), 0o600)
	if out, err := runCLI(t, "audit", "verify", "--proof", proof); err != nil || !strings.Contains(out, "ok: entry 5") {
		t.Fatalf("verify --proof: %v\n%s", err, out)
	}
	os.WriteFile(proof, bytes.Replace([]byte(out), []byte(`x00`), []byte(`x99`), 1), 0o600)
	if _, err := runCLI(t, "audit", "verify", "--proof", proof); err == nil {
		t.Fatal("a changed proof verified")
	}

	// Damage the active segment: one changed byte in its first record.
	active := mustReadFile(t, path)
	i := bytes.Index(active, []byte(`"exchangeId":"x`)) + len(`"exchangeId":"`)
	active[i] = 'y'
	os.WriteFile(path, active, 0o600)
	_, err = runCLI(t, "audit", "verify", path)
	if err == nil || !strings.Contains(err.Error(), "damaged at seq") || !strings.Contains(err.Error(), "last good checkpoint") {
		t.Fatalf("verify of a damaged log: %v", err)
	}
	if _, err := audit.OpenFile(path, opts); err == nil || !strings.Contains(err.Error(), "damaged at seq") {
		t.Fatalf("the sink opened a damaged log: %v", err)
	}
	if !bytes.Equal(mustReadFile(t, path), active) {
		t.Fatal("the refused log changed")
	}
	if out, err := runCLI(t, "audit", "set-aside", path); err != nil || !strings.Contains(out, ".damaged") {
		t.Fatalf("set-aside: %v %s", err, out)
	}
	s, err = audit.OpenFile(path, opts)
	if err != nil {
		t.Fatalf("after set-aside: %v", err)
	}
	s.Close()
}

func mustReadFile(t *testing.T, path string) []byte {
	t.Helper()
	bs, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	return bs
}
