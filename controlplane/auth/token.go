// Package auth issues and checks the management API's bearer tokens and says
// what each role may do. Tokens are "lt_<id>_<secret>": the id is public (it
// appears in listings and the admin trail) and only SHA-256 of the 256-bit
// secret is stored, so a copy of the database grants nothing.
package auth

import (
	"context"
	"crypto/rand"
	"crypto/sha256"
	"crypto/subtle"
	"encoding/base64"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/lienthong/lienthong/catalog"
)

// tokenPrefix marks Liên Thông tokens so secret scanners can find leaked ones.
const tokenPrefix = "lt_"

// ErrUnauthenticated means the presented credential is missing, malformed,
// unknown, revoked or expired. Callers must not tell these apart to a client.
var ErrUnauthenticated = errors.New("unauthenticated")

// Principal is the authenticated caller of one API request: a person or
// tool with a bearer token, or a gateway with its certificate.
type Principal struct {
	// TokenID is the token presented; empty for a certificate.
	TokenID string
	Name    string
	Role    catalog.Role
	// Member is the agency the caller acts for; empty for platform-admin.
	Member string
	// System and Certificate are set for a gateway known by its certificate
	// (Role catalog.RoleGateway): the system its SPIFFE id names and the
	// certificate's serial.
	System      string
	Certificate string
}

// Actor is how the principal is named in the admin trail.
func (p Principal) Actor() string {
	if p.IsGateway() {
		return "cert:" + p.Certificate + " (" + p.System + ")"
	}
	return p.TokenID + " (" + p.Name + ")"
}

// IsGateway reports whether p is a gateway known by its certificate.
func (p Principal) IsGateway() bool { return p.Role == catalog.RoleGateway && p.System != "" }

// NewToken makes a token for the given name, role and member. It returns the
// full secret string, shown once to the creator, and the record to store.
func NewToken(name string, role catalog.Role, member, createdBy string, now time.Time) (string, *catalog.Token, error) {
	if !role.Valid() {
		return "", nil, catalog.Invalid("token", "/role", "role %q must be one of %v", role, catalog.Roles)
	}
	if role == catalog.RolePlatformAdmin && member != "" {
		return "", nil, catalog.Invalid("token", "/member", "a platform-admin token is not bound to a member; leave member empty")
	}
	if role != catalog.RolePlatformAdmin && !catalog.ValidMemberCode(member) {
		return "", nil, catalog.Invalid("token", "/member", "role %s needs the agency code of its member, like 000.00.00.G01", role)
	}
	if strings.TrimSpace(name) == "" || len(name) > 200 {
		return "", nil, catalog.Invalid("token", "/name", "name is required (at most 200 characters)")
	}
	id := strings.TrimPrefix(catalog.NewID("tok"), "tok-")
	var secret [32]byte
	if _, err := rand.Read(secret[:]); err != nil {
		return "", nil, fmt.Errorf("new token: %w", err)
	}
	s := base64.RawURLEncoding.EncodeToString(secret[:])
	sum := sha256.Sum256([]byte(s))
	t := &catalog.Token{ID: id, Name: name, Role: role, Member: member, SecretHash: sum[:], CreatedAt: now, CreatedBy: createdBy}
	return tokenPrefix + id + "_" + s, t, nil
}

// split parses "lt_<id>_<secret>".
func split(token string) (id, secret string, ok bool) {
	rest, found := strings.CutPrefix(token, tokenPrefix)
	if !found {
		return "", "", false
	}
	id, secret, found = strings.Cut(rest, "_")
	if !found || id == "" || len(secret) < 32 || len(id) > 32 {
		return "", "", false
	}
	return id, secret, true
}

// TokenReader is the part of the store authentication needs.
type TokenReader interface {
	GetToken(ctx context.Context, id string) (*catalog.Token, error)
}

// Authenticate checks a presented token against the store. Every failure is
// ErrUnauthenticated (wrapped with a reason for the server's log only).
func Authenticate(ctx context.Context, store TokenReader, presented string, now time.Time) (Principal, error) {
	id, secret, ok := split(presented)
	if !ok {
		return Principal{}, fmt.Errorf("%w: malformed token", ErrUnauthenticated)
	}
	t, err := store.GetToken(ctx, id)
	if errors.Is(err, catalog.ErrNotFound) {
		return Principal{}, fmt.Errorf("%w: unknown token %s", ErrUnauthenticated, id)
	}
	if err != nil {
		return Principal{}, fmt.Errorf("authenticate token %s: %w", id, err)
	}
	sum := sha256.Sum256([]byte(secret))
	if subtle.ConstantTimeCompare(sum[:], t.SecretHash) != 1 {
		return Principal{}, fmt.Errorf("%w: wrong secret for token %s", ErrUnauthenticated, id)
	}
	if t.RevokedAt != nil {
		return Principal{}, fmt.Errorf("%w: token %s revoked", ErrUnauthenticated, id)
	}
	if t.ExpiresAt != nil && !now.Before(*t.ExpiresAt) {
		return Principal{}, fmt.Errorf("%w: token %s expired", ErrUnauthenticated, id)
	}
	return Principal{TokenID: t.ID, Name: t.Name, Role: t.Role, Member: t.Member}, nil
}
