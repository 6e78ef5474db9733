package feed

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/lienthong/lienthong/federation"
	"github.com/lienthong/lienthong/gateway/exchange"
	"github.com/lienthong/lienthong/policies"
)

// writeGatewayConfig writes, as the provider's gateway keeps them in its
// state directory, a configuration of member issued at issued and signed
// with key, and, when freshAt is set, a statement that it is current at
// freshAt signed with stmtKey. It returns the configuration's path.
func writeGatewayConfig(t testing.TB, dir string, key, stmtKey policies.SigningKey, member string, issued, freshAt time.Time) string {
	t.Helper()
	cfg := federation.Config{Revision: 1, IssuedAt: issued.UTC(), Member: member, Content: "c1"}
	body, _ := json.Marshal(cfg)
	sig, err := federation.Sign(key.KeyID, key.Key, body)
	if err != nil {
		t.Fatal(err)
	}
	path := filepath.Join(dir, "gateway-config.json")
	sigPath, metaPath := gatewayFiles(path)
	write(t, path, body)
	write(t, sigPath, []byte(sig))
	sum := sha256.Sum256(body)
	meta := map[string]any{"body": hex.EncodeToString(sum[:])}
	if !freshAt.IsZero() {
		st, err := federation.Sign(stmtKey.KeyID, stmtKey.Key, federation.FreshnessMessage(cfg.ETag(), freshAt.UTC()))
		if err != nil {
			t.Fatal(err)
		}
		meta["freshAt"], meta["freshSignature"] = freshAt.UTC(), st
	}
	raw, _ := json.Marshal(meta)
	write(t, metaPath, raw)
	return path
}

func verificationKey(k policies.SigningKey) policies.VerificationKey {
	return policies.VerificationKey{KeyID: k.KeyID, Key: k.Key.Public()}
}

// TestRouterIsAsFreshAsItsGateway: a router alone takes its freshness from
// its gateway's signed configuration and the verified statement beside it,
// never from anything else: a statement signed by another key, or a
// configuration of another member or signed by another key, does not
// count.
func TestRouterIsAsFreshAsItsGateway(t *testing.T) {
	w := newWorld(t, []string{"127.0.0.1:1"})
	other, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	forger := policies.SigningKey{KeyID: w.signing.KeyID, Key: other}
	member := exchange.MemberOf(provider)
	issued := time.Now().Add(-3 * time.Hour).Truncate(time.Second)
	renewed := time.Now().Add(-time.Minute).Truncate(time.Second)
	for _, tc := range []struct {
		name          string
		key, stmtKey  policies.SigningKey
		member        string
		freshAt, want time.Time
		wantErr       string
	}{
		{"issued, no statement", w.signing, w.signing, member, time.Time{}, issued, ""},
		{"renewed by a statement", w.signing, w.signing, member, renewed, renewed, ""},
		{"statement signed by another key", w.signing, forger, member, renewed, issued, ""},
		{"configuration signed by another key", forger, forger, member, renewed, time.Time{}, "signature does not verify"},
		{"another member's share", w.signing, w.signing, "000.00.00.G01", renewed, time.Time{}, "not of " + member},
	} {
		t.Run(tc.name, func(t *testing.T) {
			path := writeGatewayConfig(t, t.TempDir(), tc.key, tc.stmtKey, tc.member, issued, tc.freshAt)
			f, err := openGatewayFreshness(path, verificationKey(w.signing), member)
			if tc.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tc.wantErr) {
					t.Fatalf("error %v, want %q", err, tc.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if !f.At().Equal(tc.want) {
				t.Errorf("fresh at %s, want %s", f.At(), tc.want)
			}
		})
	}
}
