package console

import (
	"context"
	"crypto/sha256"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"sync"
	"time"

	"github.com/coreos/go-oidc/v3/oidc"
	"github.com/lienthong/lienthong/audit/index"
	"github.com/lienthong/lienthong/controlplane/citizen"
	"golang.org/x/oauth2"
)

// CitizenLogin is how citizens sign in: the OpenID Connect authorization
// code flow with PKCE against the platform's identity provider, whose ID
// token the citizen tracker's verifier checks and reads the personal ID from.
type CitizenLogin struct {
	// Issuer is the identity provider's issuer URL.
	Issuer string
	// ClientID is the console's client at the issuer, the audience of the
	// ID tokens (the tracker's client id).
	ClientID string
	// ClientSecret, when the issuer gives the console one (a public client
	// with PKCE needs none).
	ClientSecret string
	// Verifier checks ID tokens (the tracker's).
	Verifier *citizen.Verifier
	// HTTPClient reaches the issuer (nil: the default client).
	HTTPClient *http.Client
}

// oidcLogin runs the sign-in: it remembers each started flow's PKCE
// verifier under its state for flowTTL, and takes it once.
type oidcLogin struct {
	cfg CitizenLogin
	log *slog.Logger

	mu       sync.Mutex
	provider *oidc.Provider
	flows    map[[32]byte]flow
}

type flow struct {
	verifier string
	expires  time.Time
}

const (
	flowTTL = 10 * time.Minute
	// flowCookie binds a started flow to the browser that started it. It is
	// SameSite=Lax because the identity provider's redirect back is a
	// cross-site navigation, on which a Strict cookie is not sent.
	flowCookie = "__Host-lt_oidc_state"
	maxFlows   = 10000
)

func newOIDCLogin(cfg CitizenLogin, log *slog.Logger) *oidcLogin {
	return &oidcLogin{cfg: cfg, log: log, flows: map[[32]byte]flow{}}
}

func (o *oidcLogin) ctx(cx context.Context) context.Context {
	if o.cfg.HTTPClient != nil {
		return oidc.ClientContext(cx, o.cfg.HTTPClient)
	}
	return cx
}

// oauth discovers the issuer on first use (again after a failure), so the
// control plane starts while the identity provider is down.
func (o *oidcLogin) oauth(cx context.Context, redirect string) (*oauth2.Config, error) {
	o.mu.Lock()
	defer o.mu.Unlock()
	if o.provider == nil {
		dctx, cancel := context.WithTimeout(o.ctx(context.Background()), 10*time.Second)
		defer cancel()
		p, err := oidc.NewProvider(dctx, o.cfg.Issuer)
		if err != nil {
			return nil, fmt.Errorf("citizen sign-in: discover issuer %s: %w", o.cfg.Issuer, err)
		}
		o.provider = p
	}
	ep := o.provider.Endpoint()
	if o.cfg.ClientSecret == "" {
		// A public client names itself in the form, with no secret.
		ep.AuthStyle = oauth2.AuthStyleInParams
	}
	return &oauth2.Config{ClientID: o.cfg.ClientID, ClientSecret: o.cfg.ClientSecret, Endpoint: ep,
		RedirectURL: redirect, Scopes: []string{oidc.ScopeOpenID}}, nil
}

func redirectURL(r *http.Request) string { return "https://" + r.Host + Prefix + "/citizen/callback" }

// citizenLogin starts the flow: a new state and PKCE verifier, the state
// cookie, and the redirect to the issuer.
func (c *Console) citizenLogin(w http.ResponseWriter, r *http.Request) {
	v, ok := c.begin(w, r)
	if !ok {
		return
	}
	if c.oidc == nil {
		c.render(w, r, v, http.StatusNotFound, "error", errorPage{Message: v.T("citizen.off")})
		return
	}
	conf, err := c.oidc.oauth(r.Context(), redirectURL(r))
	if err != nil {
		c.log.Error("console: citizen sign-in", "error", err.Error())
		c.render(w, r, v, http.StatusServiceUnavailable, "error", errorPage{Message: v.T("citizen.idpdown")})
		return
	}
	state, err := randomToken()
	if err != nil {
		c.fail(w, r, v, err)
		return
	}
	verifier := oauth2.GenerateVerifier()
	now := c.svc.Now()
	c.oidc.mu.Lock()
	for k, f := range c.oidc.flows {
		if !now.Before(f.expires) {
			delete(c.oidc.flows, k)
		}
	}
	full := len(c.oidc.flows) >= maxFlows
	if !full {
		c.oidc.flows[sha256.Sum256([]byte(state))] = flow{verifier: verifier, expires: now.Add(flowTTL)}
	}
	c.oidc.mu.Unlock()
	if full {
		c.render(w, r, v, http.StatusServiceUnavailable, "error", errorPage{Message: v.T("citizen.idpdown")})
		return
	}
	http.SetCookie(w, &http.Cookie{Name: flowCookie, Value: state, Path: "/", HttpOnly: true, Secure: true,
		SameSite: http.SameSiteLaxMode, MaxAge: int(flowTTL / time.Second)})
	http.Redirect(w, r, conf.AuthCodeURL(state, oauth2.S256ChallengeOption(verifier)), http.StatusSeeOther)
}

