package api_test

import (
	"bytes"
	"context"
	"crypto/tls"
	"encoding/json"
	"fmt"
	"net/http"
	"testing"
	"time"

	"github.com/lienthong/lienthong/catalog"
	"github.com/lienthong/lienthong/controlplane/client"
	"github.com/lienthong/lienthong/controlplane/service"
	"github.com/lienthong/lienthong/federation"
	"github.com/lienthong/lienthong/policies"
)

const (
	mpsGW = "VN:GOV:000.00.00.G01:GW"
	vssGW = "VN:GOV:000.00.00.G14:GW"
)

// certClient calls the API with a client certificate and no token, as a
// gateway does; its traffic is checked against the OpenAPI document too.
func (f *fixture) certClient(pair tls.Certificate) *client.Client {
	tr := f.srv.Client().Transport.(*http.Transport).Clone()
	tr.TLSClientConfig.GetClientCertificate = func(*tls.CertificateRequestInfo) (*tls.Certificate, error) { return &pair, nil }
	return client.NewWithHTTP(f.srv.URL, "", &http.Client{Transport: newValidatingTransport(f.t, f.srv.URL, tr), Timeout: 30 * time.Second})
}

// gatewayFixture is the access fixture with both members' gateways
// registered and enrolled by the operator (the first certificate's
// bootstrap), and a pending access request to the population dataset.
func newGatewayFixture(t *testing.T) (*accessFixture, map[string]*enrolled, *catalog.AccessRequest) {
	f := newAccessFixture(t)
	ctx := context.Background()
	pairs := map[string]*enrolled{}
	for _, g := range []struct{ member, system, addr string }{{mps, mpsGW, "127.0.0.1:9444"}, {vss, vssGW, "127.0.0.1:9446"}} {
		if _, err := f.admin.AddSystem(ctx, client.NewSystem{ID: g.system, Name: "gateway", SecurityLevel: 3}); err != nil {
			t.Fatal(err)
		}
		if _, err := f.admin.Assess(ctx, g.system, client.NewAssessment{Level: 3, AssessedBy: "Cục A05", Reference: "QĐ 14", ValidUntil: time.Now().Add(365 * 24 * time.Hour)}); err != nil {
			t.Fatal(err)
		}
		if _, err := f.admin.RegisterGateway(ctx, g.member, g.system, g.addr); err != nil {
			t.Fatal(err)
		}
		pairs[g.member] = mustEnroll(t, f.admin, g.system)
	}
	return f, pairs, f.file(f.validRequest())
}

// A gateway holds no token: it pulls its configuration, bundle, trust and
// documents, and renews its certificate, with its certificate alone.
func TestGatewayPullsWithItsCertificateOnly(t *testing.T) {
	f, pairs, _ := newGatewayFixture(t)
	ctx := context.Background()
	gw := f.certClient(pairs[mps].pair)

	who, err := gw.WhoAmI(ctx)
	if err != nil || who.Role != catalog.RoleGateway || who.Member != mps || who.TokenID != "" {
		t.Fatalf("whoami with a gateway certificate: %+v %v", who, err)
	}
	key, err := gw.VerificationKey(ctx)
	if err != nil {
		t.Fatal(err)
	}
	body, err := gw.GatewayConfig(ctx, key)
	if err != nil {
		t.Fatalf("configuration pulled with the certificate: %v", err)
	}
	var cfg federation.Config
	if err := json.Unmarshal(body, &cfg); err != nil {
		t.Fatal(err)
	}
	if cfg.Member != mps || len(cfg.Datasets) != 1 || cfg.Datasets[0].Provider != population || len(cfg.Gateways) != 2 || cfg.Trust == nil {
		t.Fatalf("configuration of %s: %+v", mps, cfg)
	}
	archive, bundleETag, _, err := gw.PolicyBundleIfChanged(ctx, "")
	if err != nil {
		t.Fatal(err)
	}
	// Both come from one snapshot of the catalog: the same revision.
	if want := fmt.Sprintf(`"%d"`, cfg.Revision); bundleETag != want {
		t.Errorf("bundle revision %s, configuration revision %s", bundleETag, want)
	}
	if _, err := policies.LoadBundle(bytes.NewReader(archive), key); err != nil {
		t.Fatalf("bundle pulled with the certificate: %v", err)
	}
	if _, _, _, err := gw.Trust(ctx, ""); err != nil {
		t.Fatal(err)
	}
	if _, err := gw.DatasetDocument(ctx, population, "population", 0); err != nil {
		t.Fatal(err)
	}
	// Renewal: the gateway's own certificate, signed on its certificate.
	renewed, err := enroll(t, gw, mpsGW)
	if err != nil {
		t.Fatalf("renewal with the certificate: %v", err)
	}
	if _, err := f.certClient(renewed.pair).WhoAmI(ctx); err != nil {
		t.Fatalf("renewed certificate: %v", err)
	}
	trail, err := f.admin.Trail(ctx, catalog.TrailFilter{Object: mpsGW})
	if err != nil {
		t.Fatal(err)
	}
	if last := trail[len(trail)-1]; last.Action != "certificate.enroll" || last.Role != catalog.RoleGateway || last.Outcome != "ok" {
		t.Fatalf("renewal in the trail: %+v", last)
	}
}

