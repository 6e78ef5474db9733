package xds_test

import (
	"context"
	"encoding/json"
	"errors"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	listenerv3 "github.com/envoyproxy/go-control-plane/envoy/config/listener/v3"
	routev3 "github.com/envoyproxy/go-control-plane/envoy/config/route/v3"
	"github.com/envoyproxy/go-control-plane/pkg/resource/v3"

	"github.com/lienthong/lienthong/catalog"
	"github.com/lienthong/lienthong/catalog/sqlstore"
	"github.com/lienthong/lienthong/controlplane/xds"
	"github.com/lienthong/lienthong/controlplane/xds/ir"
	"github.com/lienthong/lienthong/controlplane/xds/server"
)

const (
	td         = "lienthong.test"
	population = "VN:GOV:000.00.00.G01:CSDLDC"
	insurance  = "VN:GOV:000.00.00.G14:CSDLBH"
	justice    = "VN:GOV:000.00.00.G05:HTTTHT"
)

var quiet = slog.New(slog.NewTextHandler(io.Discard, nil))

// write runs fn in a transaction and appends a trail entry, as the service
// does for every write (the trail's Seq is the catalog revision).
func write(t *testing.T, st catalog.Store, action, object string, after any, fn func(tx catalog.Tx) error) {
	t.Helper()
	ctx := context.Background()
	err := st.Update(ctx, func(tx catalog.Tx) error {
		if err := fn(tx); err != nil {
			return err
		}
		b, err := json.Marshal(after)
		if err != nil {
			return err
		}
		return tx.AppendTrail(ctx, &catalog.TrailEntry{At: time.Now(), Actor: "test", Action: action, Object: object, After: b, Outcome: "ok"})
	})
	if err != nil {
		t.Fatal(err)
	}
}

func seed(t *testing.T) catalog.Store {
	t.Helper()
	ctx := context.Background()
	st, err := sqlstore.OpenSQLite(ctx, filepath.Join(t.TempDir(), "catalog.db"))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { st.Close() })
	now := time.Now().UTC()
	assessment := func() *catalog.Assessment {
		return &catalog.Assessment{Level: 3, AssessedBy: "A05", Reference: "QĐ 1", ValidUntil: now.Add(365 * 24 * time.Hour), RecordedAt: now}
	}
	write(t, st, "seed", "federation", nil, func(tx catalog.Tx) error {
		for _, m := range []string{"000.00.00.G01", "000.00.00.G05", "000.00.00.G14"} {
			if err := tx.CreateMember(ctx, &catalog.Member{Code: m, Name: "agency " + m, CreatedAt: now}); err != nil {
				return err
			}
			gw := "VN:GOV:" + m + ":GW"
			for _, id := range []string{gw} {
				if err := tx.CreateSystem(ctx, &catalog.System{ID: id, Name: id, Member: m, SecurityLevel: 3, Assessment: assessment(), CreatedAt: now}); err != nil {
					return err
				}
			}
		}
		for _, id := range []string{population, insurance, justice} {
			if err := tx.CreateSystem(ctx, &catalog.System{ID: id, Name: id, Member: id[7:20], SecurityLevel: 3, Assessment: assessment(), CreatedAt: now}); err != nil {
				return err
			}
		}
		for i, m := range []string{"000.00.00.G01", "000.00.00.G05", "000.00.00.G14"} {
			if err := tx.PutGateway(ctx, &catalog.Gateway{Member: m, System: "VN:GOV:" + m + ":GW", Address: "127.0.0.1:" + []string{"8441", "8442", "8443"}[i], UpdatedAt: now}); err != nil {
				return err
			}
		}
		return tx.InsertDataset(ctx, &catalog.Dataset{System: population, Code: "population", Version: 1, Title: "population",
			RecordSchema: "Citizen", MinConsumerLevel: 3, Digest: "00", Fields: []catalog.Field{}, Document: []byte("{}"), PublishedAt: now, PublishedBy: "test"})
	})
	return st
}

