// Package devoidc is a DEMO-ONLY OpenID Connect issuer on loopback, for
// `lienthong up` and the console's browser tests: it lets anyone sign in as
// any citizen by typing a 12-digit personal ID, because it checks nothing.
// It speaks the real protocol (discovery, JWKS, the authorization code flow
// with PKCE S256, RS256 ID tokens), so the console's sign-in and the
// tracker's verifier run exactly as against a national identity provider.
// It refuses to listen anywhere but loopback.
package devoidc

import (
	"context"
	"crypto"
	"crypto/rand"
	"crypto/rsa"
	"crypto/sha256"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"html/template"
	"math/big"
	"net"
	"net/http"
	"net/url"
	"regexp"
	"sync"
	"time"
)

// Issuer is a running demo issuer.
type Issuer struct {
	// URL is the issuer identifier, http://127.0.0.1:port.
	URL string
	// ClientID is the only client it serves (the console's).
	ClientID string
	// Suggest prefills the sign-in form's personal ID.
	Suggest string

	key   *rsa.PrivateKey
	srv   *http.Server
	mu    sync.Mutex
	codes map[string]grant
}

type grant struct {
	subject, redirect, challenge string
	expires                      time.Time
}

var personalID = regexp.MustCompile(`^[0-9]{12}$`)

// Start listens on addr (a loopback address such as 127.0.0.1:0) until ctx
// ends.
func Start(ctx context.Context, addr, clientID string) (*Issuer, error) {
	host, _, err := net.SplitHostPort(addr)
	if err != nil {
		return nil, fmt.Errorf("devoidc: %w", err)
	}
	if ip := net.ParseIP(host); ip == nil || !ip.IsLoopback() {
		return nil, errors.New("devoidc: the demo issuer listens on loopback only")
	}
	key, err := rsa.GenerateKey(rand.Reader, 2048)
	if err != nil {
		return nil, err
	}
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		return nil, fmt.Errorf("devoidc: %w", err)
	}
	iss := &Issuer{URL: "http://" + ln.Addr().String(), ClientID: clientID, key: key, codes: map[string]grant{}}
	mux := http.NewServeMux()
	mux.HandleFunc("GET /.well-known/openid-configuration", iss.discovery)
	mux.HandleFunc("GET /jwks", iss.jwks)
	mux.HandleFunc("GET /authorize", iss.authorizeForm)
	mux.HandleFunc("POST /authorize", iss.authorize)
	mux.HandleFunc("POST /token", iss.token)
	iss.srv = &http.Server{Handler: mux, ReadHeaderTimeout: 5 * time.Second}
	go func() { _ = iss.srv.Serve(ln) }()
	go func() {
		<-ctx.Done()
		sctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
		defer cancel()
		_ = iss.srv.Shutdown(sctx)
	}()
	return iss, nil
}

func writeJSON(w http.ResponseWriter, status int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set("Cache-Control", "no-store")
	w.WriteHeader(status)
	_ = json.NewEncoder(w).Encode(v)
}

func b64(b []byte) string { return base64.RawURLEncoding.EncodeToString(b) }

func (i *Issuer) discovery(w http.ResponseWriter, _ *http.Request) {
	writeJSON(w, http.StatusOK, map[string]any{
		"issuer": i.URL, "authorization_endpoint": i.URL + "/authorize", "token_endpoint": i.URL + "/token",
		"jwks_uri": i.URL + "/jwks", "response_types_supported": []string{"code"}, "subject_types_supported": []string{"public"},
		"id_token_signing_alg_values_supported": []string{"RS256"}, "code_challenge_methods_supported": []string{"S256"},
		"token_endpoint_auth_methods_supported": []string{"none"},
	})
}

func (i *Issuer) jwks(w http.ResponseWriter, _ *http.Request) {
	pub := i.key.PublicKey
	writeJSON(w, http.StatusOK, map[string]any{"keys": []map[string]string{{
		"kty": "RSA", "use": "sig", "alg": "RS256", "kid": "demo-1", "n": b64(pub.N.Bytes()), "e": b64(big.NewInt(int64(pub.E)).Bytes()),
	}}})
}

var page = template.Must(template.New("p").Parse(`<!doctype html><html lang="vi"><head><meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1"><title>DEMO identity provider</title></head>
<body style="font-family:sans-serif;max-width:36em;margin:2em auto">
<p style="background:#b3261e;color:#fff;padding:.6em"><strong>CHỈ DÙNG THỬ — DEMO ONLY.</strong> Nhà cung cấp định danh giả lập của <code>lienthong up</code>: không kiểm tra danh tính. A fake identity provider: it checks nothing.</p>
<form method="post" action="/authorize">
{{range $k, $v := .Params}}<input type="hidden" name="{{$k}}" value="{{$v}}">{{end}}
<label for="pid">Số định danh cá nhân / Personal ID</label><br>
<input id="pid" name="personal_id" value="{{.Suggest}}" inputmode="numeric" autofocus>
{{with .Error}}<p role="alert" style="color:#b3261e">{{.}}</p>{{end}}
<p><button type="submit" id="demo-signin">Đăng nhập (demo) / Sign in (demo)</button></p>
</form></body></html>`))

