// Package vaulttest is a stand-in for a HashiCorp Vault (or OpenBao) server
// running the PKI secrets engine and the AppRole auth method, for the tests
// of package certs/vault.
//
// It exists because a real Vault cannot be installed where these tests
// run. It is not Vault: it follows Vault's documented HTTP API for exactly
// the endpoints the certs/vault backend calls, and nothing else:
//
//	POST|PUT  /v1/<pki mount>/sign/<role>         sign a CSR (X-Vault-Token)
//	LIST      /v1/<pki mount>/issuers             list issuers (unauthenticated;
//	                                              GET ?list=true also works)
//	GET       /v1/<pki mount>/issuer/<ref>/json   read one issuer (unauthenticated)
//	POST|PUT  /v1/auth/<approle mount>/login      AppRole login
//	POST|PUT  /v1/auth/token/renew-self           renew the calling token
//
// Answers use Vault's envelope ({request_id, lease_id, renewable,
// lease_duration, data, wrap_info, warnings, auth}) and its error shape
// ({"errors": [...]}) with Vault's status codes: 400 for a bad request, 403
// for a missing, unknown or expired token or a path its policy does not
// allow, 404 for an unknown path, 405 for a wrong method. The role honours
// only the options Liên Thông's recommended configuration sets (see Role),
// and the PKI mount holds a root and an intermediate issuer of its own. What
// it proves is that the backend speaks the documented API; a deployment
// should still be tried once against the real server.
package vaulttest

import (
	"crypto"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/rsa"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"encoding/pem"
	"errors"
	"fmt"
	"io"
	"log"
	"math/big"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strconv"
	"strings"
	"sync"
	"time"
)

// Role is the subset of a Vault PKI role that the stand-in implements, with
// Vault's option names in the comments.
type Role struct {
	// Name is the role's name in the URL (default "lienthong-system").
	Name string
	// AllowedURISANs are glob patterns, e.g. "spiffe://lienthong.gov.vn/*"
	// (allowed_uri_sans).
	AllowedURISANs []string
	// RequireCN makes common_name mandatory (require_cn).
	RequireCN bool
	// UseCSRCommonName and UseCSRSANs take the name and the SANs from the
	// CSR instead of the request body (use_csr_common_name, use_csr_sans).
	UseCSRCommonName, UseCSRSANs bool
	// ServerFlag and ClientFlag add the server and client authentication
	// extended key usages (server_flag, client_flag).
	ServerFlag, ClientFlag bool
	// ExtKeyUsage adds further extended key usages (ext_key_usage).
	ExtKeyUsage []x509.ExtKeyUsage
	// KeyUsage is the key usage of issued certificates (key_usage).
	KeyUsage x509.KeyUsage
	// TTL and MaxTTL bound lifetimes (ttl, max_ttl).
	TTL, MaxTTL time.Duration
	// NotBeforeDuration backdates NotBefore (not_before_duration, 30s in
	// Vault).
	NotBeforeDuration time.Duration

	// Tamper is not a Vault option. It edits each certificate just before
	// signing, so tests can play a misconfigured or compromised Vault and
	// check that the backend refuses what comes back.
	Tamper func(*x509.Certificate)
}

// RecommendedRole is the role docs/certificates.md recommends for trust
// domain td: only the system's SPIFFE URI, no common name, client and
// server authentication, 72h by default and 30 days at most.
func RecommendedRole(td string) Role {
	return Role{
		Name:              "lienthong-system",
		AllowedURISANs:    []string{"spiffe://" + td + "/*"},
		ServerFlag:        true,
		ClientFlag:        true,
		KeyUsage:          x509.KeyUsageDigitalSignature,
		TTL:               72 * time.Hour,
		MaxTTL:            30 * 24 * time.Hour,
		NotBeforeDuration: 30 * time.Second,
	}
}