func newGrant(id, consumer string) *catalog.Grant {
	now := time.Now().UTC()
	return &catalog.Grant{
		ID: id, RequestID: "req-" + id, Consumer: consumer, Provider: population, Dataset: "population",
		Fields: []catalog.GrantedField{{Path: "fullName"}}, Purposes: []catalog.Purpose{{Code: "1.001234"}},
		LegalBasis: catalog.LegalBasis{Reference: "Decree 13/2023/ND-CP"}, Modes: []catalog.Mode{catalog.ModeQuery},
		ValidFrom: now.Add(-time.Minute), ValidUntil: now.Add(time.Hour), State: catalog.GrantActive,
		ApprovedBy: "test", CreatedAt: now, History: []catalog.RequestEvent{},
	}
}

func approve(t *testing.T, st catalog.Store, g *catalog.Grant) {
	t.Helper()
	ctx := context.Background()
	write(t, st, "access.approve", g.RequestID, g, func(tx catalog.Tx) error {
		now := time.Now().UTC()
		if err := tx.CreateAccessRequest(ctx, &catalog.AccessRequest{
			ID: g.RequestID, Consumer: g.Consumer, Provider: g.Provider, Dataset: g.Dataset, Fields: []string{"fullName"},
			Purpose: catalog.Purpose{Code: "1.001234"}, LegalBasis: g.LegalBasis, ValidFrom: g.ValidFrom, ValidUntil: g.ValidUntil,
			Modes: g.Modes, State: catalog.RequestApproved, GrantID: g.ID, RequestedBy: "test", CreatedAt: now, UpdatedAt: now, History: []catalog.RequestEvent{},
		}); err != nil {
			return err
		}
		return tx.CreateGrant(ctx, g)
	})
}

func outbound(t *testing.T, srv *server.Server, node string) []string {
	t.Helper()
	snap, ok := srv.Snapshot(node)
	if !ok {
		return nil
	}
	var out []string
	rc, ok := snap.GetResources(resource.RouteType)[ir.OutboundRoutes].(*routev3.RouteConfiguration)
	if !ok {
		t.Fatalf("node %s has no outbound routes table", node)
	}
	for _, vh := range rc.GetVirtualHosts() {
		for _, r := range vh.GetRoutes() {
			out = append(out, r.GetName())
		}
	}
	return out
}

func version(srv *server.Server, node string) string {
	snap, ok := srv.Snapshot(node)
	if !ok {
		return ""
	}
	return snap.GetVersion(resource.RouteType) + "/" + snap.GetVersion(resource.ClusterType)
}

