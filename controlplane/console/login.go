package console

import (
	"context"
	"crypto/sha256"
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"strings"
	"sync"
	"time"

	"github.com/lienthong/lienthong/catalog"
	"github.com/lienthong/lienthong/controlplane/auth"
	"github.com/lienthong/lienthong/controlplane/service"
)

// Login links: DefaultLinkTTL is how long an unused link stays good, and
// MaxLinkTTL the longest a minter may ask for.
const (
	DefaultLinkTTL = 15 * time.Minute
	MaxLinkTTL     = 24 * time.Hour
)

// loginLinks holds the one-time codes of minted login links, by SHA-256 of
// the code: the code itself is only ever in the link.
type loginLinks struct {
	mu  sync.Mutex
	m   map[[32]byte]pendingLink
	now func() time.Time
}

type pendingLink struct {
	tokenID string
	expires time.Time
}

func newLoginLinks(now func() time.Time) *loginLinks {
	return &loginLinks{m: map[[32]byte]pendingLink{}, now: now}
}

// take redeems a code once: the second use of a link, and any use after its
// expiry, finds nothing.
func (l *loginLinks) take(code string) (string, bool) {
	k := sum(code)
	l.mu.Lock()
	defer l.mu.Unlock()
	p, ok := l.m[k]
	delete(l.m, k)
	now := l.now()
	for k2, q := range l.m { // drop the expired while here
		if !now.Before(q.expires) {
			delete(l.m, k2)
		}
	}
	if !ok || !now.Before(p.expires) {
		return "", false
	}
	return p.tokenID, true
}

// LoginLink is a minted one-time login link.
type LoginLink struct {
	// Path is the link's path and query on the management origin
	// (/console/link?code=...); it holds the secret.
	Path string
	// Role and Member say who the link signs in as.
	Role   catalog.Role
	Member string
	// TokenID names the API token the session acts with: revoking it ends
	// the session and voids the link.
	TokenID   string
	ExpiresAt time.Time
}

// MintLoginLink makes a one-time login link for a person of role (bound to
// member, except platform-admin). minterToken is the API token of whoever
// mints it, checked as the API checks a bearer token and held to the rule
// for minting API tokens (auth.Principal.CanCreateToken): the link opens a
// session on a new token of that role that expires when the session would,
// and the minting is on the admin trail. ttl is how long the link may wait
// to be used (0: DefaultLinkTTL).
func (c *Console) MintLoginLink(ctx context.Context, minterToken string, role catalog.Role, member, name string, ttl time.Duration) (*LoginLink, error) {
	minter, err := auth.Authenticate(ctx, c.svc.Store(), minterToken, c.svc.Now())
	if err != nil {
		return nil, err
	}
	if ttl <= 0 {
		ttl = DefaultLinkTTL
	}
	if ttl > MaxLinkTTL {
		return nil, catalog.Invalid("login link", "/ttl", "a login link may wait at most %s", MaxLinkTTL)
	}
	_, tok, err := c.svc.CreateToken(ctx, minter, service.TokenRequest{
		Name: "console login link: " + name, Role: role, Member: member, TTL: ttl + sessionTTL,
	})
	if err != nil {
		return nil, err
	}
	code, err := randomToken()
	if err != nil {
		return nil, err
	}
	exp := c.svc.Now().Add(ttl)
	c.links.mu.Lock()
	c.links.m[sum(code)] = pendingLink{tokenID: tok.ID, expires: exp}
	c.links.mu.Unlock()
	return &LoginLink{Path: Prefix + "/link?code=" + url.QueryEscape(code), Role: role, Member: member, TokenID: tok.ID, ExpiresAt: exp}, nil
}

func sum(code string) [32]byte { return sha256.Sum256([]byte(code)) }

// loginPage is the data of the sign-in page.
type loginPage struct {
	Next    string
	Problem string
	Code    string
	Citizen bool
}

// safeNext keeps a post-login destination on the console.
func safeNext(next string) string {
	if strings.HasPrefix(next, Prefix) && !strings.HasPrefix(next, "//") && !strings.Contains(next, "\\") {
		return next
	}
	return Prefix
}