// Config configures a Server.
type Config struct {
	// PKIMount and AppRoleMount are the mount paths (defaults "pki" and
	// "approle").
	PKIMount, AppRoleMount string
	// Role is the one PKI role.
	Role Role
	// TokenTTL and TokenMaxTTL bound the tokens AppRole logins hand out
	// (token_ttl, token_max_ttl; defaults 20m and 1h).
	TokenTTL, TokenMaxTTL time.Duration
}

// SignPolicy names the policy AppRole tokens get: update on the sign path
// of the role, nothing else (plus Vault's default policy, which allows
// renew-self).
const SignPolicy = "lienthong-sign"

// Server is a running stand-in on a loopback TLS listener.
type Server struct {
	// URL is the address to give the Vault client, https://127.0.0.1:port.
	URL string

	cfg Config
	ts  *httptest.Server

	mu            sync.Mutex
	issuers       []*issuer
	defaultIssuer string
	tokens        map[string]*token
	rootToken     string
	roleID        string
	secretID      string
	hits          map[string]int
	generation    int
}

type issuer struct {
	id, name string
	cert     *x509.Certificate
	key      crypto.Signer
	parent   *issuer
	revoked  bool
}

type token struct {
	policies   []string
	root       bool
	expires    time.Time // zero for the root token
	maxExpires time.Time
}

// New starts a stand-in with a root and an intermediate issuer, the
// intermediate as default; Close stops it.
func New(cfg Config) (*Server, error) {
	if cfg.PKIMount == "" {
		cfg.PKIMount = "pki"
	}
	if cfg.AppRoleMount == "" {
		cfg.AppRoleMount = "approle"
	}
	if cfg.Role.Name == "" {
		cfg.Role.Name = "lienthong-system"
	}
	if cfg.Role.MaxTTL == 0 {
		cfg.Role.MaxTTL = 32 * 24 * time.Hour // Vault's system max lease TTL
	}
	if cfg.TokenTTL == 0 {
		cfg.TokenTTL = 20 * time.Minute
	}
	if cfg.TokenMaxTTL == 0 {
		cfg.TokenMaxTTL = time.Hour
	}
	s := &Server{
		cfg:      cfg,
		tokens:   map[string]*token{},
		hits:     map[string]int{},
		roleID:   randomID(),
		secretID: randomID(),
	}
	s.rootToken = "hvs." + randomToken()
	s.tokens[s.rootToken] = &token{root: true, policies: []string{"root"}}
	if err := s.RotateRoot(); err != nil {
		return nil, err
	}
	s.ts = httptest.NewUnstartedServer(http.HandlerFunc(s.serve))
	// Clients that hang up mid-handshake at the end of a test are no news.
	s.ts.Config.ErrorLog = log.New(io.Discard, "", 0)
	s.ts.StartTLS()
	s.URL = s.ts.URL
	return s, nil
}

// Close shuts the server down.
func (s *Server) Close() { s.ts.Close() }

// CACertPEM returns the certificate of the server's TLS listener (not of
// its PKI), for the client's trust in the server.
func (s *Server) CACertPEM() []byte {
	return pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: s.ts.Certificate().Raw})
}

// RootToken returns a token allowed everything.
func (s *Server) RootToken() string { return s.rootToken }

// AppRoleCredentials returns the role_id and secret_id AppRole login takes.
func (s *Server) AppRoleCredentials() (roleID, secretID string) { return s.roleID, s.secretID }

// RevokeTokens revokes every token but the root token, as when tokens
// expire or an operator revokes them; the next call with one gets 403.
func (s *Server) RevokeTokens() {
	s.mu.Lock()
	defer s.mu.Unlock()
	for k, t := range s.tokens {
		if !t.root {
			delete(s.tokens, k)
		}
	}
}

// Hits returns how often an endpoint was called: "sign", "login",
// "renew-self", "issuers" or "issuer".
func (s *Server) Hits(endpoint string) int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.hits[endpoint]
}

// Roots returns the root certificates of the mount.
func (s *Server) Roots() []*x509.Certificate {
	s.mu.Lock()
	defer s.mu.Unlock()
	var out []*x509.Certificate
	for _, is := range s.issuers {
		if is.parent == nil {
			out = append(out, is.cert)
		}
	}
	return out
}

