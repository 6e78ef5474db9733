// The stand-in follows Vault's documented HTTP API because a real Vault
// cannot run here; these tests pin the wire format it answers with, using
// plain HTTP rather than the Vault client, so a drift in the stand-in shows
// up here and not as a puzzling backend failure.
package vaulttest

import (
	"bytes"
	"crypto/tls"
	"crypto/x509"
	"encoding/json"
	"io"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/lienthong/lienthong/catalog"
	"github.com/lienthong/lienthong/certs"
)

func client(t *testing.T, s *Server) *http.Client {
	pool := x509.NewCertPool()
	pool.AppendCertsFromPEM(s.CACertPEM())
	return &http.Client{Timeout: 10 * time.Second, Transport: &http.Transport{TLSClientConfig: &tls.Config{RootCAs: pool}}}
}

func call(t *testing.T, c *http.Client, method, url, token string, body any) (int, map[string]any) {
	t.Helper()
	var rd io.Reader
	if body != nil {
		b, _ := json.Marshal(body)
		rd = bytes.NewReader(b)
	}
	req, _ := http.NewRequest(method, url, rd)
	if token != "" {
		req.Header.Set("X-Vault-Token", token)
	}
	resp, err := c.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	if ct := resp.Header.Get("Content-Type"); ct != "application/json" {
		t.Errorf("%s %s: Content-Type %q", method, url, ct)
	}
	var out map[string]any
	if err := json.NewDecoder(resp.Body).Decode(&out); err != nil {
		t.Fatalf("%s %s: body is not JSON: %v", method, url, err)
	}
	return resp.StatusCode, out
}

func TestWireFormat(t *testing.T) {
	s, err := New(Config{Role: RecommendedRole("lienthong.test")})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	c := client(t, s)

	// Errors: {"errors": [...]} with Vault's statuses.
	for _, tc := range []struct {
		method, path, token string
		status              int
	}{
		{"POST", "/v1/pki/sign/lienthong-system", "", 403},
		{"POST", "/v1/pki/sign/lienthong-system", "hvs.unknown", 403},
		{"GET", "/v1/pki/sign/lienthong-system", s.RootToken(), 405},
		{"GET", "/v1/pki/nothing-here", s.RootToken(), 404},
		{"POST", "/v1/auth/approle/login", "", 400},
	} {
		status, body := call(t, c, tc.method, s.URL+tc.path, tc.token, map[string]any{})
		if status != tc.status {
			t.Errorf("%s %s: status %d, want %d", tc.method, tc.path, status, tc.status)
		}
		if _, ok := body["errors"].([]any); !ok || len(body) != 1 {
			t.Errorf("%s %s: error body %v, want only an errors list", tc.method, tc.path, body)
		}
	}

	// AppRole login: the envelope with auth.client_token.
	roleID, secretID := s.AppRoleCredentials()
	status, body := call(t, c, "POST", s.URL+"/v1/auth/approle/login", "", map[string]any{"role_id": roleID, "secret_id": secretID})
	if status != 200 {
		t.Fatalf("login: %d %v", status, body)
	}
	for _, k := range []string{"request_id", "lease_id", "renewable", "lease_duration", "data", "wrap_info", "warnings", "auth"} {
		if _, ok := body[k]; !ok {
			t.Errorf("login answer lacks %q", k)
		}
	}
	auth := body["auth"].(map[string]any)
	tok, _ := auth["client_token"].(string)
	if !strings.HasPrefix(tok, "hvs.") || auth["renewable"] != true || auth["lease_duration"].(float64) != 1200 {
		t.Errorf("auth = %v", auth)
	}
	// Its policy allows signing with the role and nothing else.
	if status, _ := call(t, c, "POST", s.URL+"/v1/pki/sign/other-role", tok, map[string]any{}); status != 403 {
		t.Errorf("AppRole token on another role: %d", status)
	}
	if status, body := call(t, c, "PUT", s.URL+"/v1/auth/token/renew-self", tok, map[string]any{"increment": "1h"}); status != 200 || body["warnings"] == nil {
		t.Errorf("renew-self beyond max TTL: %d %v", status, body)
	}

	// Sign: data.certificate, issuing_ca, ca_chain, serial_number.
	id := catalog.SystemID{Instance: "VN", Class: "GOV", Member: "000.00.00.G01", Code: "CSDLDC"}
	_, csr, err := certs.GenerateKeyAndCSR(id, "lienthong.test")
	if err != nil {
		t.Fatal(err)
	}
	status, body = call(t, c, "POST", s.URL+"/v1/pki/sign/lienthong-system", tok, map[string]any{
		"csr": string(csr), "uri_sans": id.SPIFFE("lienthong.test"), "ttl": "3600", "format": "pem", "bogus": 1,
	})
	if status != 200 {
		t.Fatalf("sign: %d %v", status, body)
	}
	data := body["data"].(map[string]any)
	leafs, err := certs.ParseCertificatesPEM([]byte(data["certificate"].(string)))
	if err != nil || len(leafs) != 1 {
		t.Fatalf("certificate: %v", err)
	}
	if serial, err := certs.ParseSerial(data["serial_number"].(string)); err != nil || serial.Cmp(leafs[0].SerialNumber) != 0 || !strings.Contains(data["serial_number"].(string), ":") {
		t.Errorf("serial_number %v", data["serial_number"])
	}
	if chain := data["ca_chain"].([]any); len(chain) != 2 {
		t.Errorf("ca_chain has %d entries, want intermediate and root", len(chain))
	}
	if w, _ := body["warnings"].([]any); len(w) != 1 || !strings.Contains(w[0].(string), "bogus") {
		t.Errorf("warnings %v, want the unrecognized parameter named", body["warnings"])
	}
	if got := time.Until(leafs[0].NotAfter); got < 59*time.Minute || got > time.Hour {
		t.Errorf("ttl 3600 gave %v", got)
	}
	// The CN the CSR carries is not used: the role has use_csr_common_name off.
	if leafs[0].Subject.CommonName != "" {
		t.Errorf("CN %q copied from the CSR", leafs[0].Subject.CommonName)
	}

	// Issuers: LIST or GET ?list=true, unauthenticated; then each issuer.
	for _, method := range []string{"LIST", "GET"} {
		url := s.URL + "/v1/pki/issuers"
		if method == "GET" {
			url += "?list=true"
		}
		status, body = call(t, c, method, url, "", nil)
		keys, _ := body["data"].(map[string]any)["keys"].([]any)
		if status != 200 || len(keys) != 2 {
			t.Fatalf("%s issuers: %d %v", method, status, body)
		}
	}
	status, body = call(t, c, "GET", s.URL+"/v1/pki/issuer/default/json", "", nil)
	if status != 200 || body["data"].(map[string]any)["certificate"] == nil {
		t.Errorf("issuer/default/json: %d %v", status, body)
	}
}
