package api_test

import (
	"context"
	"encoding/json"
	"errors"
	"net/http"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/lienthong/lienthong/catalog"
	"github.com/lienthong/lienthong/controlplane/bundles"
	"github.com/lienthong/lienthong/controlplane/client"
	"github.com/lienthong/lienthong/federation"
	"github.com/lienthong/lienthong/policies"
)

func TestGatewayRegistryAndSignedConfig(t *testing.T) {
	f := newAccessFixture(t)
	ctx := context.Background()
	mpsAdmin := f.token(catalog.RoleMemberAdmin, mps)
	vssAdmin := f.token(catalog.RoleMemberAdmin, vss)

	if _, err := mpsAdmin.RegisterGateway(ctx, mps, population, "127.0.0.1:9444"); err != nil {
		t.Fatal(err)
	}
	// Another agency cannot point the first agency's traffic elsewhere, and
	// a gateway must present one of its own member's systems.
	if _, err := vssAdmin.RegisterGateway(ctx, mps, population, "127.0.0.1:6666"); asProblem(t, err).Status != http.StatusForbidden {
		t.Fatal("foreign gateway registration accepted")
	}
	if _, err := vssAdmin.RegisterGateway(withUnvalidated(ctx), vss, population, "127.0.0.1:9445"); asProblem(t, err).Status != http.StatusBadRequest {
		t.Fatal("gateway presenting another member's system accepted")
	}
	if _, err := vssAdmin.RegisterGateway(withUnvalidated(ctx), vss, insurance, "no-port"); asProblem(t, err).Status != http.StatusBadRequest {
		t.Fatal("address without port accepted")
	}

	// An unassessed system gets no route.
	if _, err := f.admin.AddSystem(ctx, client.NewSystem{ID: "VN:GOV:000.00.00.G14:GW2", Name: "gw2", SecurityLevel: 3}); err != nil {
		t.Fatal(err)
	}
	if _, err := vssAdmin.RegisterGateway(ctx, vss, "VN:GOV:000.00.00.G14:GW2", "127.0.0.1:9447"); asProblem(t, err).Status != http.StatusForbidden {
		t.Fatal("unassessed gateway system registered")
	}

	key, err := f.integrator.VerificationKey(ctx)
	if err != nil {
		t.Fatal(err)
	}
	// The configuration lists every gateway and trust, but only the
	// member's own datasets; integrators do not pull it.
	if _, err := f.integrator.GatewayConfig(ctx, key); asProblem(t, err).Status != http.StatusForbidden {
		t.Fatal("an integrator pulled the gateway configuration")
	}
	for _, c := range []struct {
		who      *client.Client
		member   string
		datasets int
	}{{vssAdmin, vss, 0}, {mpsAdmin, mps, 1}} {
		body, err := c.who.GatewayConfig(ctx, key)
		if err != nil {
			t.Fatal(err)
		}
		var cfg federation.Config
		if err := json.Unmarshal(body, &cfg); err != nil {
			t.Fatal(err)
		}
		if cfg.Member != c.member || len(cfg.Gateways) != 1 || cfg.Gateways[0].Address != "127.0.0.1:9444" || len(cfg.Datasets) != c.datasets || cfg.Trust == nil {
			t.Fatalf("config of %s = %+v", c.member, cfg)
		}
	}
	// A configuration checked against another key is refused.
	other := policies.VerificationKey{KeyID: key.KeyID, Key: mustOtherKey(t)}
	if _, err := vssAdmin.GatewayConfig(ctx, other); !errors.Is(err, client.ErrBadSignature) {
		t.Fatalf("config verified with the wrong key: %v", err)
	}
}

func mustOtherKey(t *testing.T) any {
	t.Helper()
	k, err := bundles.LoadOrCreateKey(filepath.Join(t.TempDir(), "other.pem"))
	if err != nil {
		t.Fatal(err)
	}
	return k.Key.Public()
}

// An unchanged configuration is answered with 304 and a signed statement that
// it is current, which only the control plane's key can make; a change gives
// the new configuration under a new ETag.
func TestGatewayConfigNotModifiedIsSignedFresh(t *testing.T) {
	f := newAccessFixture(t)
	ctx := context.Background()
	mpsAdmin := f.token(catalog.RoleMemberAdmin, mps)
	key, err := mpsAdmin.VerificationKey(ctx)
	if err != nil {
		t.Fatal(err)
	}
	first, err := mpsAdmin.GatewayConfigIfChanged(ctx, key, "")
	if err != nil {
		t.Fatal(err)
	}
	var cfg federation.Config
	if err := json.Unmarshal(first.Body, &cfg); err != nil || first.NotModified || cfg.Content == "" || first.ETag != federation.ETag(cfg.Content) {
		t.Fatalf("first pull: etag %s, signed content %q, %v", first.ETag, cfg.Content, err)
	}
	again, err := mpsAdmin.GatewayConfigIfChanged(ctx, key, first.ETag)
	if err != nil {
		t.Fatal(err)
	}
	if !again.NotModified || len(again.Body) != 0 || again.ETag != first.ETag || again.FreshAt.Before(cfg.IssuedAt) {
		t.Fatalf("unchanged pull: not modified %v, etag %s (first %s), fresh at %s (issued %s)", again.NotModified, again.ETag, first.ETag, again.FreshAt, cfg.IssuedAt)
	}
	// The statement binds the ETag and the time: moved either way, it fails.
	for _, msg := range [][]byte{
		federation.FreshnessMessage(again.ETag, again.FreshAt.Add(time.Hour)),
		federation.FreshnessMessage(`"0000"`, again.FreshAt),
		first.Body,
	} {
		if err := federation.Verify(key.KeyID, key.Key, msg, again.Signature); !errors.Is(err, federation.ErrBadSignature) {
			t.Fatalf("freshness signature verified over %q: %v", msg, err)
		}
	}
	// A stale ETag gets the whole configuration.
	if got, err := mpsAdmin.GatewayConfigIfChanged(ctx, key, `"stale"`); err != nil || got.NotModified || got.ETag != first.ETag {
		t.Fatalf("pull with an unknown ETag: %+v, %v", got, err)
	}
	// A change (a gateway registered) is a new ETag and a new body.
	if _, err := mpsAdmin.RegisterGateway(ctx, mps, population, "127.0.0.1:9444"); err != nil {
		t.Fatal(err)
	}
	changed, err := mpsAdmin.GatewayConfigIfChanged(ctx, key, first.ETag)
	if err != nil {
		t.Fatal(err)
	}
	if changed.NotModified || changed.ETag == first.ETag || !strings.Contains(string(changed.Body), "127.0.0.1:9444") {
		t.Fatalf("after a change: not modified %v, etag %s", changed.NotModified, changed.ETag)
	}
}
