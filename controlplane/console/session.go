package console

import (
	"context"
	"crypto/rand"
	"crypto/sha256"
	"crypto/subtle"
	"encoding/base64"
	"errors"
	"fmt"
	"net/http"
	"sync"
	"time"

	"github.com/lienthong/lienthong/catalog"
	"github.com/lienthong/lienthong/controlplane/auth"
)

// cookieName carries the session id. The __Host- prefix makes the browser
// refuse it unless it is Secure, host-only and for the whole path.
const cookieName = "__Host-lt_console"

// Session lifetimes: a signed-in session ends after sessionTTL, or after
// idleTTL without a request; an anonymous one (a visitor's CSRF token for
// the login form) after idleTTL.
const (
	sessionTTL  = 12 * time.Hour
	idleTTL     = time.Hour
	maxSessions = 10000
)

// session is one browser's state at the control plane. It holds no token
// secret: a staff session names the API token it was opened with, and that
// token is looked up again on every request, so revoking or expiring the
// token ends the session at once.
type session struct {
	csrf    string
	tokenID string
	// personalID is a citizen's, verified by the identity provider.
	personalID string
	created    time.Time
	seen       time.Time
}

func (s *session) checkCSRF(got string) bool {
	return got != "" && subtle.ConstantTimeCompare([]byte(got), []byte(s.csrf)) == 1
}

// sessions is the in-memory session table, keyed by SHA-256 of the cookie
// value so a heap dump does not hand out live cookies. A restart of the
// control plane signs everyone out.
type sessions struct {
	mu  sync.Mutex
	m   map[[32]byte]*session
	now func() time.Time
}

func newSessions(now func() time.Time) *sessions {
	return &sessions{m: map[[32]byte]*session{}, now: now}
}

func randomToken() (string, error) {
	var b [32]byte
	if _, err := rand.Read(b[:]); err != nil {
		return "", fmt.Errorf("random: %w", err)
	}
	return base64.RawURLEncoding.EncodeToString(b[:]), nil
}

// open makes a new session and returns its cookie value.
func (ss *sessions) open(tokenID, personalID string) (string, *session, error) {
	id, err := randomToken()
	if err != nil {
		return "", nil, err
	}
	csrf, err := randomToken()
	if err != nil {
		return "", nil, err
	}
	now := ss.now()
	s := &session{csrf: csrf, tokenID: tokenID, personalID: personalID, created: now, seen: now}
	ss.mu.Lock()
	defer ss.mu.Unlock()
	if len(ss.m) >= maxSessions {
		ss.sweepLocked(now)
		if len(ss.m) >= maxSessions {
			return "", nil, errors.New("too many console sessions")
		}
	}
	ss.m[sha256.Sum256([]byte(id))] = s
	return id, s, nil
}

// get returns the live session of a cookie value, touching it.
func (ss *sessions) get(id string) *session {
	k := sha256.Sum256([]byte(id))
	now := ss.now()
	ss.mu.Lock()
	defer ss.mu.Unlock()
	s, ok := ss.m[k]
	if !ok {
		return nil
	}
	if expired(s, now) {
		delete(ss.m, k)
		return nil
	}
	s.seen = now
	return s
}

func (ss *sessions) close(id string) {
	ss.mu.Lock()
	defer ss.mu.Unlock()
	delete(ss.m, sha256.Sum256([]byte(id)))
}

func expired(s *session, now time.Time) bool {
	return now.Sub(s.seen) > idleTTL || now.Sub(s.created) > sessionTTL
}

func (ss *sessions) sweepLocked(now time.Time) {
	for k, s := range ss.m {
		if expired(s, now) {
			delete(ss.m, k)
		}
	}
}

func setCookie(w http.ResponseWriter, value string) {
	http.SetCookie(w, &http.Cookie{Name: cookieName, Value: value, Path: "/", HttpOnly: true, Secure: true,
		SameSite: http.SameSiteStrictMode, MaxAge: int(sessionTTL / time.Second)})
}

func clearCookie(w http.ResponseWriter) {
	http.SetCookie(w, &http.Cookie{Name: cookieName, Value: "", Path: "/", HttpOnly: true, Secure: true,
		SameSite: http.SameSiteStrictMode, MaxAge: -1})
}

// session returns the request's session, opening an anonymous one (and
// setting its cookie) when there is none.
func (c *Console) session(w http.ResponseWriter, r *http.Request) (*session, error) {
	if ck, err := r.Cookie(cookieName); err == nil {
		if s := c.sessions.get(ck.Value); s != nil {
			return s, nil
		}
	}
	id, s, err := c.sessions.open("", "")
	if err != nil {
		return nil, err
	}
	setCookie(w, id)
	return s, nil
}

// signIn replaces the request's session with a new one for tokenID or a
// citizen's personalID: a fresh id at every sign-in, so a session id
// planted before it is worth nothing after.
func (c *Console) signIn(w http.ResponseWriter, r *http.Request, tokenID, personalID string) error {
	if ck, err := r.Cookie(cookieName); err == nil {
		c.sessions.close(ck.Value)
	}
	id, _, err := c.sessions.open(tokenID, personalID)
	if err != nil {
		return err
	}
	setCookie(w, id)
	return nil
}

// principal looks the session's token up again: a revoked or expired token
// signs the session out.
func (c *Console) principal(ctx context.Context, s *session) (*auth.Principal, error) {
	if s.tokenID == "" {
		return nil, nil
	}
	t, err := c.svc.Store().GetToken(ctx, s.tokenID)
	if errors.Is(err, catalog.ErrNotFound) {
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("console session: %w", err)
	}
	if t.RevokedAt != nil || (t.ExpiresAt != nil && !c.svc.Now().Before(*t.ExpiresAt)) {
		return nil, nil
	}
	return &auth.Principal{TokenID: t.ID, Name: t.Name, Role: t.Role, Member: t.Member}, nil
}