// citizenCallback finishes the flow: the state must match the browser's
// cookie and a flow still open, the code is exchanged with the PKCE
// verifier, and the ID token is verified as the tracker verifies it.
func (c *Console) citizenCallback(w http.ResponseWriter, r *http.Request) {
	v, ok := c.begin(w, r)
	if !ok {
		return
	}
	refuse := func(why string, err error) {
		c.log.Info("console: citizen sign-in refused", "reason", why, "error", fmt.Sprint(err))
		c.render(w, r, v, http.StatusUnauthorized, "error", errorPage{Message: v.T("citizen.refused")})
	}
	if c.oidc == nil {
		c.render(w, r, v, http.StatusNotFound, "error", errorPage{Message: v.T("citizen.off")})
		return
	}
	q := r.URL.Query()
	ck, err := r.Cookie(flowCookie)
	http.SetCookie(w, &http.Cookie{Name: flowCookie, Value: "", Path: "/", HttpOnly: true, Secure: true, SameSite: http.SameSiteLaxMode, MaxAge: -1})
	if err != nil || ck.Value == "" || ck.Value != q.Get("state") {
		refuse("state does not match this browser's", err)
		return
	}
	k := sha256.Sum256([]byte(ck.Value))
	c.oidc.mu.Lock()
	f, found := c.oidc.flows[k]
	delete(c.oidc.flows, k)
	c.oidc.mu.Unlock()
	if !found || !c.svc.Now().Before(f.expires) {
		refuse("no open sign-in for this state", nil)
		return
	}
	if e := q.Get("error"); e != "" {
		refuse("issuer answered an error", errors.New(e))
		return
	}
	conf, err := c.oidc.oauth(r.Context(), redirectURL(r))
	if err != nil {
		refuse("issuer unreachable", err)
		return
	}
	tok, err := conf.Exchange(c.oidc.ctx(r.Context()), q.Get("code"), oauth2.VerifierOption(f.verifier))
	if err != nil {
		refuse("code exchange failed", err)
		return
	}
	raw, _ := tok.Extra("id_token").(string)
	id, err := c.oidc.cfg.Verifier.PersonalID(r.Context(), raw)
	if err != nil {
		refuse("ID token refused", err)
		return
	}
	if err := c.signIn(w, r, "", id); err != nil {
		c.fail(w, r, v, err)
		return
	}
	// The new Strict session cookie is not sent on a redirect that
	// continues the identity provider's cross-site navigation, so this page
	// moves on by itself from the console's own origin.
	c.render(w, r, v, http.StatusOK, "continue", Prefix+"/citizen")
}

// citizenData is the citizen's page: what was disclosed about them.
type citizenData struct {
	// Names are the agencies' names by member code: a citizen knows the
	// Social Insurance agency, not its system id.
	Names    map[string]string
	SignedIn bool
	Enabled  bool
	Entries  []citizen.Entry
	Next     string
}

// citizenPage shows the signed-in citizen's own disclosures, and nothing
// else: the personal ID comes from their verified ID token, never from the
// request.
func (c *Console) citizenPage(w http.ResponseWriter, r *http.Request) {
	s, err := c.session(w, r)
	if err != nil {
		http.Error(w, "session error", http.StatusInternalServerError)
		return
	}
	v := c.newView(r, s)
	d := citizenData{Enabled: c.oidc != nil && c.cfg.Tracker != nil}
	if s.personalID != "" && c.cfg.Tracker != nil {
		cx, cancel := ctx(r)
		defer cancel()
		page, err := c.cfg.Tracker.Lookup(cx, s.personalID, 50, r.URL.Query().Get("cursor"))
		if errors.Is(err, index.ErrInvalid) {
			page, err = c.cfg.Tracker.Lookup(cx, s.personalID, 50, "")
		}
		if err != nil {
			c.fail(w, r, v, err)
			return
		}
		d.SignedIn, d.Entries, d.Next = true, page.Items, page.Next
		members, err := c.svc.Members(cx)
		if err != nil {
			c.fail(w, r, v, err)
			return
		}
		d.Names = map[string]string{}
		for _, m := range members {
			d.Names[m.Code] = m.Name
		}
	}
	c.render(w, r, v, http.StatusOK, "citizen", d)
}
