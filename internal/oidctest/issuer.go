// Package oidctest runs a small OpenID Connect issuer for tests: HTTPS on
// loopback with its own certificate, a discovery document, a JWKS, and ID
// tokens signed with its own RSA key (RS256), so code that verifies ID
// tokens is tested against the real protocol rather than a fake verifier.
package oidctest

import (
	"crypto"
	"crypto/rand"
	"crypto/rsa"
	"crypto/sha256"
	"encoding/base64"
	"encoding/json"
	"math/big"
	"net/http"
	"net/http/httptest"
	"testing"
	"time"
)

// Issuer is a running test issuer.
type Issuer struct {
	// URL is the issuer identifier (https://127.0.0.1:port).
	URL string
	// Client trusts the issuer's certificate; give it to the verifier.
	Client *http.Client
	// ClientID is the audience of the tokens Token mints.
	ClientID string

	key *rsa.PrivateKey
	kid string
	srv *httptest.Server
}

// New starts an issuer that stops when the test ends.
func New(t testing.TB) *Issuer {
	t.Helper()
	key, err := rsa.GenerateKey(rand.Reader, 2048)
	if err != nil {
		t.Fatal(err)
	}
	iss := &Issuer{key: key, kid: "test-key-1", ClientID: "lienthong-tracker"}
	mux := http.NewServeMux()
	mux.HandleFunc("GET /.well-known/openid-configuration", func(w http.ResponseWriter, r *http.Request) {
		writeJSON(w, map[string]any{
			"issuer":                                iss.URL,
			"authorization_endpoint":                iss.URL + "/authorize",
			"token_endpoint":                        iss.URL + "/token",
			"jwks_uri":                              iss.URL + "/jwks",
			"response_types_supported":              []string{"code"},
			"subject_types_supported":               []string{"public"},
			"id_token_signing_alg_values_supported": []string{"RS256"},
		})
	})
	mux.HandleFunc("GET /jwks", func(w http.ResponseWriter, r *http.Request) {
		pub := key.PublicKey
		writeJSON(w, map[string]any{"keys": []map[string]string{{
			"kty": "RSA", "use": "sig", "alg": "RS256", "kid": iss.kid,
			"n": b64(pub.N.Bytes()), "e": b64(big.NewInt(int64(pub.E)).Bytes()),
		}}})
	})
	iss.srv = httptest.NewTLSServer(mux)
	t.Cleanup(iss.srv.Close)
	iss.URL = iss.srv.URL
	iss.Client = iss.srv.Client()
	return iss
}

func writeJSON(w http.ResponseWriter, v any) {
	w.Header().Set("Content-Type", "application/json")
	_ = json.NewEncoder(w).Encode(v)
}

func b64(b []byte) string { return base64.RawURLEncoding.EncodeToString(b) }

// Claims returns the standard claims of a token for subject, valid for an
// hour from now; tests change them before minting.
func (i *Issuer) Claims(subject string) map[string]any {
	now := time.Now()
	return map[string]any{
		"iss": i.URL, "aud": i.ClientID, "sub": subject,
		"iat": now.Unix(), "exp": now.Add(time.Hour).Unix(),
	}
}

// Token mints an ID token for subject with the issuer's key.
func (i *Issuer) Token(t testing.TB, subject string) string {
	return i.Sign(t, i.Claims(subject))
}

// Sign mints an ID token with the given claims and the issuer's key.
func (i *Issuer) Sign(t testing.TB, claims map[string]any) string {
	return sign(t, i.key, i.kid, claims)
}

// Forge mints a token that names the issuer's key id but is signed with
// another key: what an attacker without the issuer's key can make.
func (i *Issuer) Forge(t testing.TB, claims map[string]any) string {
	t.Helper()
	other, err := rsa.GenerateKey(rand.Reader, 2048)
	if err != nil {
		t.Fatal(err)
	}
	return sign(t, other, i.kid, claims)
}

func sign(t testing.TB, key *rsa.PrivateKey, kid string, claims map[string]any) string {
	t.Helper()
	header, err := json.Marshal(map[string]string{"alg": "RS256", "typ": "JWT", "kid": kid})
	if err != nil {
		t.Fatal(err)
	}
	payload, err := json.Marshal(claims)
	if err != nil {
		t.Fatal(err)
	}
	signed := b64(header) + "." + b64(payload)
	sum := sha256.Sum256([]byte(signed))
	sig, err := rsa.SignPKCS1v15(rand.Reader, key, crypto.SHA256, sum[:])
	if err != nil {
		t.Fatal(err)
	}
	return signed + "." + b64(sig)
}
