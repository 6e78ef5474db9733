package auth

import (
	"context"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/lienthong/lienthong/catalog"
)

type tokenMap map[string]*catalog.Token

func (m tokenMap) GetToken(_ context.Context, id string) (*catalog.Token, error) {
	if t, ok := m[id]; ok {
		return t, nil
	}
	return nil, catalog.ErrNotFound
}

func TestAuthenticate(t *testing.T) {
	now := time.Date(2026, 11, 22, 10, 0, 0, 0, time.UTC)
	secret, tok, err := NewToken("ops", catalog.RoleMemberAdmin, "000.00.00.G01", "bootstrap", now)
	if err != nil {
		t.Fatal(err)
	}
	store := tokenMap{tok.ID: tok}
	if strings.Contains(string(tok.SecretHash), secret) {
		t.Fatal("secret stored in clear")
	}

	p, err := Authenticate(context.Background(), store, secret, now)
	if err != nil {
		t.Fatalf("valid token refused: %v", err)
	}
	if p.Member != "000.00.00.G01" || p.Role != catalog.RoleMemberAdmin {
		t.Fatalf("principal = %+v", p)
	}

	revoked := *tok
	revoked.RevokedAt = &now
	expired := *tok
	past := now.Add(-time.Second)
	expired.ExpiresAt = &past
	wrong := secret[:len(secret)-1] + "A"
	if wrong == secret {
		wrong = secret[:len(secret)-1] + "B"
	}
	cases := []struct {
		name      string
		store     tokenMap
		presented string
	}{
		{"empty", store, ""},
		{"no prefix", store, strings.TrimPrefix(secret, "lt_")},
		{"wrong secret", store, wrong},
		{"unknown id", tokenMap{}, secret},
		{"revoked", tokenMap{tok.ID: &revoked}, secret},
		{"expired", tokenMap{tok.ID: &expired}, secret},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			if _, err := Authenticate(context.Background(), c.store, c.presented, now); !errors.Is(err, ErrUnauthenticated) {
				t.Fatalf("err = %v, want ErrUnauthenticated", err)
			}
		})
	}
}

func TestNewTokenValidation(t *testing.T) {
	now := time.Now()
	cases := []struct {
		role    catalog.Role
		member  string
		pointer string
	}{
		{"root", "000.00.00.G01", "/role"},
		{catalog.RolePlatformAdmin, "000.00.00.G01", "/member"},
		{catalog.RoleApprover, "", "/member"},
		{catalog.RoleApprover, "G01", "/member"},
	}
	for _, c := range cases {
		_, _, err := NewToken("x", c.role, c.member, "t", now)
		var v *catalog.ValidationError
		if !errors.As(err, &v) || v.Problems[0].Pointer != c.pointer {
			t.Errorf("NewToken(%s, %q) = %v, want problem at %s", c.role, c.member, err, c.pointer)
		}
	}
}

func TestAuthorization(t *testing.T) {
	admin := Principal{TokenID: "a", Role: catalog.RolePlatformAdmin}
	mps := Principal{TokenID: "b", Role: catalog.RoleMemberAdmin, Member: "000.00.00.G01"}
	vss := Principal{TokenID: "c", Role: catalog.RoleMemberAdmin, Member: "000.00.00.G14"}
	approver := Principal{TokenID: "d", Role: catalog.RoleApprover, Member: "000.00.00.G01"}

	checks := []struct {
		name string
		err  error
		ok   bool
	}{
		{"admin admits member", admin.RequirePlatformAdmin("add member"), true},
		{"member-admin cannot admit", mps.RequirePlatformAdmin("add member"), false},
		{"member-admin own member", mps.RequireMemberAdmin("publish", "000.00.00.G01"), true},
		{"member-admin other member", vss.RequireMemberAdmin("publish", "000.00.00.G01"), false},
		{"approver is not member-admin", approver.RequireMemberAdmin("publish", "000.00.00.G01"), false},
		{"approver role of own member", approver.RequireRoleOf("approve", "000.00.00.G01", catalog.RoleApprover), true},
		{"approver role of other member", approver.RequireRoleOf("approve", "000.00.00.G14", catalog.RoleApprover), false},
		{"member-admin cannot mint platform-admin", mps.CanCreateToken(catalog.RolePlatformAdmin, ""), false},
		{"member-admin mints approver", mps.CanCreateToken(catalog.RoleApprover, "000.00.00.G01"), true},
		{"member-admin mints for other member", mps.CanCreateToken(catalog.RoleApprover, "000.00.00.G14"), false},
	}
	for _, c := range checks {
		if (c.err == nil) != c.ok {
			t.Errorf("%s: err = %v", c.name, c.err)
		}
		if c.err != nil && !errors.Is(c.err, catalog.ErrForbidden) {
			t.Errorf("%s: %v does not wrap ErrForbidden", c.name, c.err)
		}
	}
}