// RotateRoot adds a new root and intermediate to the mount and makes the
// intermediate the default issuer, as an operator rotating a Vault PKI mount
// does; the old issuers stay until RemoveIssuersExceptDefault.
func (s *Server) RotateRoot() error {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.generation++
	root, err := newIssuer(fmt.Sprintf("root-%d", s.generation), nil)
	if err != nil {
		return err
	}
	inter, err := newIssuer(fmt.Sprintf("int-%d", s.generation), root)
	if err != nil {
		return err
	}
	s.issuers = append(s.issuers, root, inter)
	s.defaultIssuer = inter.id
	return nil
}

// RemoveIssuersExceptDefault deletes every issuer but the default one and
// its parents, as when an operator retires an old root.
func (s *Server) RemoveIssuersExceptDefault() {
	s.mu.Lock()
	defer s.mu.Unlock()
	keep := map[*issuer]bool{}
	for _, is := range s.issuers {
		if is.id == s.defaultIssuer {
			for p := is; p != nil; p = p.parent {
				keep[p] = true
			}
		}
	}
	var out []*issuer
	for _, is := range s.issuers {
		if keep[is] {
			out = append(out, is)
		}
	}
	s.issuers = out
}

// RevokeIssuer marks an issuer (by name, e.g. "root-1", or id) revoked, as
// POST /v1/<mount>/issuer/<ref>/revoke does in Vault; it reports whether
// the issuer exists.
func (s *Server) RevokeIssuer(ref string) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	is := s.findIssuer(ref)
	if is != nil {
		is.revoked = true
	}
	return is != nil
}

func newIssuer(name string, parent *issuer) (*issuer, error) {
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return nil, err
	}
	now := time.Now()
	tmpl := &x509.Certificate{
		SerialNumber:          vaultSerial(),
		Subject:               pkix.Name{CommonName: "vaulttest " + name},
		NotBefore:             now.Add(-30 * time.Second),
		NotAfter:              now.Add(5 * 365 * 24 * time.Hour),
		KeyUsage:              x509.KeyUsageCertSign | x509.KeyUsageCRLSign,
		BasicConstraintsValid: true,
		IsCA:                  true,
	}
	signer, signerCert := crypto.Signer(key), tmpl
	if parent != nil {
		tmpl.NotAfter = now.Add(2 * 365 * 24 * time.Hour)
		signer, signerCert = parent.key, parent.cert
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, signerCert, key.Public(), signer)
	if err != nil {
		return nil, err
	}
	cert, err := x509.ParseCertificate(der)
	if err != nil {
		return nil, err
	}
	return &issuer{id: uuid(), name: name, cert: cert, key: key, parent: parent}, nil
}

// response is Vault's answer envelope.
type response struct {
	RequestID     string    `json:"request_id"`
	LeaseID       string    `json:"lease_id"`
	Renewable     bool      `json:"renewable"`
	LeaseDuration int       `json:"lease_duration"`
	Data          any       `json:"data"`
	WrapInfo      any       `json:"wrap_info"`
	Warnings      []string  `json:"warnings"`
	Auth          *authInfo `json:"auth"`
}

type authInfo struct {
	ClientToken      string            `json:"client_token"`
	Accessor         string            `json:"accessor"`
	Policies         []string          `json:"policies"`
	TokenPolicies    []string          `json:"token_policies"`
	IdentityPolicies []string          `json:"identity_policies"`
	Metadata         map[string]string `json:"metadata"`
	LeaseDuration    int               `json:"lease_duration"`
	Renewable        bool              `json:"renewable"`
	EntityID         string            `json:"entity_id"`
	TokenType        string            `json:"token_type"`
	Orphan           bool              `json:"orphan"`
	MFARequirement   any               `json:"mfa_requirement"`
	NumUses          int               `json:"num_uses"`
}

