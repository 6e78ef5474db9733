package console_test

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"html"
	"io"
	"net/http"
	"net/http/cookiejar"
	"net/url"
	"os"
	"regexp"
	"strings"
	"testing"

	"github.com/lienthong/lienthong/catalog"
	"github.com/lienthong/lienthong/controlplane/client"
)

// These tests talk HTTP to the console of a real control plane, without a
// browser: the rules that must hold whatever the client is.

// visitor is one cookie jar trusting the control plane's CA.
type visitor struct {
	t    *testing.T
	base string
	hc   *http.Client
}

func newVisitor(t *testing.T, fed *federation) *visitor {
	t.Helper()
	pem, err := os.ReadFile(fed.ready.CAFile)
	if err != nil {
		t.Fatal(err)
	}
	pool := x509.NewCertPool()
	pool.AppendCertsFromPEM(pem)
	jar, err := cookiejar.New(nil)
	if err != nil {
		t.Fatal(err)
	}
	return &visitor{t: t, base: fed.ready.URL, hc: &http.Client{Jar: jar,
		Transport: &http.Transport{TLSClientConfig: &tls.Config{RootCAs: pool, MinVersion: tls.VersionTLS12}}}}
}

func (v *visitor) get(path string) (*http.Response, string) {
	v.t.Helper()
	resp, err := v.hc.Get(v.base + path)
	if err != nil {
		v.t.Fatal(err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		v.t.Fatal(err)
	}
	return resp, string(b)
}

func (v *visitor) post(path string, form url.Values, origin string) (*http.Response, string) {
	v.t.Helper()
	req, err := http.NewRequest(http.MethodPost, v.base+path, strings.NewReader(form.Encode()))
	if err != nil {
		v.t.Fatal(err)
	}
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	if origin != "" {
		req.Header.Set("Origin", origin)
	}
	resp, err := v.hc.Do(req)
	if err != nil {
		v.t.Fatal(err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		v.t.Fatal(err)
	}
	return resp, string(b)
}

var csrfField = regexp.MustCompile(`name="csrf" value="([^"]+)"`)

// csrf reads the form token of a page.
func (v *visitor) csrf(page string) string {
	v.t.Helper()
	_, body := v.get(page)
	m := csrfField.FindStringSubmatch(body)
	if m == nil {
		v.t.Fatalf("no CSRF token on %s", page)
	}
	return html.UnescapeString(m[1])
}

func (v *visitor) signInWithToken(token string) *http.Response {
	v.t.Helper()
	resp, _ := v.post("/console/login", url.Values{"csrf": {v.csrf("/console/login")}, "token": {token}, "next": {"/console"}}, "")
	return resp
}

func TestConsoleOverHTTP(t *testing.T) {
	ctx, cancel := context.WithCancel(context.Background())
	fed := startFederation(t, ctx, "")
	t.Cleanup(cancel)
	admin, err := client.New(fed.ready.URL, fed.ready.AdminToken, fed.ready.CAFile)
	if err != nil {
		t.Fatal(err)
	}

	t.Run("headers and cookie", func(t *testing.T) {
		v := newVisitor(t, fed)
		resp, body := v.get("/console/login")
		csp := resp.Header.Get("Content-Security-Policy")
		for _, want := range []string{"default-src 'none'", "script-src 'self'", "style-src 'self'", "frame-ancestors 'none'"} {
			if !strings.Contains(csp, want) {
				t.Errorf("CSP %q lacks %q", csp, want)
			}
		}
		if strings.Contains(csp, "unsafe-inline") || strings.Contains(body, "<script>") || strings.Contains(body, " style=") {
			t.Error("the page needs inline script or style")
		}
		var c *http.Cookie
		for _, x := range resp.Cookies() {
			if x.Name == "__Host-lt_console" {
				c = x
			}
		}
		if c == nil || !c.HttpOnly || !c.Secure || c.SameSite != http.SameSiteStrictMode || c.Path != "/" {
			t.Fatalf("session cookie = %+v, want HttpOnly, Secure, SameSite=Strict, Path=/", c)
		}
		if resp, _ := v.get("/console/static/console.js"); resp.StatusCode != http.StatusOK {
			t.Errorf("embedded script: %d", resp.StatusCode)
		}
	})

	t.Run("a form without its CSRF token or from another origin is refused", func(t *testing.T) {
		v := newVisitor(t, fed)
		if resp := v.signInWithToken(fed.ready.AdminToken); resp.Request.URL.Path != "/console" {
			t.Fatalf("sign-in landed on %s", resp.Request.URL)
		}
		token := v.csrf("/console/access")
		for name, tc := range map[string]struct {
			form   url.Values
			origin string
		}{
			"no token":     {url.Values{"id": {"grt-x"}, "reason": {"r"}}, ""},
			"wrong token":  {url.Values{"id": {"grt-x"}, "reason": {"r"}, "csrf": {token + "x"}}, ""},
			"cross origin": {url.Values{"id": {"grt-x"}, "reason": {"r"}, "csrf": {token}}, "https://evil.example"},
		} {
			resp, _ := v.post("/console/access/revoke", tc.form, tc.origin)
			if resp.StatusCode != http.StatusForbidden {
				t.Errorf("%s: status %d, want 403", name, resp.StatusCode)
			}
		}
	})

	t.Run("a revoked token ends its session", func(t *testing.T) {
		created, err := admin.CreateToken(ctx, client.NewToken{Name: "auditor to revoke", Role: catalog.RoleAuditor, Member: "000.00.00.G01"})
		if err != nil {
			t.Fatal(err)
		}
		secret, tok := created.Token, created.Record
		v := newVisitor(t, fed)
		v.signInWithToken(secret)
		if resp, _ := v.get("/console/audit"); resp.StatusCode != http.StatusOK || resp.Request.URL.Path != "/console/audit" {
			t.Fatalf("auditor's audit page: %d at %s", resp.StatusCode, resp.Request.URL.Path)
		}
		if _, err := admin.RevokeToken(ctx, tok.ID); err != nil {
			t.Fatal(err)
		}
		if resp, _ := v.get("/console/audit"); resp.Request.URL.Path != "/console/login" {
			t.Fatalf("after revocation the audit page answered at %s, want the sign-in", resp.Request.URL.Path)
		}
	})

	t.Run("a wrong token is refused and a login link works once", func(t *testing.T) {
		v := newVisitor(t, fed)
		if resp := v.signInWithToken("lt_nope_" + strings.Repeat("x", 43)); resp.StatusCode != http.StatusUnauthorized {
			t.Fatalf("wrong token: %d", resp.StatusCode)
		}
		l, err := fed.ready.Console.MintLoginLink(ctx, fed.ready.AdminToken, catalog.RoleApprover, "000.00.00.G01", "once", 0)
		if err != nil {
			t.Fatal(err)
		}
		code := strings.TrimPrefix(l.Path, "/console/link?code=")
		code, _ = url.QueryUnescape(code)
		redeem := func(v *visitor) *http.Response {
			resp, _ := v.post("/console/link", url.Values{"csrf": {v.csrf(l.Path)}, "code": {code}}, "")
			return resp
		}
		if resp := redeem(v); resp.Request.URL.Path != "/console" {
			t.Fatalf("first use landed on %s (%d)", resp.Request.URL.Path, resp.StatusCode)
		}
		if resp := redeem(newVisitor(t, fed)); resp.StatusCode != http.StatusUnauthorized {
			t.Fatalf("second use: %d, want 401", resp.StatusCode)
		}
		// A member admin cannot mint a link for another member.
		g05, err := admin.CreateToken(ctx, client.NewToken{Name: "g05 admin", Role: catalog.RoleMemberAdmin, Member: "000.00.00.G05"})
		if err != nil {
			t.Fatal(err)
		}
		sec := g05.Token
		if _, err := fed.ready.Console.MintLoginLink(ctx, sec, catalog.RoleApprover, "000.00.00.G01", "not mine", 0); err == nil {
			t.Fatal("a G05 member admin minted a login link for G01")
		}
	})

	t.Run("pages need a session; an integrator sees no audit", func(t *testing.T) {
		v := newVisitor(t, fed)
		for _, p := range []string{"/console/catalog", "/console/access", "/console/security", "/console/gateways", "/console/audit", "/console/flows"} {
			if resp, _ := v.get(p); resp.Request.URL.Path != "/console/login" {
				t.Errorf("%s without a session answered at %s", p, resp.Request.URL.Path)
			}
		}
		if resp, _ := v.get("/console/flows/data"); resp.StatusCode != http.StatusUnauthorized {
			t.Errorf("flow data without a session: %d", resp.StatusCode)
		}
		integ, err := admin.CreateToken(ctx, client.NewToken{Name: "integrator", Role: catalog.RoleIntegrator, Member: "000.00.00.G14"})
		if err != nil {
			t.Fatal(err)
		}
		sec := integ.Token
		v.signInWithToken(sec)
		for _, p := range []string{"/console/audit", "/console/flows", "/console/flows/data"} {
			if resp, _ := v.get(p); resp.StatusCode != http.StatusForbidden {
				t.Errorf("integrator on %s: %d, want 403", p, resp.StatusCode)
			}
		}
		if resp, body := v.get("/console/citizen"); resp.StatusCode != http.StatusOK || !strings.Contains(body, "chưa được bật") {
			t.Errorf("citizen page without an issuer: %d", resp.StatusCode)
		}
	})
}
