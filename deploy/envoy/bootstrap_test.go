// Package envoy holds the Envoy bootstrap shipped in deploy/envoy and the
// test that keeps it loadable by Envoy's own schema.
package envoy

import (
	"encoding/json"
	"net"
	"os"
	"strings"
	"testing"

	bootstrapv3 "github.com/envoyproxy/go-control-plane/envoy/config/bootstrap/v3"
	tlsv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/transport_sockets/tls/v3"
	httpv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/upstreams/http/v3"
	"go.yaml.in/yaml/v3"
	"google.golang.org/protobuf/encoding/protojson"

	"github.com/lienthong/lienthong/catalog"
	"github.com/lienthong/lienthong/controlplane/xds/ir"
)

// loadBootstrap reads YAML the way Envoy does: as the JSON form of the
// Bootstrap proto, every field known (a misspelt field fails here).
func loadBootstrap(t *testing.T, path string) *bootstrapv3.Bootstrap {
	t.Helper()
	raw, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	var doc any
	if err := yaml.Unmarshal(raw, &doc); err != nil {
		t.Fatal(err)
	}
	js, err := json.Marshal(doc)
	if err != nil {
		t.Fatal(err)
	}
	var b bootstrapv3.Bootstrap
	if err := protojson.Unmarshal(js, &b); err != nil {
		t.Fatalf("%s is not a Bootstrap: %v", path, err)
	}
	return &b
}

func TestBootstrap(t *testing.T) {
	b := loadBootstrap(t, "bootstrap.yaml")
	if err := b.ValidateAll(); err != nil {
		t.Fatal(err)
	}
	if !catalog.ValidMemberCode(b.GetNode().GetId()) {
		t.Errorf("node id %q is not a member code: the control plane would serve it nothing", b.GetNode().GetId())
	}
	if a := b.GetAdmin().GetAddress().GetSocketAddress().GetAddress(); !net.ParseIP(a).IsLoopback() {
		t.Errorf("admin listens on %q, not loopback", a)
	}
	ads := b.GetDynamicResources().GetAdsConfig()
	if len(ads.GetGrpcServices()) != 1 {
		t.Fatal("ADS needs exactly one gRPC service")
	}
	cpName := ads.GetGrpcServices()[0].GetEnvoyGrpc().GetClusterName()
	if b.GetDynamicResources().GetCdsConfig().GetAds() == nil || b.GetDynamicResources().GetLdsConfig().GetAds() == nil {
		t.Error("clusters and listeners must come over ADS")
	}
	var found bool
	for _, c := range b.GetStaticResources().GetClusters() {
		if c.GetName() != cpName {
			continue
		}
		found = true
		// Packed configs are not validated with the Bootstrap: unpack and check.
		var up tlsv3.UpstreamTlsContext
		if err := c.GetTransportSocket().GetTypedConfig().UnmarshalTo(&up); err != nil {
			t.Fatalf("control plane cluster without TLS: %v", err)
		}
		if err := up.ValidateAll(); err != nil {
			t.Fatal(err)
		}
		common := up.GetCommonTlsContext()
		if len(common.GetTlsCertificates()) != 1 {
			t.Fatal("the node must present its certificate (mTLS)")
		}
		if dir := common.GetTlsCertificates()[0].GetWatchedDirectory().GetPath(); dir != ir.DefaultSite.CertDir {
			t.Errorf("certificate directory %q differs from the one the control plane's SDS names (%q)", dir, ir.DefaultSite.CertDir)
		}
		vc := common.GetValidationContext()
		if vc.GetTrustedCa().GetFilename() == "" || len(vc.GetMatchTypedSubjectAltNames()) == 0 {
			t.Error("the control plane's certificate must be checked: CA and name")
		}
		opts, ok := c.GetTypedExtensionProtocolOptions()["envoy.extensions.upstreams.http.v3.HttpProtocolOptions"]
		var hp httpv3.HttpProtocolOptions
		if !ok || opts.UnmarshalTo(&hp) != nil || hp.ValidateAll() != nil || hp.GetExplicitHttpConfig().GetHttp2ProtocolOptions() == nil {
			t.Error("the control plane cluster must speak HTTP/2 (gRPC)")
		}
	}
	if !found {
		t.Fatalf("ADS names cluster %q, which the bootstrap does not define", cpName)
	}
}

// TestBootstrapRefusesUnknownFields shows the loader is strict: a typo in
// the bootstrap fails the test rather than being ignored.
func TestBootstrapRefusesUnknownFields(t *testing.T) {
	raw, err := os.ReadFile("bootstrap.yaml")
	if err != nil {
		t.Fatal(err)
	}
	bad := strings.Replace(string(raw), "set_node_on_first_message_only", "set_node_on_first_mesage_only", 1)
	var doc any
	_ = yaml.Unmarshal([]byte(bad), &doc)
	js, _ := json.Marshal(doc)
	if err := protojson.Unmarshal(js, &bootstrapv3.Bootstrap{}); err == nil {
		t.Fatal("a misspelt field was accepted")
	}
}