func writeJSON(w http.ResponseWriter, status int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set("Cache-Control", "no-store")
	w.WriteHeader(status)
	_ = json.NewEncoder(w).Encode(v)
}

func writeErr(w http.ResponseWriter, status int, msgs ...string) {
	if msgs == nil {
		msgs = []string{}
	}
	writeJSON(w, status, map[string][]string{"errors": msgs})
}

func ok(w http.ResponseWriter, r response) {
	r.RequestID = uuid()
	writeJSON(w, http.StatusOK, r)
}

// serve routes a request the way Vault's HTTP layer does for the paths
// the stand-in knows.
func (s *Server) serve(w http.ResponseWriter, r *http.Request) {
	path, found := strings.CutPrefix(r.URL.Path, "/v1/")
	if !found {
		writeErr(w, http.StatusNotFound)
		return
	}
	var op string
	switch {
	case r.Method == "LIST" || r.Method == http.MethodGet && r.URL.Query().Get("list") == "true":
		op = "list"
	case r.Method == http.MethodGet:
		op = "read"
	case r.Method == http.MethodPost || r.Method == http.MethodPut:
		op = "update"
	default:
		writeErr(w, http.StatusMethodNotAllowed)
		return
	}
	pki := s.cfg.PKIMount + "/"
	type route struct {
		op      string
		auth    bool
		handler func(http.ResponseWriter, *http.Request, string)
	}
	var rt route
	var arg string
	switch {
	case path == "auth/"+s.cfg.AppRoleMount+"/login":
		rt = route{"update", false, s.login}
	case path == "auth/token/renew-self":
		rt = route{"update", true, s.renewSelf}
	case path == pki+"issuers":
		rt = route{"list", false, s.listIssuers}
	case strings.HasPrefix(path, pki+"issuer/"):
		ref, rest, _ := strings.Cut(strings.TrimPrefix(path, pki+"issuer/"), "/")
		if rest != "" && rest != "json" {
			writeErr(w, http.StatusNotFound, fmt.Sprintf("no handler for route %q. route entry not found.", path))
			return
		}
		rt, arg = route{"read", false, s.readIssuer}, ref
	case strings.HasPrefix(path, pki+"sign/"):
		rt, arg = route{"update", true, s.sign}, strings.TrimPrefix(path, pki+"sign/")
	default:
		writeErr(w, http.StatusNotFound, fmt.Sprintf("no handler for route %q. route entry not found.", path))
		return
	}
	if rt.auth && !s.authorized(r, path) {
		writeErr(w, http.StatusForbidden, "permission denied")
		return
	}
	if op != rt.op {
		writeErr(w, http.StatusMethodNotAllowed)
		return
	}
	rt.handler(w, r, arg)
}

// requestToken reads X-Vault-Token, or an Authorization bearer token.
func requestToken(r *http.Request) string {
	if t := r.Header.Get("X-Vault-Token"); t != "" {
		return t
	}
	if t, ok := strings.CutPrefix(r.Header.Get("Authorization"), "Bearer "); ok {
		return t
	}
	return ""
}

// authorized checks the token and its policy for path.
func (s *Server) authorized(r *http.Request, path string) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	tok, found := s.tokens[requestToken(r)]
	if !found {
		return false
	}
	if !tok.expires.IsZero() && !time.Now().Before(tok.expires) {
		delete(s.tokens, requestToken(r))
		return false
	}
	if tok.root {
		return true
	}
	switch path {
	case "auth/token/renew-self": // Vault's default policy
		return true
	case s.cfg.PKIMount + "/sign/" + s.cfg.Role.Name:
		for _, p := range tok.policies {
			if p == SignPolicy {
				return true
			}
		}
	}
	return false
}