// TestSyncerFollowsTheStore: grants approved and revoked in the store
// reach the consumer's edge, and only it; a gateway registration rebuilds.
func TestSyncerFollowsTheStore(t *testing.T) {
	st := seed(t)
	ctx := context.Background()
	srv := server.New(server.Config{TrustDomain: td, Log: quiet})
	sy := xds.NewSyncer(srv, xds.Config{
		Store: st, TrustDomain: td, Log: quiet,
		Trust: func(context.Context) (xds.Trust, error) { return xds.Trust{RootsPEM: "roots"}, nil },
	})
	if err := sy.Once(ctx); err != nil {
		t.Fatal(err)
	}
	for _, n := range []string{"000.00.00.G01", "000.00.00.G05", "000.00.00.G14"} {
		if _, ok := srv.Snapshot(n); !ok {
			t.Fatalf("no snapshot for %s", n)
		}
	}
	if r := outbound(t, srv, "000.00.00.G14"); len(r) != 0 {
		t.Fatalf("routes before any grant: %v", r)
	}
	providerV, justiceV := version(srv, "000.00.00.G01"), version(srv, "000.00.00.G05")

	g := newGrant("grant-1", insurance)
	approve(t, st, g)
	if err := sy.Once(ctx); err != nil {
		t.Fatal(err)
	}
	want := []string{"query/" + population + "/population", "verify/" + population + "/population"}
	if r := outbound(t, srv, "000.00.00.G14"); !slices.Equal(r, want) {
		t.Fatalf("after approval: %v", r)
	}

	revoked := *g
	revoked.State = catalog.GrantRevoked
	write(t, st, "grant.revoke", g.ID, &revoked, func(tx catalog.Tx) error { return tx.UpdateGrant(ctx, &revoked) })
	if err := sy.Once(ctx); err != nil {
		t.Fatal(err)
	}
	if r := outbound(t, srv, "000.00.00.G14"); len(r) != 0 {
		t.Fatalf("after revocation: %v", r)
	}
	if version(srv, "000.00.00.G01") != providerV || version(srv, "000.00.00.G05") != justiceV {
		t.Fatal("a consumer's grant changed other members' edges")
	}

	// A gateway moving is not a grant: the edges are rebuilt and every
	// peer of the moved gateway sees its new address.
	write(t, st, "gateway.register", "000.00.00.G01", nil, func(tx catalog.Tx) error {
		return tx.PutGateway(ctx, &catalog.Gateway{Member: "000.00.00.G01", System: "VN:GOV:000.00.00.G01:GW", Address: "127.0.0.1:9441", UpdatedAt: time.Now()})
	})
	if err := sy.Once(ctx); err != nil {
		t.Fatal(err)
	}
	snap, _ := srv.Snapshot("000.00.00.G01")
	l, ok := snap.GetResources(resource.ListenerType)[ir.InboundListener].(*listenerv3.Listener)
	if !ok || l.GetAddress().GetSocketAddress().GetPortValue() != 9441 {
		t.Fatalf("the provider's inbound listener did not move to the new port: %v", l.GetAddress())
	}
}

