package auth

import (
	"fmt"

	"github.com/lienthong/lienthong/catalog"
)

// The checks below are the whole authorization model of the management API,
// kept in one file so a security reviewer reads it in one sitting. Each
// returns nil or an error wrapping catalog.ErrForbidden that says why.

func forbidden(format string, args ...any) error {
	return fmt.Errorf("%w: %s", catalog.ErrForbidden, fmt.Sprintf(format, args...))
}

// IsPlatformAdmin reports whether p operates the platform.
func (p Principal) IsPlatformAdmin() bool { return p.Role == catalog.RolePlatformAdmin }

// RequirePlatformAdmin allows only the platform operator: admitting members
// and recording security assessments are the national authority's acts.
func (p Principal) RequirePlatformAdmin(action string) error {
	if p.IsPlatformAdmin() {
		return nil
	}
	return forbidden("%s needs the platform-admin role; token %s has role %s", action, p.TokenID, p.Role)
}

// RequireMemberAdmin allows the platform operator, or a member-admin of the
// member that owns the object.
func (p Principal) RequireMemberAdmin(action, member string) error {
	if p.IsPlatformAdmin() {
		return nil
	}
	if p.Role != catalog.RoleMemberAdmin {
		return forbidden("%s needs the member-admin role; token %s has role %s", action, p.TokenID, p.Role)
	}
	if p.Member != member {
		return forbidden("%s: token %s acts for member %s, not for %s", action, p.TokenID, p.Member, member)
	}
	return nil
}

// RequireRoleOf allows the platform operator, or a token of one of roles bound to member.
func (p Principal) RequireRoleOf(action, member string, roles ...catalog.Role) error {
	if p.IsPlatformAdmin() {
		return nil
	}
	for _, r := range roles {
		if p.Role == r {
			if p.Member == member {
				return nil
			}
			return forbidden("%s: token %s acts for member %s, not for %s", action, p.TokenID, p.Member, member)
		}
	}
	return forbidden("%s needs one of the roles %v; token %s has role %s", action, roles, p.TokenID, p.Role)
}

// CanCreateToken says whether p may mint a token of role for member. A
// member-admin may mint any role but platform-admin, for its own member only.
func (p Principal) CanCreateToken(role catalog.Role, member string) error {
	if p.IsPlatformAdmin() {
		return nil
	}
	if role == catalog.RolePlatformAdmin {
		return forbidden("only a platform-admin may create platform-admin tokens")
	}
	return p.RequireMemberAdmin("create token", member)
}

// ReadScope is the member whose private records (tokens, trail, requests) p
// may list: "" means all of them (platform-admin).
func (p Principal) ReadScope() string {
	if p.IsPlatformAdmin() {
		return ""
	}
	return p.Member
}