// decodeBody reads a JSON object body; unknown keys become warnings, as
// Vault reports them.
func decodeBody(r *http.Request, known ...string) (map[string]any, []string, error) {
	body := map[string]any{}
	dec := json.NewDecoder(io.LimitReader(r.Body, 1<<20))
	dec.UseNumber()
	if err := dec.Decode(&body); err != nil && !errors.Is(err, io.EOF) {
		return nil, nil, fmt.Errorf("failed to parse JSON input: %v", err)
	}
	var unknown []string
	for k := range body {
		isKnown := false
		for _, kk := range known {
			if k == kk {
				isKnown = true
			}
		}
		if !isKnown {
			unknown = append(unknown, k)
		}
	}
	var warnings []string
	if len(unknown) > 0 {
		warnings = []string{fmt.Sprintf("Endpoint ignored these unrecognized parameters: %v", unknown)}
	}
	return body, warnings, nil
}

func str(body map[string]any, key string) string {
	switch v := body[key].(type) {
	case string:
		return v
	case json.Number:
		return v.String()
	case bool:
		return strconv.FormatBool(v)
	}
	return ""
}

// list reads a comma-separated string or a JSON array of strings, the two
// forms Vault accepts for list parameters.
func list(body map[string]any, key string) []string {
	var out []string
	switch v := body[key].(type) {
	case string:
		for _, p := range strings.Split(v, ",") {
			if p = strings.TrimSpace(p); p != "" {
				out = append(out, p)
			}
		}
	case []any:
		for _, e := range v {
			if s, ok := e.(string); ok && s != "" {
				out = append(out, s)
			}
		}
	}
	return out
}

// parseTTL reads a duration as Vault does: seconds as a number or a numeric
// string, or a Go duration string.
func parseTTL(v string) (time.Duration, error) {
	if v == "" {
		return 0, nil
	}
	if n, err := strconv.ParseInt(v, 10, 64); err == nil {
		return time.Duration(n) * time.Second, nil
	}
	return time.ParseDuration(v)
}

func (s *Server) count(endpoint string) {
	s.mu.Lock()
	s.hits[endpoint]++
	s.mu.Unlock()
}

func (s *Server) login(w http.ResponseWriter, r *http.Request, _ string) {
	s.count("login")
	body, warnings, err := decodeBody(r, "role_id", "secret_id")
	if err != nil {
		writeErr(w, http.StatusBadRequest, err.Error())
		return
	}
	roleID, secretID := str(body, "role_id"), str(body, "secret_id")
	if roleID == "" {
		writeErr(w, http.StatusBadRequest, "missing role_id")
		return
	}
	if roleID != s.roleID || secretID != s.secretID {
		writeErr(w, http.StatusBadRequest, "invalid role or secret ID")
		return
	}
	now := time.Now()
	tokenID := "hvs." + randomToken()
	tok := &token{policies: []string{"default", SignPolicy}, expires: now.Add(s.cfg.TokenTTL), maxExpires: now.Add(s.cfg.TokenMaxTTL)}
	s.mu.Lock()
	s.tokens[tokenID] = tok
	s.mu.Unlock()
	ok(w, response{Warnings: warnings, Auth: &authInfo{
		ClientToken:   tokenID,
		Accessor:      randomToken(),
		Policies:      tok.policies,
		TokenPolicies: tok.policies,
		Metadata:      map[string]string{"role_name": "lienthong-control-plane"},
		LeaseDuration: int(s.cfg.TokenTTL / time.Second),
		Renewable:     true,
		EntityID:      uuid(),
		TokenType:     "service",
		Orphan:        true,
	}})
}

