package auditapi_test

import (
	"bytes"
	"context"
	"crypto/ed25519"
	"database/sql"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/lienthong/lienthong/audit"
	"github.com/lienthong/lienthong/audit/index/indextest"
	"github.com/lienthong/lienthong/audit/ship"
	"github.com/lienthong/lienthong/catalog"
	"github.com/lienthong/lienthong/controlplane/auditapi"
	"github.com/lienthong/lienthong/controlplane/client"
	"github.com/lienthong/lienthong/internal/problem"
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

// The log head a gateway reports, through the routes as the OpenAPI
// document describes them: with a shipment (header) and in a heartbeat.
// The lag is what the index lacks of the reported log; a member's auditor
// sees its own gateways' shipping only; a head that is not a positive seq
// is refused with a problem naming where, and one gateway's token cannot
// report for another.
func TestLogHeadAndShippingStatus(t *testing.T) {
	f := newFixture(t)
	ctx := context.Background()
	gwToken, err := f.admin.CreateToken(ctx, client.NewToken{Name: "mps gateway", Role: catalog.RoleMemberAdmin, Member: mps})
	if err != nil {
		t.Fatal(err)
	}
	hc := *f.srv.Client()
	hc.Transport = newDocumented(t, f.srv.URL, hc.Transport)
	gw := ship.NewClient(&hc, f.srv.URL, gwMPS, gwToken.Token)
	l := indextest.New(t, gwMPS)
	for i := 0; i < 6; i++ {
		l.Record(indextest.Outcome(fmt.Sprintf("x-%d", i), insurance, population, f.key.Subject(alice), time.Now().UTC()))
	}
	if err := gw.PutKey(ctx, l.Public()); err != nil {
		t.Fatal(err)
	}
	// Four of the seven entries shipped, the log's head (seq 7) reported.
	if _, err := gw.PostEntries(ctx, l.Lines[:4], uint64(len(l.Lines))); err != nil {
		t.Fatal(err)
	}
	rows := func(c *client.Client) []auditapi.ShippingRow {
		t.Helper()
		var out struct{ Items []auditapi.ShippingRow }
		if err := c.Do(ctx, "GET", "/v1/audit/shipping", nil, &out); err != nil {
			t.Fatal(err)
		}
		return out.Items
	}
	auditor := f.token(catalog.RoleAuditor, mps)
	got := rows(auditor)
	if len(got) != 1 || got[0].Gateway != gwMPS || got[0].Shipped != 4 || got[0].Head != 7 || got[0].Lag != 3 || got[0].HeadAt.IsZero() {
		t.Fatalf("after a shipment with its head: %+v", got)
	}
	if other := rows(f.token(catalog.RoleAuditor, vss)); len(other) != 0 {
		t.Fatalf("another member's auditor sees %+v", other)
	}
	// The rest shipped without a head, then a heartbeat: caught up.
	if _, err := gw.PostEntries(ctx, l.Lines[4:], 0); err != nil {
		t.Fatal(err)
	}
	if err := gw.PutHead(ctx, uint64(len(l.Lines))); err != nil {
		t.Fatal(err)
	}
	if got := rows(auditor); len(got) != 1 || got[0].Shipped != 7 || got[0].Lag != 0 || got[0].Behind {
		t.Fatalf("after a heartbeat at the head: %+v", got)
	}

	// Past the document (which says minimum 1), as a broken gateway would send it.
	raw := client.NewWithHTTP(f.srv.URL, gwToken.Token, f.srv.Client())
	// Heads no log can have: 0, and past math.MaxInt64 (the index stores
	// seqs signed; such a head would read back negative or wrapped).
	for _, head := range []uint64{0, 1 << 63, 1<<64 - 1} {
		if err := raw.Do(ctx, "PUT", "/v1/audit/gateways/"+gwMPS+"/head", map[string]uint64{"head": head}, nil); err == nil {
			t.Fatalf("a head of %d was taken", head)
		} else if p := wantProblem(t, err, 400, "invalid-input"); !strings.Contains(p.Detail+fmt.Sprint(p.Errors), "/head") {
			t.Fatalf("the problem does not name /head: %+v", p)
		}
	}
	for _, v := range []string{"seven", "0", "-1", "9223372036854775808", "18446744073709551615", "18446744073709551616"} {
		req, _ := http.NewRequestWithContext(ctx, "POST", f.srv.URL+"/v1/audit/gateways/"+gwMPS+"/entries", strings.NewReader(`{"entries":[]}`))
		req.Header.Set("Authorization", "Bearer "+gwToken.Token)
		req.Header.Set("Content-Type", "application/json")
		req.Header.Set(ship.HeadHeader, v)
		resp, err := f.srv.Client().Do(req)
		if err != nil {
			t.Fatal(err)
		}
		body, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		if resp.StatusCode != 400 || !strings.Contains(string(body), ship.HeadHeader) || !strings.Contains(string(body), problem.TypePrefix+"invalid-input") {
			t.Fatalf("a shipment with head %q: %d %s", v, resp.StatusCode, body)
		}
	}
	if got := rows(auditor); got[0].Head != 7 {
		t.Fatalf("a refused head was stored: %+v", got)
	}
	if err := gw.PutHead(ctx, 9); err != nil {
		t.Fatal(err)
	}
	vssToken, err := f.admin.CreateToken(ctx, client.NewToken{Name: "vss gateway", Role: catalog.RoleMemberAdmin, Member: vss})
	if err != nil {
		t.Fatal(err)
	}
	err = f.client(vssToken.Token).Do(ctx, "PUT", "/v1/audit/gateways/"+gwMPS+"/head", map[string]uint64{"head": 100}, nil)
	wantProblem(t, err, 403, "")
	if got := rows(auditor); got[0].Head != 9 {
		t.Fatalf("another member's token moved the head: %+v", got)
	}
}

// A shipment and the head it carries are stored in one transaction: when
// the head cannot be stored (a fault the database injects here), the
// gateway gets an error and none of the entries were kept, so its resend
// is the whole shipment; a refused shipment is answered with its own
// problem (409 audit-fork), its head stored all the same.
func TestShipmentAndHeadCommitTogether(t *testing.T) {
	f := newFixture(t)
	ctx := context.Background()
	gwToken, err := f.admin.CreateToken(ctx, client.NewToken{Name: "mps gateway", Role: catalog.RoleMemberAdmin, Member: mps})
	if err != nil {
		t.Fatal(err)
	}
	gw := ship.NewClient(f.srv.Client(), f.srv.URL, gwMPS, gwToken.Token)
	l := indextest.New(t, gwMPS)
	for i := 0; i < 6; i++ {
		l.Record(indextest.Outcome(fmt.Sprintf("x-%d", i), insurance, population, f.key.Subject(alice), time.Now().UTC()))
	}
	if err := gw.PutKey(ctx, l.Public()); err != nil {
		t.Fatal(err)
	}
	if _, err := gw.PostEntries(ctx, l.Lines[:3], 6); err != nil {
		t.Fatal(err)
	}
	alt := append(append([]byte(nil), l.Lines[1]...), ' ')
	var ae *ship.Error
	if _, err := gw.PostEntries(ctx, [][]byte{alt}, 8); !errors.As(err, &ae) || ae.Status != http.StatusConflict || !ae.Problem("audit-fork") {
		t.Fatalf("a forked shipment with its head: %v; want 409 audit-fork", err)
	}
	if st, err := f.store.(interface{ DB() *sql.DB }).DB().Exec(`CREATE TRIGGER refuse_head BEFORE UPDATE ON audit_gateways
		WHEN NEW.log_head = 4242 BEGIN SELECT RAISE(ABORT, 'injected: the head cannot be stored'); END`); err != nil {
		t.Fatal(st, err)
	}
	if _, err := gw.PostEntries(ctx, l.Lines[3:], 4242); !errors.As(err, &ae) || ae.Status != http.StatusInternalServerError {
		t.Fatalf("a shipment whose head could not be stored: %v; want 500", err)
	}
	pos, err := gw.Position(ctx)
	if err != nil || pos.Next != 4 {
		t.Fatalf("entries committed under an error answer: position %+v %v", pos, err)
	}
	var out struct{ Items []auditapi.ShippingRow }
	if err := f.admin.Do(ctx, "GET", "/v1/audit/shipping", nil, &out); err != nil || len(out.Items) != 1 || out.Items[0].Head != 8 {
		t.Fatalf("shipping after a refused shipment with head 8: %+v %v", out.Items, err)
	}
}
