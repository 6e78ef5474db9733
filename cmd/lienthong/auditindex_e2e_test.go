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
	"testing"
	"time"

	"github.com/lienthong/lienthong/audit"
	"github.com/lienthong/lienthong/audit/index"
	"github.com/lienthong/lienthong/audit/index/indextest"
)

// The index is rebuilt from log files through the same checks as shipping,
// twice without doubling anything, and a running control plane answers
// auditor queries, the flow matrix and the export from it.
func TestReindexThenQueryThroughTheCLI(t *testing.T) {
	dir := t.TempDir()
	const gw = "VN:GOV:000.00.00.G01:GW"
	// A real gateway log: the audit package's writer, with checkpoints and
	// segments sealed by size.
	logFile := filepath.Join(dir, "gateway-audit.jsonl")
	key := ed25519.NewKeyFromSeed(bytes.Repeat([]byte{3}, ed25519.SeedSize))
	sink, err := audit.OpenFile(logFile, audit.Options{Gateway: gw, Key: key, CheckpointEvery: 16, SegmentBytes: 8 << 10})
	if err != nil {
		t.Fatal(err)
	}
	base := time.Date(2026, 11, 20, 8, 0, 0, 0, time.UTC)
	for i := 0; i < 25; i++ {
		r := indextest.Outcome(fmt.Sprintf("x-%d", i), "VN:GOV:000.00.00.G14:BHXH", "VN:GOV:000.00.00.G01:CSDLDC", "", base.Add(time.Duration(i)*time.Second))
		if err := audit.Write(context.Background(), sink, &r); err != nil {
			t.Fatal(err)
		}
	}
	if err := sink.Close(); err != nil {
		t.Fatal(err)
	}
	files, err := audit.LogFiles(logFile)
	if err != nil {
		t.Fatal(err)
	}
	rep, err := audit.Verify(files, nil)
	if err != nil {
		t.Fatal(err)
	}
	entries := int(rep.Last.Seq)
	data := filepath.Join(dir, "cp")
	for i := 0; i < 2; i++ {
		out := mustCLI(t, nil, "", "audit", "reindex", "--data-dir", data, logFile)
		if want := fmt.Sprintf("%d entries read, the index now expects seq %d", entries, entries+1); !strings.Contains(out, want) {
			t.Fatalf("reindex run %d: %s, want %q", i+1, out, want)
		}
	}

	env := controlPlane(t, data)
	if fi, err := os.Stat(filepath.Join(data, index.SubjectKeyFile)); err != nil || fi.Mode().Perm() != 0o600 || fi.Size() != 32 {
		t.Fatalf("subject key file: %v %v", fi, err)
	}
	tok := tokenOf(env)
	var page index.Page[index.Exchange]
	if err := json.Unmarshal([]byte(mustCLI(t, env, tok, "audit", "exchanges", "-o", "json", "--limit", "1000")), &page); err != nil || len(page.Items) != 25 {
		t.Fatalf("exchanges after reindexing twice: %d, %v", len(page.Items), err)
	}
	if out := mustCLI(t, env, tok, "audit", "flows"); !strings.Contains(out, "000.00.00.G14") || !strings.Contains(out, "25") {
		t.Fatalf("flows:\n%s", out)
	}
	export := filepath.Join(dir, "export.jsonl")
	mustCLI(t, env, tok, "audit", "export", "--out", export, "--status", "200")
	b, err := os.ReadFile(export)
	if err != nil || bytes.Count(b, []byte("\n")) != 25 {
		t.Fatalf("export: %d lines, %v", bytes.Count(b, []byte("\n")), err)
	}
	if out := mustCLI(t, env, tok, "audit", "alerts"); strings.Count(strings.TrimSpace(out), "\n") != 0 {
		t.Fatalf("alerts after a clean reindex:\n%s", out)
	}
}