func (s *Server) renewSelf(w http.ResponseWriter, r *http.Request, _ string) {
	s.count("renew-self")
	body, warnings, err := decodeBody(r, "increment")
	if err != nil {
		writeErr(w, http.StatusBadRequest, err.Error())
		return
	}
	inc, err := parseTTL(str(body, "increment"))
	if err != nil {
		writeErr(w, http.StatusBadRequest, "invalid increment: "+err.Error())
		return
	}
	if inc == 0 {
		inc = s.cfg.TokenTTL
	}
	id := requestToken(r)
	s.mu.Lock()
	tok := s.tokens[id]
	if tok == nil { // revoked since the policy check
		s.mu.Unlock()
		writeErr(w, http.StatusForbidden, "permission denied")
		return
	}
	if tok.root {
		s.mu.Unlock()
		writeErr(w, http.StatusBadRequest, "lease is not renewable")
		return
	}
	now := time.Now()
	exp := now.Add(inc)
	if exp.After(tok.maxExpires) {
		exp = tok.maxExpires
		warnings = append(warnings, fmt.Sprintf("TTL of %q exceeded the effective max_ttl of %q; TTL value is capped accordingly", inc, tok.maxExpires.Sub(now).Round(time.Second)))
	}
	tok.expires = exp
	policies := tok.policies
	s.mu.Unlock()
	ok(w, response{Warnings: warnings, Auth: &authInfo{
		ClientToken:   id,
		Policies:      policies,
		TokenPolicies: policies,
		LeaseDuration: int(exp.Sub(now) / time.Second),
		Renewable:     true,
		TokenType:     "service",
		Orphan:        true,
	}})
}

func (s *Server) listIssuers(w http.ResponseWriter, _ *http.Request, _ string) {
	s.count("issuers")
	s.mu.Lock()
	defer s.mu.Unlock()
	keys := []string{}
	info := map[string]any{}
	for _, is := range s.issuers {
		keys = append(keys, is.id)
		info[is.id] = map[string]any{"issuer_name": is.name, "is_default": is.id == s.defaultIssuer}
	}
	ok(w, response{Data: map[string]any{"keys": keys, "key_info": info}})
}

func (s *Server) findIssuer(ref string) *issuer {
	if ref == "default" {
		ref = s.defaultIssuer
	}
	for _, is := range s.issuers {
		if is.id == ref || is.name == ref {
			return is
		}
	}
	return nil
}

func pemOf(c *x509.Certificate) string {
	return string(pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: c.Raw}))
}

// chainOf is the issuer followed by its parents, as Vault's ca_chain.
func chainOf(is *issuer) []*x509.Certificate {
	var out []*x509.Certificate
	for p := is; p != nil; p = p.parent {
		out = append(out, p.cert)
	}
	return out
}

func (s *Server) readIssuer(w http.ResponseWriter, _ *http.Request, ref string) {
	s.count("issuer")
	s.mu.Lock()
	is := s.findIssuer(ref)
	s.mu.Unlock()
	if is == nil {
		writeErr(w, http.StatusBadRequest, "unable to find PKI issuer for reference: "+ref)
		return
	}
	var chain []string
	for _, c := range chainOf(is) {
		chain = append(chain, pemOf(c))
	}
	s.mu.Lock()
	revoked := is.revoked
	s.mu.Unlock()
	revocationTime := int64(0)
	if revoked {
		revocationTime = time.Now().Unix()
	}
	ok(w, response{Data: map[string]any{
		"issuer_id":               is.id,
		"issuer_name":             is.name,
		"key_id":                  uuid(),
		"certificate":             pemOf(is.cert),
		"ca_chain":                chain,
		"leaf_not_after_behavior": "err",
		"usage":                   "read-only,issuing-certificates,crl-signing,ocsp-signing",
		"revoked":                 revoked,
		"revocation_time":         revocationTime,
	}})
}

// globMatch matches Vault's glob patterns, where '*' stands for any run of
// characters, '/' included.
func globMatch(pattern, s string) bool {
	parts := strings.Split(pattern, "*")
	if len(parts) == 1 {
		return pattern == s
	}
	if !strings.HasPrefix(s, parts[0]) {
		return false
	}
	s = s[len(parts[0]):]
	for _, p := range parts[1 : len(parts)-1] {
		i := strings.Index(s, p)
		if i < 0 {
			return false
		}
		s = s[i+len(p):]
	}
	return strings.HasSuffix(s, parts[len(parts)-1])
}