// TestSyncerRunPicksUpRevocation runs the loop as the control plane does
// and revokes a grant in the store: the edge's snapshot loses the route.
// It waits for that event with a generous bound and asserts no timing (a
// loaded machine must not fail it); how fast a revocation reaches a node is
// TestBenchRevocationReachesNode's figure (controlplane/xds/server).
func TestSyncerRunPicksUpRevocation(t *testing.T) {
	st := seed(t)
	g := newGrant("grant-1", insurance)
	approve(t, st, g)
	srv := server.New(server.Config{TrustDomain: td, Log: quiet})
	sy := xds.NewSyncer(srv, xds.Config{
		Store: st, TrustDomain: td, Log: quiet, Interval: 50 * time.Millisecond,
		Trust: func(context.Context) (xds.Trust, error) { return xds.Trust{RootsPEM: "roots"}, nil },
	})
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- sy.Run(ctx) }()
	defer func() { cancel(); <-done }()
	const patience = 30 * time.Second
	deadline := time.Now().Add(patience)
	for len(outbound(t, srv, "000.00.00.G14")) == 0 {
		if time.Now().After(deadline) {
			t.Fatal("the grant never reached the edge")
		}
		time.Sleep(10 * time.Millisecond)
	}
	revoked := *g
	revoked.State = catalog.GrantRevoked
	write(t, st, "grant.revoke", g.ID, &revoked, func(tx catalog.Tx) error { return tx.UpdateGrant(context.Background(), &revoked) })
	deadline = time.Now().Add(patience)
	for len(outbound(t, srv, "000.00.00.G14")) != 0 {
		if time.Now().After(deadline) {
			t.Fatalf("the revocation did not reach the edge's snapshot in %s", patience)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

func TestLoadSites(t *testing.T) {
	dir := t.TempDir()
	good := filepath.Join(dir, "sites.json")
	bad := filepath.Join(dir, "bad.json")
	writeFile(t, good, `{"000.00.00.G01": {"gatewayAddress": "127.0.0.1:7001", "backends": {"`+population+`/population": "db.internal:8080"}}}`)
	sites, err := xds.LoadSites(good)
	if err != nil || sites["000.00.00.G01"].GatewayAddress != "127.0.0.1:7001" {
		t.Fatalf("%v %+v", err, sites)
	}
	for name, content := range map[string]string{
		"not an agency code":    `{"G01": {}}`,
		"address without port":  `{"000.00.00.G01": {"gatewayAddress": "127.0.0.1"}}`,
		"port out of range":     `{"000.00.00.G01": {"adapterAddress": "127.0.0.1:70000"}}`,
		"backend key malformed": `{"000.00.00.G01": {"backends": {"population": "db:8080"}}}`,
		"relative cert dir":     `{"000.00.00.G01": {"certDir": "certs"}}`,
		"negative body limit":   `{"000.00.00.G01": {"maxRequestBytes": -1}}`,
		"body limit too large":  `{"000.00.00.G01": {"maxRequestBytes": 1099511627776}}`,
		"unknown field":         `{"000.00.00.G01": {"gatewayAdress": "127.0.0.1:9001"}}`,
		"not JSON":              `{`,
	} {
		writeFile(t, bad, content)
		if _, err := xds.LoadSites(bad); err == nil {
			t.Errorf("%s: accepted", name)
		}
	}
}

func writeFile(t *testing.T, path, content string) {
	t.Helper()
	if err := os.WriteFile(path, []byte(content), 0o600); err != nil {
		t.Fatal(err)
	}
}

// TestSyncerDropsRoutesOfAnUnassessedConsumer: a consumer system
// re-assessed below the dataset's level loses its route at the next sync
// (not secure, not connected), though its grant still stands.
func TestSyncerDropsRoutesOfAnUnassessedConsumer(t *testing.T) {
	st := seed(t)
	ctx := context.Background()
	approve(t, st, newGrant("grant-1", insurance))
	srv := server.New(server.Config{TrustDomain: td, Log: quiet})
	sy := xds.NewSyncer(srv, xds.Config{
		Store: st, TrustDomain: td, Log: quiet,
		Trust: func(context.Context) (xds.Trust, error) { return xds.Trust{RootsPEM: "roots"}, nil },
	})
	if err := sy.Once(ctx); err != nil {
		t.Fatal(err)
	}
	if r := outbound(t, srv, "000.00.00.G14"); len(r) != 2 {
		t.Fatalf("routes before: %v", r)
	}
	low := catalog.Assessment{Level: 2, AssessedBy: "A05", Reference: "QĐ 2", ValidUntil: time.Now().Add(time.Hour), RecordedAt: time.Now()}
	write(t, st, "system.assess", insurance, low, func(tx catalog.Tx) error { return tx.SetAssessment(ctx, insurance, low) })
	if err := sy.Once(ctx); err != nil {
		t.Fatal(err)
	}
	if r := outbound(t, srv, "000.00.00.G14"); len(r) != 0 {
		t.Fatalf("a consumer assessed below the dataset's level is still routed: %v", r)
	}
}

// TestRevocationDoesNotWaitForTheCA: with the authority unreachable, a
// grant revocation still reaches the edge; the failure is reported.
func TestRevocationDoesNotWaitForTheCA(t *testing.T) {
	st := seed(t)
	ctx := context.Background()
	g := newGrant("grant-1", insurance)
	approve(t, st, g)
	var caDown bool
	srv := server.New(server.Config{TrustDomain: td, Log: quiet})
	sy := xds.NewSyncer(srv, xds.Config{
		Store: st, TrustDomain: td, Log: quiet,
		Trust: func(context.Context) (xds.Trust, error) {
			if caDown {
				return xds.Trust{}, errors.New("vault: connection refused")
			}
			return xds.Trust{RootsPEM: "roots"}, nil
		},
	})
	if err := sy.Once(ctx); err != nil {
		t.Fatal(err)
	}
	caDown = true
	revoked := *g
	revoked.State = catalog.GrantRevoked
	write(t, st, "grant.revoke", g.ID, &revoked, func(tx catalog.Tx) error { return tx.UpdateGrant(ctx, &revoked) })
	if err := sy.Once(ctx); err == nil || !strings.Contains(err.Error(), "connection refused") {
		t.Fatalf("the CA failure was not reported: %v", err)
	}
	if r := outbound(t, srv, "000.00.00.G14"); len(r) != 0 {
		t.Fatalf("the revocation waited for the CA: %v", r)
	}
}
