// Package console is the control plane's web console: server-rendered pages
// over the same service layer the management API calls, so every page is
// authorised by the same rules (role and member) as the API. It is served by
// the control plane under /console on the management origin; its templates,
// style sheet and the one small script are embedded in the binary, the
// Content-Security-Policy admits nothing but that origin, and no page calls
// a third party.
//
// People sign in with an API token or a one-time login link (minted for a
// role and member, single use, short-lived, stored hashed); citizens sign in
// with the platform's OpenID Connect issuer. A session lives in memory, is
// named by an HttpOnly, Secure, SameSite=Strict cookie, and carries the CSRF
// token every form sends back.
package console

import (
	"context"
	"embed"
	"errors"
	"html/template"
	"io/fs"
	"log/slog"
	"net/http"
	"net/url"
	"strings"
	"time"

	"github.com/lienthong/lienthong/audit/index"
	"github.com/lienthong/lienthong/controlplane/citizen"
	"github.com/lienthong/lienthong/controlplane/service"
	"github.com/lienthong/lienthong/controlplane/xds/server"
)

//go:embed templates/*.html
var templateFS embed.FS

//go:embed static
var staticFS embed.FS

// Prefix is where the console is mounted on the management origin.
const Prefix = "/console"

// Config is what the console reads and acts through.
type Config struct {
	// Service is the management service; every read and write goes
	// through it with the signed-in principal.
	Service *service.Service
	// Index is the audit index (nil: the audit and flow pages say so).
	Index index.Store
	// SubjectKey turns a personal ID an auditor searches for into the
	// subject HMAC the index holds.
	SubjectKey index.SubjectKey
	// Tracker answers the citizen's page; nil without a citizen issuer.
	Tracker *citizen.Tracker
	// Citizen configures the citizens' OpenID Connect sign-in; its zero
	// value turns it off.
	Citizen CitizenLogin
	// EnvoyNodes reports the xDS server's per-node status (nil: no xDS).
	EnvoyNodes func() []server.NodeStatus
	// Log receives the console's own events; never a token or personal ID.
	Log *slog.Logger
}

// Console is the web console's http.Handler.
type Console struct {
	cfg      Config
	svc      *service.Service
	log      *slog.Logger
	mux      *http.ServeMux
	pages    map[string]*template.Template
	sessions *sessions
	links    *loginLinks
	oidc     *oidcLogin
	static   http.Handler
}

// New builds the console.
func New(cfg Config) (*Console, error) {
	if cfg.Service == nil {
		return nil, errors.New("console: a service is required")
	}
	if cfg.Log == nil {
		cfg.Log = slog.Default()
	}
	c := &Console{cfg: cfg, svc: cfg.Service, log: cfg.Log, mux: http.NewServeMux(),
		sessions: newSessions(cfg.Service.Now), links: newLoginLinks(cfg.Service.Now)}
	var err error
	if c.pages, err = parsePages(); err != nil {
		return nil, err
	}
	sub, err := fs.Sub(staticFS, "static")
	if err != nil {
		return nil, err
	}
	c.static = http.StripPrefix(Prefix+"/static/", http.FileServerFS(sub))
	if cfg.Citizen.Issuer != "" {
		c.oidc = newOIDCLogin(cfg.Citizen, cfg.Log)
	}
	c.routes()
	return c, nil
}

// ServeHTTP serves the console with its security headers on every answer.
func (c *Console) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	h := w.Header()
	h.Set("Content-Security-Policy", "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data:; "+
		"connect-src 'self'; form-action 'self' "+c.formTargets()+"; frame-ancestors 'none'; base-uri 'none'")
	h.Set("X-Content-Type-Options", "nosniff")
	h.Set("Referrer-Policy", "same-origin")
	h.Set("X-Frame-Options", "DENY")
	h.Set("Cross-Origin-Opener-Policy", "same-origin")
	h.Set("Cache-Control", "no-store")
	c.mux.ServeHTTP(w, r)
}

// formTargets adds the citizen issuer to form-action: the sign-in redirect
// goes there.
func (c *Console) formTargets() string {
	if c.oidc == nil {
		return ""
	}
	u, err := url.Parse(c.cfg.Citizen.Issuer)
	if err != nil {
		return ""
	}
	return u.Scheme + "://" + u.Host
}

// Mount returns a handler that serves the console under Prefix and hands
// everything else to api.
func Mount(c *Console, api http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if c != nil && (r.URL.Path == Prefix || strings.HasPrefix(r.URL.Path, Prefix+"/")) {
			c.ServeHTTP(w, r)
			return
		}
		api.ServeHTTP(w, r)
	})
}