func (s *Server) sign(w http.ResponseWriter, r *http.Request, roleName string) {
	s.count("sign")
	role := s.cfg.Role
	if roleName != role.Name {
		writeErr(w, http.StatusBadRequest, "unknown role: "+roleName)
		return
	}
	body, warnings, err := decodeBody(r, "csr", "common_name", "alt_names", "ip_sans", "uri_sans", "other_sans", "ttl", "format", "exclude_cn_from_sans", "not_after", "remove_roots_from_chain")
	if err != nil {
		writeErr(w, http.StatusBadRequest, err.Error())
		return
	}
	block, _ := pem.Decode([]byte(str(body, "csr")))
	if block == nil {
		writeErr(w, http.StatusBadRequest, "csr contains no data")
		return
	}
	csr, err := x509.ParseCertificateRequest(block.Bytes)
	if err != nil {
		writeErr(w, http.StatusBadRequest, "certificate request could not be parsed: "+err.Error())
		return
	}
	if err := csr.CheckSignature(); err != nil {
		writeErr(w, http.StatusBadRequest, "request signature invalid: "+err.Error())
		return
	}
	switch k := csr.PublicKey.(type) { // key_type "any"
	case *rsa.PublicKey:
		if k.N.BitLen() < 2048 {
			writeErr(w, http.StatusBadRequest, fmt.Sprintf("RSA keys < 2048 bits are unsafe and not supported: got %d", k.N.BitLen()))
			return
		}
	case *ecdsa.PublicKey:
		if k.Curve.Params().BitSize < 224 {
			writeErr(w, http.StatusBadRequest, "EC keys < 224 bits are unsafe and not supported")
			return
		}
	}

	cn := str(body, "common_name")
	if role.UseCSRCommonName && csr.Subject.CommonName != "" {
		cn = csr.Subject.CommonName
	}
	if cn == "" && role.RequireCN {
		writeErr(w, http.StatusBadRequest, `the common_name field is required, or must be provided in a CSR with "use_csr_common_name" set to true, unless "require_cn" is set to false`)
		return
	}
	if cn != "" { // no allowed_domains, allow_any_name false
		writeErr(w, http.StatusBadRequest, fmt.Sprintf("common name %s not allowed by this role", cn))
		return
	}
	dns, ips, uriStrs := list(body, "alt_names"), list(body, "ip_sans"), list(body, "uri_sans")
	if role.UseCSRSANs {
		dns, ips, uriStrs = csr.DNSNames, nil, nil
		for _, ip := range csr.IPAddresses {
			ips = append(ips, ip.String())
		}
		for _, u := range csr.URIs {
			uriStrs = append(uriStrs, u.String())
		}
	}
	if len(dns) > 0 {
		writeErr(w, http.StatusBadRequest, fmt.Sprintf("subject alternate name %s not allowed by this role", dns[0]))
		return
	}
	if len(ips) > 0 { // allow_ip_sans false
		writeErr(w, http.StatusBadRequest, fmt.Sprintf("IP Subject Alternative Names are not allowed in this role, but was provided %s", ips[0]))
		return
	}
	var uris []*url.URL
	for _, us := range uriStrs {
		u, err := url.Parse(us)
		if err != nil {
			writeErr(w, http.StatusBadRequest, fmt.Sprintf("unable to parse URI %q: %v", us, err))
			return
		}
		allowed := false
		for _, p := range role.AllowedURISANs {
			allowed = allowed || globMatch(p, us)
		}
		if !allowed {
			writeErr(w, http.StatusBadRequest, fmt.Sprintf("URI Subject Alternative Names are not allowed in this role, but was provided %s", us))
			return
		}
		uris = append(uris, u)
	}

	ttl, err := parseTTL(str(body, "ttl"))
	if err != nil {
		writeErr(w, http.StatusBadRequest, "error parsing ttl: "+err.Error())
		return
	}
	if ttl == 0 {
		ttl = role.TTL
	}
	if ttl == 0 || ttl > role.MaxTTL {
		if ttl > role.MaxTTL {
			warnings = append(warnings, fmt.Sprintf("TTL %q is longer than permitted maxTTL %q, so maxTTL is being used", ttl, role.MaxTTL))
		}
		ttl = role.MaxTTL
	}
	format := str(body, "format")
	if format == "" {
		format = "pem"
	}
	if format != "pem" && format != "der" && format != "pem_bundle" {
		writeErr(w, http.StatusBadRequest, "unsupported format argument: "+format)
		return
	}

	s.mu.Lock()
	is := s.findIssuer("default")
	s.mu.Unlock()
	now := time.Now()
	notAfter := now.Add(ttl)
	if notAfter.After(is.cert.NotAfter) { // leaf_not_after_behavior "err"
		writeErr(w, http.StatusBadRequest, fmt.Sprintf("cannot satisfy request, as TTL would result in notAfter of %s that is beyond the expiration of the CA certificate at %s", notAfter.UTC().Format(time.RFC3339Nano), is.cert.NotAfter.UTC().Format(time.RFC3339Nano)))
		return
	}
	tmpl := &x509.Certificate{
		SerialNumber: vaultSerial(),
		Subject:      pkix.Name{CommonName: cn},
		NotBefore:    now.Add(-role.NotBeforeDuration),
		NotAfter:     notAfter,
		URIs:         uris,
		KeyUsage:     role.KeyUsage,
		ExtKeyUsage:  append([]x509.ExtKeyUsage(nil), role.ExtKeyUsage...),
	}
	if role.ServerFlag {
		tmpl.ExtKeyUsage = append(tmpl.ExtKeyUsage, x509.ExtKeyUsageServerAuth)
	}
	if role.ClientFlag {
		tmpl.ExtKeyUsage = append(tmpl.ExtKeyUsage, x509.ExtKeyUsageClientAuth)
	}
	if role.Tamper != nil {
		role.Tamper(tmpl)
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, is.cert, csr.PublicKey, is.key)
	if err != nil {
		writeErr(w, http.StatusInternalServerError, "1 error occurred:\n\t* error signing certificate: "+err.Error()+"\n\n")
		return
	}
	encode := func(raw []byte) string {
		if format == "der" {
			return base64.StdEncoding.EncodeToString(raw)
		}
		return string(pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: raw}))
	}
	certificate := encode(der)
	if format == "pem_bundle" {
		certificate += encode(is.cert.Raw)
	}
	var chain []string
	for _, c := range chainOf(is) {
		chain = append(chain, encode(c.Raw))
	}
	ok(w, response{Warnings: warnings, Data: map[string]any{
		"certificate":   certificate,
		"issuing_ca":    encode(is.cert.Raw),
		"ca_chain":      chain,
		"serial_number": colonHex(tmpl.SerialNumber),
		"expiration":    notAfter.Unix(),
	}})
}

