package controlplane_test

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"testing"
	"time"

	corev3 "github.com/envoyproxy/go-control-plane/envoy/config/core/v3"
	discoveryv3 "github.com/envoyproxy/go-control-plane/envoy/service/discovery/v3"
	"github.com/envoyproxy/go-control-plane/pkg/resource/v3"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials"
	"google.golang.org/grpc/status"

	"github.com/lienthong/lienthong/catalog"
	"github.com/lienthong/lienthong/certs"
	"github.com/lienthong/lienthong/certs/embedded"
	"github.com/lienthong/lienthong/controlplane"
	"github.com/lienthong/lienthong/controlplane/service"
)

// TestXDSListener runs the control plane with --xds-listen and checks the
// door as Envoy meets it: the management CA names the server, a federation
// certificate gets a stream but only for its own member's node id, and a
// certificate from another CA gets no connection.
func TestXDSListener(t *testing.T) {
	dir := t.TempDir()
	ctx, cancel := context.WithCancel(context.Background())
	ready := make(chan controlplane.Ready, 1)
	done := make(chan error, 1)
	go func() {
		done <- controlplane.Run(ctx, controlplane.Config{
			DataDir: dir, Listen: "127.0.0.1:0", XDSListen: "127.0.0.1:0",
			Log: slog.New(slog.NewTextHandler(io.Discard, nil)),
		}, func(r controlplane.Ready) { ready <- r })
	}()
	var r controlplane.Ready
	select {
	case r = <-ready:
	case err := <-done:
		t.Fatal(err)
	case <-time.After(30 * time.Second):
		t.Fatal("control plane did not start")
	}
	t.Cleanup(func() {
		cancel()
		if err := <-done; err != nil {
			t.Error(err)
		}
	})
	if r.XDSAddress == "" {
		t.Fatal("no xDS address reported")
	}
	ca, err := embedded.Open(filepath.Join(dir, "ca"))
	if err != nil {
		t.Fatal(err)
	}
	mgmtCA, err := os.ReadFile(r.CAFile)
	if err != nil {
		t.Fatal(err)
	}
	pool := x509.NewCertPool()
	pool.AppendCertsFromPEM(mgmtCA)

	dial := func(cert tls.Certificate, node string) error {
		cfg := &tls.Config{MinVersion: tls.VersionTLS13, RootCAs: pool, ServerName: "localhost", Certificates: []tls.Certificate{cert}}
		conn, err := grpc.NewClient(r.XDSAddress, grpc.WithTransportCredentials(credentials.NewTLS(cfg)))
		if err != nil {
			return err
		}
		defer conn.Close()
		sctx, scancel := context.WithTimeout(ctx, 2*time.Second)
		defer scancel()
		s, err := discoveryv3.NewAggregatedDiscoveryServiceClient(conn).StreamAggregatedResources(sctx)
		if err != nil {
			return err
		}
		if err := s.Send(&discoveryv3.DiscoveryRequest{TypeUrl: resource.ClusterType, Node: &corev3.Node{Id: node}}); err != nil {
			return err
		}
		_, err = s.Recv()
		return err
	}

	gw := issue(t, ca, "VN:GOV:000.00.00.G14:GW")
	// Its own member: the stream is accepted and waits for a snapshot (the
	// member has no registered gateway, so none comes before the deadline).
	if err := dial(gw, "000.00.00.G14"); status.Code(err) != codes.DeadlineExceeded {
		t.Fatalf("own node id: %v, want the stream held open until the deadline", err)
	}
	if err := dial(gw, "000.00.00.G01"); status.Code(err) != codes.PermissionDenied {
		t.Fatalf("another member's node id: %v, want PermissionDenied", err)
	}
	other, err := embedded.Open(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	if err := dial(issue(t, other, "VN:GOV:000.00.00.G14:GW"), "000.00.00.G14"); status.Code(err) != codes.Unavailable {
		t.Fatalf("a certificate from another CA: %v, want the connection refused", err)
	}
}

func issue(t *testing.T, ca certs.Authority, system string) tls.Certificate {
	t.Helper()
	id, err := catalog.ParseSystemID(system)
	if err != nil {
		t.Fatal(err)
	}
	keyPEM, csrPEM, err := certs.GenerateKeyAndCSR(id, service.DefaultTrustDomain)
	if err != nil {
		t.Fatal(err)
	}
	iss, err := ca.Sign(context.Background(), certs.SignRequest{CSR: csrPEM, System: id, TrustDomain: service.DefaultTrustDomain, TTL: time.Hour})
	if err != nil {
		t.Fatal(err)
	}
	pair, err := tls.X509KeyPair(iss.CertificatePEM(), keyPEM)
	if err != nil {
		t.Fatal(err)
	}
	return pair
}