func (c *Console) loginForm(w http.ResponseWriter, r *http.Request) {
	v, ok := c.begin(w, r)
	if !ok {
		return
	}
	c.render(w, r, v, http.StatusOK, "login", loginPage{Next: safeNext(r.URL.Query().Get("next")), Citizen: c.oidc != nil})
}

// loginToken signs in with an API token pasted into the form. The token is
// checked as the API checks a bearer token; the session keeps its id only.
func (c *Console) loginToken(w http.ResponseWriter, r *http.Request) {
	v, ok := c.begin(w, r)
	if !ok {
		return
	}
	next := safeNext(r.PostForm.Get("next"))
	p, err := auth.Authenticate(r.Context(), c.svc.Store(), strings.TrimSpace(r.PostForm.Get("token")), c.svc.Now())
	if err != nil {
		if !errors.Is(err, auth.ErrUnauthenticated) {
			c.fail(w, r, v, err)
			return
		}
		c.log.Info("console: sign-in refused", "reason", err.Error())
		c.render(w, r, v, http.StatusUnauthorized, "login", loginPage{Next: next, Problem: v.T("login.refused"), Citizen: c.oidc != nil})
		return
	}
	if err := c.signIn(w, r, p.TokenID, ""); err != nil {
		c.fail(w, r, v, err)
		return
	}
	c.log.Info("console: signed in", "token", p.TokenID, "role", string(p.Role))
	http.Redirect(w, r, next, http.StatusSeeOther)
}

// linkForm shows a button that redeems the link by POST: a link preview or
// a mail scanner that fetches the URL does not use it up.
func (c *Console) linkForm(w http.ResponseWriter, r *http.Request) {
	v, ok := c.begin(w, r)
	if !ok {
		return
	}
	c.render(w, r, v, http.StatusOK, "link", loginPage{Code: r.URL.Query().Get("code")})
}

func (c *Console) linkRedeem(w http.ResponseWriter, r *http.Request) {
	v, ok := c.begin(w, r)
	if !ok {
		return
	}
	tokenID, found := c.links.take(r.PostForm.Get("code"))
	var p *auth.Principal
	if found {
		// The token may have been revoked since the link was minted.
		s := &session{tokenID: tokenID}
		var err error
		if p, err = c.principal(r.Context(), s); err != nil {
			c.fail(w, r, v, err)
			return
		}
	}
	if p == nil {
		c.render(w, r, v, http.StatusUnauthorized, "login", loginPage{Next: Prefix, Problem: v.T("link.refused"), Citizen: c.oidc != nil})
		return
	}
	if err := c.signIn(w, r, tokenID, ""); err != nil {
		c.fail(w, r, v, err)
		return
	}
	c.log.Info("console: signed in with a login link", "token", tokenID, "role", string(p.Role))
	http.Redirect(w, r, Prefix, http.StatusSeeOther)
}

func (c *Console) logout(w http.ResponseWriter, r *http.Request) {
	if _, ok := c.begin(w, r); !ok {
		return
	}
	if ck, err := r.Cookie(cookieName); err == nil {
		c.sessions.close(ck.Value)
	}
	clearCookie(w)
	http.Redirect(w, r, Prefix+"/login", http.StatusSeeOther)
}

// setLang stores the language choice in a cookie and goes back.
func (c *Console) setLang(w http.ResponseWriter, r *http.Request) {
	to := r.URL.Query().Get("to")
	if to != "en" {
		to = "vi"
	}
	http.SetCookie(w, &http.Cookie{Name: langCookie, Value: to, Path: "/", Secure: true, HttpOnly: true,
		SameSite: http.SameSiteStrictMode, MaxAge: 365 * 24 * 3600})
	http.Redirect(w, r, safeNext(r.URL.Query().Get("back")), http.StatusSeeOther)
}

var errNoIndex = fmt.Errorf("%w: the audit index is not configured on this control plane", catalog.ErrNotFound)