func (c *Console) routes() {
	m := c.mux
	m.Handle("GET "+Prefix+"/static/", c.static)
	m.HandleFunc("GET "+Prefix, c.page(c.home, anyone))
	m.HandleFunc("GET "+Prefix+"/login", c.loginForm)
	m.HandleFunc("POST "+Prefix+"/login", c.loginToken)
	m.HandleFunc("GET "+Prefix+"/link", c.linkForm)
	m.HandleFunc("POST "+Prefix+"/link", c.linkRedeem)
	m.HandleFunc("POST "+Prefix+"/logout", c.logout)
	m.HandleFunc("GET "+Prefix+"/lang", c.setLang)

	m.HandleFunc("GET "+Prefix+"/catalog", c.page(c.catalogPage, staff))
	m.HandleFunc("GET "+Prefix+"/catalog/dataset", c.page(c.datasetPage, staff))
	m.HandleFunc("GET "+Prefix+"/access", c.page(c.accessPage, staff))
	m.HandleFunc("POST "+Prefix+"/access/request", c.page(c.requestAccess, staff))
	m.HandleFunc("GET "+Prefix+"/access/review", c.page(c.reviewPage, staff))
	m.HandleFunc("POST "+Prefix+"/access/approve", c.page(c.approve, staff))
	m.HandleFunc("POST "+Prefix+"/access/refuse", c.page(c.refuse, staff))
	m.HandleFunc("POST "+Prefix+"/access/revoke", c.page(c.revoke, staff))
	m.HandleFunc("GET "+Prefix+"/security", c.page(c.securityPage, staff))
	m.HandleFunc("GET "+Prefix+"/gateways", c.page(c.gatewaysPage, staff))
	m.HandleFunc("GET "+Prefix+"/audit", c.page(c.auditPage, staff))
	m.HandleFunc("POST "+Prefix+"/audit", c.page(c.auditPage, staff))
	m.HandleFunc("GET "+Prefix+"/flows", c.page(c.flowsPage, staff))
	m.HandleFunc("GET "+Prefix+"/flows/data", c.flowsData)

	m.HandleFunc("GET "+Prefix+"/citizen", c.citizenPage)
	m.HandleFunc("POST "+Prefix+"/citizen/login", c.citizenLogin)
	m.HandleFunc("GET "+Prefix+"/citizen/callback", c.citizenCallback)
	m.HandleFunc("/", func(w http.ResponseWriter, r *http.Request) {
		c.notFound(w, r)
	})
}

// who may open a page: staff (a signed-in token holder) or anyone.
type audience int

const (
	anyone audience = iota
	staff
)

// handlerFunc is a page handler with its view already set up.
type handlerFunc func(w http.ResponseWriter, r *http.Request, v *view) error

// page wraps a page handler: it finds the session, checks the CSRF token of
// a POST, sends a visitor who is not signed in to the login page, and shows
// an error page for anything the handler did not answer itself.
func (c *Console) page(h handlerFunc, who audience) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		v, ok := c.begin(w, r)
		if !ok {
			return
		}
		if who == staff && v.Principal == nil {
			http.Redirect(w, r, Prefix+"/login?next="+url.QueryEscape(r.URL.RequestURI()), http.StatusSeeOther)
			return
		}
		if err := h(w, r, v); err != nil {
			c.fail(w, r, v, err)
		}
	}
}

// begin loads the session (making an anonymous one on first visit) and, for
// a POST, checks the CSRF token and the Origin. It answers the request
// itself and returns false when the request must go no further.
func (c *Console) begin(w http.ResponseWriter, r *http.Request) (*view, bool) {
	s, err := c.session(w, r)
	if err != nil {
		c.log.Error("console: session", "error", err.Error())
		http.Error(w, "session error", http.StatusInternalServerError)
		return nil, false
	}
	v := c.newView(r, s)
	if r.Method == http.MethodPost {
		if err := r.ParseForm(); err != nil {
			c.render(w, r, v, http.StatusBadRequest, "error", errorPage{Message: v.T("error.form")})
			return nil, false
		}
		if !s.checkCSRF(r.PostForm.Get("csrf")) || !sameOrigin(r) {
			c.log.Info("console: CSRF check refused a form", "path", r.URL.Path)
			c.render(w, r, v, http.StatusForbidden, "error", errorPage{Message: v.T("error.csrf")})
			return nil, false
		}
	}
	return v, true
}

// sameOrigin refuses a POST whose Origin header names another origin.
// Browsers send it on every cross-origin POST; a missing one is left to the
// CSRF token.
func sameOrigin(r *http.Request) bool {
	o := r.Header.Get("Origin")
	if o == "" {
		return true
	}
	u, err := url.Parse(o)
	return err == nil && u.Host == r.Host
}

func (c *Console) notFound(w http.ResponseWriter, r *http.Request) {
	s, err := c.session(w, r)
	if err != nil {
		http.NotFound(w, r)
		return
	}
	v := c.newView(r, s)
	c.render(w, r, v, http.StatusNotFound, "error", errorPage{Message: v.T("error.notfound")})
}

// ctx bounds every page's work.
func ctx(r *http.Request) (context.Context, context.CancelFunc) {
	return context.WithTimeout(r.Context(), 20*time.Second)
}

func (c *Console) fail(w http.ResponseWriter, r *http.Request, v *view, err error) {
	p := problemOf(c.log, r, err)
	c.render(w, r, v, p.Status, "error", errorPage{Message: p.Detail, Problem: p})
}