var authParams = []string{"client_id", "redirect_uri", "state", "code_challenge", "code_challenge_method", "response_type", "scope", "nonce"}

func (i *Issuer) params(v url.Values) map[string]string {
	out := map[string]string{}
	for _, k := range authParams {
		if x := v.Get(k); x != "" {
			out[k] = x
		}
	}
	return out
}

func (i *Issuer) authorizeForm(w http.ResponseWriter, r *http.Request) {
	i.show(w, i.params(r.URL.Query()), "")
}

func (i *Issuer) show(w http.ResponseWriter, params map[string]string, msg string) {
	w.Header().Set("Content-Type", "text/html; charset=utf-8")
	w.Header().Set("Cache-Control", "no-store")
	if msg != "" {
		w.WriteHeader(http.StatusBadRequest)
	}
	_ = page.Execute(w, map[string]any{"Params": params, "Suggest": i.Suggest, "Error": msg})
}

func (i *Issuer) authorize(w http.ResponseWriter, r *http.Request) {
	if err := r.ParseForm(); err != nil {
		http.Error(w, "bad form", http.StatusBadRequest)
		return
	}
	f := r.PostForm
	p := i.params(f)
	if f.Get("client_id") != i.ClientID || f.Get("response_type") != "code" || f.Get("code_challenge_method") != "S256" || f.Get("code_challenge") == "" {
		http.Error(w, "demo issuer: unknown client, or no PKCE S256 challenge", http.StatusBadRequest)
		return
	}
	redirect, err := url.Parse(f.Get("redirect_uri"))
	if err != nil || (redirect.Scheme != "https" && redirect.Scheme != "http") {
		http.Error(w, "demo issuer: bad redirect_uri", http.StatusBadRequest)
		return
	}
	if !personalID.MatchString(f.Get("personal_id")) {
		i.show(w, p, "Số định danh gồm 12 chữ số. A personal ID is 12 digits.")
		return
	}
	var b [24]byte
	if _, err := rand.Read(b[:]); err != nil {
		http.Error(w, "random", http.StatusInternalServerError)
		return
	}
	code := b64(b[:])
	i.mu.Lock()
	i.codes[code] = grant{subject: f.Get("personal_id"), redirect: redirect.String(), challenge: f.Get("code_challenge"), expires: time.Now().Add(time.Minute)}
	i.mu.Unlock()
	q := redirect.Query()
	q.Set("code", code)
	q.Set("state", f.Get("state"))
	redirect.RawQuery = q.Encode()
	http.Redirect(w, r, redirect.String(), http.StatusSeeOther)
}

func (i *Issuer) token(w http.ResponseWriter, r *http.Request) {
	if err := r.ParseForm(); err != nil {
		writeJSON(w, http.StatusBadRequest, map[string]string{"error": "invalid_request"})
		return
	}
	f := r.PostForm
	client := f.Get("client_id")
	if id, _, ok := r.BasicAuth(); ok && client == "" {
		client = id
	}
	i.mu.Lock()
	g, ok := i.codes[f.Get("code")]
	delete(i.codes, f.Get("code"))
	i.mu.Unlock()
	sum := sha256.Sum256([]byte(f.Get("code_verifier")))
	if !ok || time.Now().After(g.expires) || f.Get("redirect_uri") != g.redirect || client != i.ClientID || b64(sum[:]) != g.challenge {
		writeJSON(w, http.StatusBadRequest, map[string]string{"error": "invalid_grant"})
		return
	}
	now := time.Now()
	idToken, err := i.sign(map[string]any{"iss": i.URL, "aud": i.ClientID, "sub": g.subject, "iat": now.Unix(), "exp": now.Add(10 * time.Minute).Unix()})
	if err != nil {
		writeJSON(w, http.StatusInternalServerError, map[string]string{"error": "server_error"})
		return
	}
	writeJSON(w, http.StatusOK, map[string]any{"access_token": b64(sum[:8]), "token_type": "Bearer", "expires_in": 600, "id_token": idToken})
}

func (i *Issuer) sign(claims map[string]any) (string, error) {
	h, err := json.Marshal(map[string]string{"alg": "RS256", "typ": "JWT", "kid": "demo-1"})
	if err != nil {
		return "", err
	}
	c, err := json.Marshal(claims)
	if err != nil {
		return "", err
	}
	signed := b64(h) + "." + b64(c)
	sum := sha256.Sum256([]byte(signed))
	sig, err := rsa.SignPKCS1v15(rand.Reader, i.key, crypto.SHA256, sum[:])
	if err != nil {
		return "", err
	}
	return signed + "." + b64(sig), nil
}