// vaultSerial is a positive 20-byte random serial, as Vault makes them.
func vaultSerial() *big.Int {
	b := make([]byte, 20)
	if _, err := rand.Read(b); err != nil {
		panic(err)
	}
	b[0] &= 0x7f
	if b[0] == 0 {
		b[0] = 1
	}
	return new(big.Int).SetBytes(b)
}

// colonHex writes a serial as Vault does: lower-case hex bytes joined by
// colons.
func colonHex(n *big.Int) string {
	h := hex.EncodeToString(n.Bytes())
	var parts []string
	for i := 0; i < len(h); i += 2 {
		parts = append(parts, h[i:i+2])
	}
	return strings.Join(parts, ":")
}

func randomToken() string {
	const alphabet = "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789"
	b := make([]byte, 24)
	if _, err := rand.Read(b); err != nil {
		panic(err)
	}
	for i := range b {
		b[i] = alphabet[int(b[i])%len(alphabet)]
	}
	return string(b)
}

func randomID() string { return uuid() }

func uuid() string {
	b := make([]byte, 16)
	if _, err := rand.Read(b); err != nil {
		panic(err)
	}
	h := hex.EncodeToString(b)
	return h[0:8] + "-" + h[8:12] + "-" + h[12:16] + "-" + h[16:20] + "-" + h[20:32]
}
