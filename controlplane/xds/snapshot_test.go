package xds_test

import (
	"context"
	"testing"
	"time"

	listenerv3 "github.com/envoyproxy/go-control-plane/envoy/config/listener/v3"
	"github.com/envoyproxy/go-control-plane/pkg/resource/v3"
	"github.com/lienthong/lienthong/catalog"
	"github.com/lienthong/lienthong/controlplane/xds"
	"github.com/lienthong/lienthong/controlplane/xds/ir"
	"github.com/lienthong/lienthong/controlplane/xds/server"
	"github.com/lienthong/lienthong/federation"
)

// TestRebuildTakesTheSharedSnapshot: the edges are built from the snapshot
// the control plane hands the Syncer (the value gateway configuration and
// bundles come from), not from reads of their own. A write after the
// snapshot was read — a gateway moving — is not in the edges until a newer
// snapshot carries it, and the snapshot's grant is.
func TestRebuildTakesTheSharedSnapshot(t *testing.T) {
	st := seed(t)
	ctx := context.Background()
	approve(t, st, newGrant("grant-1", insurance))
	var snap *federation.Snapshot
	if err := st.View(ctx, func(r catalog.Reader) error {
		var err error
		snap, err = federation.Read(ctx, r)
		return err
	}); err != nil {
		t.Fatal(err)
	}
	write(t, st, "gateway.register", "000.00.00.G01", nil, func(tx catalog.Tx) error {
		return tx.PutGateway(ctx, &catalog.Gateway{Member: "000.00.00.G01", System: "VN:GOV:000.00.00.G01:GW", Address: "127.0.0.1:9441", UpdatedAt: time.Now()})
	})
	reads := 0
	srv := server.New(server.Config{TrustDomain: td, Log: quiet})
	sy := xds.NewSyncer(srv, xds.Config{
		Store: st, TrustDomain: td, Log: quiet,
		Snapshot: func(context.Context) (*federation.Snapshot, error) { reads++; return snap, nil },
		Trust:    func(context.Context) (xds.Trust, error) { return xds.Trust{RootsPEM: "roots"}, nil },
	})
	if err := sy.Once(ctx); err != nil {
		t.Fatal(err)
	}
	if reads != 1 {
		t.Fatalf("the rebuild took %d snapshots, want 1", reads)
	}
	want := []string{"query/" + population + "/population", "verify/" + population + "/population"}
	if r := outbound(t, srv, "000.00.00.G14"); len(r) != 2 || r[0] != want[0] || r[1] != want[1] {
		t.Fatalf("the snapshot's grant is not in the consumer's edge: %v", r)
	}
	s, ok := srv.Snapshot("000.00.00.G01")
	if !ok {
		t.Fatal("no edge for the provider")
	}
	l, ok := s.GetResources(resource.ListenerType)[ir.InboundListener].(*listenerv3.Listener)
	if !ok || l.GetAddress().GetSocketAddress().GetPortValue() == 9441 {
		t.Fatalf("the edge was built from a read after the snapshot: %v", l.GetAddress())
	}
}
