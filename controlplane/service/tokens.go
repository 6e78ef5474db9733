package service

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/lienthong/lienthong/catalog"
	"github.com/lienthong/lienthong/controlplane/auth"
)

// TokenRequest asks for a new API token.
type TokenRequest struct {
	Name   string       `json:"name"`
	Role   catalog.Role `json:"role"`
	Member string       `json:"member,omitempty"`
	// TTL, when positive, makes the token expire.
	TTL time.Duration `json:"-"`
}

// CreateToken mints a token. The secret is returned once and never stored.
func (s *Service) CreateToken(ctx context.Context, p auth.Principal, req TokenRequest) (string, *catalog.Token, error) {
	secret, tok, err := auth.NewToken(req.Name, req.Role, req.Member, p.Actor(), s.Now())
	if err != nil {
		return "", nil, err
	}
	if err := p.CanCreateToken(req.Role, req.Member); err != nil {
		return "", nil, err
	}
	if req.TTL > 0 {
		exp := s.Now().Add(req.TTL)
		tok.ExpiresAt = &exp
	}
	err = s.store.Update(ctx, func(tx catalog.Tx) error {
		if req.Member != "" {
			if _, err := tx.GetMember(ctx, req.Member); errors.Is(err, catalog.ErrNotFound) {
				return catalog.Invalid("token", "/member", "member %s is not registered", req.Member)
			} else if err != nil {
				return err
			}
		}
		if err := tx.CreateToken(ctx, tok); err != nil {
			return err
		}
		return s.record(ctx, tx, p, change{action: "token.create", object: tok.ID, member: tok.Member, after: tok})
	})
	if err != nil {
		return "", nil, fmt.Errorf("create token: %w", err)
	}
	return secret, tok, nil
}

// Tokens lists tokens visible to p: all for platform-admin, the member's own
// for its member-admin.
func (s *Service) Tokens(ctx context.Context, p auth.Principal) ([]catalog.Token, error) {
	if !p.IsPlatformAdmin() {
		if err := p.RequireMemberAdmin("list tokens", p.Member); err != nil {
			return nil, err
		}
	}
	return s.store.ListTokens(ctx, catalog.TokenFilter{Member: p.ReadScope()})
}

// RevokeToken revokes a token at once; its next use is refused.
func (s *Service) RevokeToken(ctx context.Context, p auth.Principal, id string) (*catalog.Token, error) {
	var out *catalog.Token
	err := s.store.Update(ctx, func(tx catalog.Tx) error {
		t, err := tx.GetToken(ctx, id)
		if err != nil {
			return err
		}
		if t.Role == catalog.RolePlatformAdmin {
			if err := p.RequirePlatformAdmin("revoke a platform-admin token"); err != nil {
				return err
			}
		} else if err := p.RequireMemberAdmin("revoke token", t.Member); err != nil {
			return err
		}
		if t.RevokedAt != nil {
			out = t
			return nil
		}
		now := s.Now()
		if err := tx.RevokeToken(ctx, id, now); err != nil {
			return err
		}
		before := *t
		t.RevokedAt = &now
		out = t
		return s.record(ctx, tx, p, change{action: "token.revoke", object: id, member: t.Member, before: before, after: t})
	})
	if err != nil {
		return nil, fmt.Errorf("revoke token %s: %w", id, err)
	}
	return out, nil
}

// Bootstrap mints the first platform-admin token when the store has none.
// It returns "" when tokens already exist: bootstrap never runs twice.
func (s *Service) Bootstrap(ctx context.Context) (string, error) {
	existing, err := s.store.ListTokens(ctx, catalog.TokenFilter{})
	if err != nil {
		return "", fmt.Errorf("bootstrap: %w", err)
	}
	if len(existing) > 0 {
		return "", nil
	}
	system := auth.Principal{TokenID: "bootstrap", Name: "first start", Role: catalog.RolePlatformAdmin}
	secret, _, err := s.CreateToken(ctx, system, TokenRequest{Name: "platform operator (bootstrap)", Role: catalog.RolePlatformAdmin})
	return secret, err
}