// A gateway's certificate gets nothing of another member and can do nothing
// but pull its own share: no approving, no enrolling, no tokens.
func TestGatewayCertificateGetsOnlyItsMembersShare(t *testing.T) {
	f, pairs, req := newGatewayFixture(t)
	ctx := context.Background()
	other := f.certClient(pairs[vss].pair) // Social Security's gateway
	key, err := other.VerificationKey(ctx)
	if err != nil {
		t.Fatal(err)
	}
	body, err := other.GatewayConfig(ctx, key)
	if err != nil {
		t.Fatal(err)
	}
	var cfg federation.Config
	if err := json.Unmarshal(body, &cfg); err != nil {
		t.Fatal(err)
	}
	if cfg.Member != vss || len(cfg.Datasets) != 0 {
		t.Fatalf("Social Security's gateway sees datasets of another member: %+v", cfg.Datasets)
	}

	forbidden := map[string]func() error{
		"the Public Security configuration": func() error {
			var raw []byte
			return other.Do(ctx, http.MethodGet, "/v1/gateway-config?member="+mps, nil, &raw)
		},
		"the Public Security bundle": func() error {
			var raw []byte
			return other.Do(ctx, http.MethodGet, "/v1/policy/bundle?member="+mps, nil, &raw)
		},
		"a Public Security document": func() error {
			_, err := other.DatasetDocument(ctx, population, "population", 0)
			return err
		},
		"a certificate for the Public Security gateway": func() error {
			_, err := enroll(t, other, mpsGW)
			return err
		},
		"a certificate for its own member's other system": func() error {
			_, err := enroll(t, other, insurance)
			return err
		},
		"approving an access request": func() error {
			_, err := other.Approve(ctx, req.ID, service.Approval{Fields: []catalog.GrantedField{{Path: "fullName"}}})
			return err
		},
		"minting a token": func() error {
			_, err := other.CreateToken(ctx, client.NewToken{Name: "x", Role: catalog.RoleMemberAdmin, Member: vss})
			return err
		},
		"registering a gateway": func() error {
			_, err := other.RegisterGateway(ctx, vss, vssGW, "10.0.0.1:9446")
			return err
		},
		"reading the trail": func() error {
			_, err := other.Trail(ctx, catalog.TrailFilter{})
			return err
		},
		"explaining a decision": func() error {
			_, err := other.Explain(ctx, service.ExplainInput{Consumer: insurance, Provider: population, Dataset: "population", Purpose: "1.001234"})
			return err
		},
	}
	for name, call := range forbidden {
		if p := asProblem(t, call()); p.Status != http.StatusForbidden {
			t.Errorf("%s with another member's gateway certificate: %d %s, want 403", name, p.Status, p.Detail)
		}
	}
	if got, err := f.admin.Certificates(ctx, catalog.CertificateFilter{System: mpsGW}); err != nil || len(got) != 1 {
		t.Errorf("Public Security's gateway holds %d certificates, want the operator's one", len(got))
	}
}

// A revoked gateway certificate, a revoked gateway system and a system that
// is not a registered gateway are refused (401), as is a certificate of
// another CA.
func TestGatewayCertificateRefused(t *testing.T) {
	f, pairs, _ := newGatewayFixture(t)
	ctx := context.Background()
	gw := f.certClient(pairs[mps].pair)
	if _, err := gw.WhoAmI(ctx); err != nil {
		t.Fatal(err)
	}
	// The connection stays open across the revocation: the check is per
	// request, not per handshake.
	if _, err := f.admin.RevokeCertificate(ctx, pairs[mps].Certificate.Serial, "key copied off the host"); err != nil {
		t.Fatal(err)
	}
	if p := asProblem(t, gwConfig(ctx, gw)); p.Status != http.StatusUnauthorized {
		t.Errorf("revoked gateway certificate: %d, want 401", p.Status)
	}

	// A system certificate of a system that is not its member's gateway.
	is := mustEnroll(t, f.admin, insurance)
	if p := asProblem(t, gwConfig(ctx, f.certClient(is.pair))); p.Status != http.StatusUnauthorized {
		t.Errorf("certificate of a system that is no gateway: %d, want 401", p.Status)
	}

	// A revoked gateway system, whatever its certificate.
	if _, err := f.admin.RevokeSystem(ctx, vssGW, "decommissioned"); err != nil {
		t.Fatal(err)
	}
	if p := asProblem(t, gwConfig(ctx, f.certClient(pairs[vss].pair))); p.Status != http.StatusUnauthorized {
		t.Errorf("certificate of a revoked gateway system: %d, want 401", p.Status)
	}

	// The same SPIFFE id from a CA the federation does not trust.
	foreign := newCertFixture(t)
	if _, err := foreign.admin.AddSystem(ctx, client.NewSystem{ID: mpsGW, Name: "impostor", SecurityLevel: 3}); err != nil {
		t.Fatal(err)
	}
	if _, err := foreign.admin.Assess(ctx, mpsGW, client.NewAssessment{Level: 3, AssessedBy: "x", Reference: "x", ValidUntil: time.Now().Add(24 * time.Hour)}); err != nil {
		t.Fatal(err)
	}
	impostor := mustEnroll(t, foreign.admin, mpsGW)
	if p := asProblem(t, gwConfig(ctx, f.certClient(impostor.pair))); p.Status != http.StatusUnauthorized {
		t.Errorf("certificate of another CA: %d, want 401", p.Status)
	}
}

func gwConfig(ctx context.Context, c *client.Client) error {
	var raw []byte
	return c.Do(ctx, http.MethodGet, "/v1/gateway-config", nil, &raw)
}
