package auditapi_test

import (
	"bytes"
	"context"
	"crypto/ed25519"
	"fmt"
	"io"
	"log/slog"
	"path/filepath"
	"testing"
	"time"

	"github.com/lienthong/lienthong/audit"
	"github.com/lienthong/lienthong/audit/ship"
	"github.com/lienthong/lienthong/catalog"
	"github.com/lienthong/lienthong/controlplane/auditapi"
	"github.com/lienthong/lienthong/controlplane/client"
)

// The gateway's real log writer and shipper (package audit, audit/ship)
// against this API: every entry arrives once, the checkpoints verify, the
// published checkpoints are those the log holds, and `audit verify` accepts
// the log against them.
func TestRealShipperAgainstTheIndex(t *testing.T) {
	f := newFixture(t)
	ctx := context.Background()
	gwToken, err := f.admin.CreateToken(ctx, client.NewToken{Name: "mps gateway", Role: catalog.RoleMemberAdmin, Member: mps})
	if err != nil {
		t.Fatal(err)
	}
	path := filepath.Join(t.TempDir(), "audit.jsonl")
	key := ed25519.NewKeyFromSeed(bytes.Repeat([]byte{9}, ed25519.SeedSize))
	quiet := slog.New(slog.NewTextHandler(io.Discard, nil))
	var shipper *ship.Shipper
	sink, err := audit.OpenFile(path, audit.Options{Gateway: gwMPS, Key: key, CheckpointEvery: 16, SegmentBytes: 16 << 10,
		OnCheckpoint: func(c audit.Checkpoint) {
			if shipper != nil {
				shipper.Nudge(c)
			}
		}})
	if err != nil {
		t.Fatal(err)
	}
	shipper = ship.New(ship.NewClient(f.srv.Client(), f.srv.URL, gwMPS, gwToken.Token), path,
		ship.Options{Key: key.Public().(ed25519.PublicKey), Batch: 40, Poll: 10 * time.Millisecond, Log: quiet})
	runCtx, cancel := context.WithCancel(ctx)
	done := make(chan struct{})
	go func() { shipper.Run(runCtx); close(done) }()
	defer func() { cancel(); <-done }()
	const n = 120
	for i := 0; i < n; i++ {
		r := audit.Record{Time: time.Now().UTC(), ExchangeID: fmt.Sprintf("x-%03d", i), Side: "provider", Phase: audit.Outcome,
			Consumer: insurance, Provider: population, Dataset: "population", Status: 200, Subject: f.key.Subject(alice)}
		if err := audit.Write(ctx, sink, &r); err != nil {
			t.Fatal(err)
		}
	}
	if err := sink.Close(); err != nil {
		t.Fatal(err)
	}
	files, err := audit.LogFiles(path)
	if err != nil {
		t.Fatal(err)
	}
	rep, err := audit.Verify(files, nil)
	if err != nil {
		t.Fatal(err)
	}
	deadline := time.Now().Add(20 * time.Second)
	for {
		pos, err := f.admin.AuditPosition(ctx, gwMPS)
		if err != nil {
			t.Fatal(err)
		}
		if pos.Next == rep.Last.Seq+1 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("the index holds up to %d, the log up to %d", pos.Next-1, rep.Last.Seq)
		}
		time.Sleep(10 * time.Millisecond)
	}
	if as, err := f.admin.AuditAlerts(ctx, 0); err != nil || len(as) != 0 {
		t.Fatalf("alerts from a clean shipment: %+v %v", as, err)
	}
	if got := all(t, f.admin, auditapi.ExchangeQuery{}); len(got) != n {
		t.Fatalf("the index holds %d records, want %d", len(got), n)
	}
	// The published checkpoints, as `audit verify --checkpoints` reads them.
	var raw []byte
	if err := f.token(catalog.RoleAuditor, mps).Do(ctx, "GET", "/v1/audit/gateways/"+gwMPS+"/checkpoints", nil, &raw); err != nil {
		t.Fatal(err)
	}
	published, err := audit.ReadCheckpoints(bytes.NewReader(raw))
	if err != nil || len(published) == 0 || published[len(published)-1].Seq != rep.LastCheckpoint.Seq {
		t.Fatalf("published checkpoints: %d, %v (last in the log at %d)", len(published), err, rep.LastCheckpoint.Seq)
	}
	if _, err := audit.Verify(files, published); err != nil {
		t.Fatalf("the log does not verify against the checkpoints the index published: %v", err)
	}
	if err := f.token(catalog.RoleAuditor, vss).Do(ctx, "GET", "/v1/audit/gateways/"+gwMPS+"/checkpoints", nil, &raw); err == nil {
		t.Fatal("another member's auditor read the checkpoints")
	}
}
