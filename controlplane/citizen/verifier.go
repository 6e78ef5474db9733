// Package citizen is the citizen's data tracker: a citizen signs in with an
// identity provider the platform trusts, and sees which agency read which
// fields of their record, when, why and under which law. The control plane
// answers from the audit index (package audit/index), which holds subjects
// only as HMACs under the federation's subject key; the tracker turns the
// verified personal ID into that HMAC and looks nothing else up.
package citizen

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"regexp"
	"sync"
	"time"

	"github.com/coreos/go-oidc/v3/oidc"
)

// ErrUnauthenticated means the presented ID token is missing, malformed,
// expired, not for this platform or not signed by the configured issuer.
// Clients are not told which.
var ErrUnauthenticated = errors.New("unauthenticated citizen")

// Config says which identity provider vouches for citizens.
type Config struct {
	// Issuer is the OIDC issuer URL (e.g. the national identity platform).
	Issuer string
	// ClientID is the audience the ID tokens must name.
	ClientID string
	// Claim is the claim that holds the 12-digit personal ID: "sub" by
	// default, since the national identity provider uses the personal ID
	// as the subject; another provider may carry it in its own claim.
	Claim string
	// HTTPClient fetches the discovery document and keys (nil: the default).
	HTTPClient *http.Client
	// Now is the clock tokens' expiry is checked against (nil: time.Now).
	Now func() time.Time
}

// personalIDPattern is the 12-digit personal identification number.
var personalIDPattern = regexp.MustCompile(`^[0-9]{12}$`)

// Verifier checks ID tokens and extracts the personal ID. It discovers the
// issuer on first use (and retries on the next request if that fails), so a
// control plane starts even while the identity provider is unreachable.
type Verifier struct {
	cfg Config
	mu  sync.Mutex
	v   *oidc.IDTokenVerifier
}

// NewVerifier returns a verifier for cfg.
func NewVerifier(cfg Config) (*Verifier, error) {
	if cfg.Issuer == "" || cfg.ClientID == "" {
		return nil, errors.New("citizen tracker: an OIDC issuer and a client id are required")
	}
	if cfg.Claim == "" {
		cfg.Claim = "sub"
	}
	return &Verifier{cfg: cfg}, nil
}

func (v *Verifier) verifier() (*oidc.IDTokenVerifier, error) {
	v.mu.Lock()
	defer v.mu.Unlock()
	if v.v != nil {
		return v.v, nil
	}
	// The key set keeps this context to refresh keys later: it must outlive
	// any one request.
	ctx := context.Background()
	if v.cfg.HTTPClient != nil {
		ctx = oidc.ClientContext(ctx, v.cfg.HTTPClient)
	}
	dctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	p, err := oidc.NewProvider(dctx, v.cfg.Issuer)
	if err != nil {
		return nil, fmt.Errorf("citizen tracker: discover issuer %s: %w", v.cfg.Issuer, err)
	}
	// The key set is built on the long-lived context, not on dctx.
	var meta struct {
		JWKS string `json:"jwks_uri"`
	}
	if err := p.Claims(&meta); err != nil || meta.JWKS == "" {
		return nil, fmt.Errorf("citizen tracker: issuer %s publishes no jwks_uri", v.cfg.Issuer)
	}
	keys := oidc.NewRemoteKeySet(ctx, meta.JWKS)
	v.v = oidc.NewVerifier(v.cfg.Issuer, keys, &oidc.Config{ClientID: v.cfg.ClientID, Now: v.cfg.Now, SupportedSigningAlgs: []string{oidc.RS256, oidc.ES256, oidc.EdDSA}})
	return v.v, nil
}

// PersonalID verifies raw and returns the personal ID it vouches for. Every
// failure of the token wraps ErrUnauthenticated; a failure to reach the
// issuer does not, since it is the platform's fault, not the citizen's.
func (v *Verifier) PersonalID(ctx context.Context, raw string) (string, error) {
	ver, err := v.verifier()
	if err != nil {
		return "", err
	}
	if v.cfg.HTTPClient != nil {
		ctx = oidc.ClientContext(ctx, v.cfg.HTTPClient)
	}
	tok, err := ver.Verify(ctx, raw)
	if err != nil {
		return "", fmt.Errorf("%w: %v", ErrUnauthenticated, err)
	}
	var id string
	if v.cfg.Claim == "sub" {
		id = tok.Subject
	} else {
		var claims map[string]any
		if err := tok.Claims(&claims); err != nil {
			return "", fmt.Errorf("%w: claims: %v", ErrUnauthenticated, err)
		}
		id, _ = claims[v.cfg.Claim].(string)
	}
	if !personalIDPattern.MatchString(id) {
		return "", fmt.Errorf("%w: claim %s does not hold a 12-digit personal ID", ErrUnauthenticated, v.cfg.Claim)
	}
	return id, nil
}
