package catalog

import (
	"encoding/json"
	"time"
)

// Role is what an API token may do. Every role but PlatformAdmin is bound to
// one member and acts only on that member's systems and datasets.
type Role string

// The roles of the management API.
const (
	RolePlatformAdmin Role = "platform-admin"
	RoleMemberAdmin   Role = "member-admin"
	RoleApprover      Role = "approver"
	RoleAuditor       Role = "auditor"
	RoleIntegrator    Role = "integrator"
)

// RoleGateway is the role of a gateway known by its certificate (mTLS), never
// of a token: it is not in Roles, so no token can be minted with it. A gateway
// may pull its member's share of configuration, policy and trust and renew
// its own certificate, and nothing else.
const RoleGateway Role = "gateway"

// Roles lists every role a token may have.
var Roles = []Role{RolePlatformAdmin, RoleMemberAdmin, RoleApprover, RoleAuditor, RoleIntegrator}

// Valid reports whether r is a known role.
func (r Role) Valid() bool {
	for _, x := range Roles {
		if r == x {
			return true
		}
	}
	return false
}

// Token is an API bearer token as stored: only a hash of its secret is kept.
type Token struct {
	// ID is the public part of the token, shown in listings and the trail.
	ID   string `json:"id"`
	Name string `json:"name"`
	Role Role   `json:"role"`
	// Member is empty only for platform-admin.
	Member string `json:"member,omitempty"`
	// SecretHash is SHA-256 of the secret part; the secret itself is never stored.
	SecretHash []byte     `json:"-"`
	CreatedAt  time.Time  `json:"createdAt"`
	CreatedBy  string     `json:"createdBy"`
	ExpiresAt  *time.Time `json:"expiresAt,omitempty"`
	RevokedAt  *time.Time `json:"revokedAt,omitempty"`
}

// TrailEntry is one write to the catalog, kept for auditors: who did what,
// when, and the object before and after.
type TrailEntry struct {
	// Seq is assigned by the store, strictly increasing.
	Seq    int64     `json:"seq"`
	At     time.Time `json:"at"`
	Actor  string    `json:"actor"`
	Role   Role      `json:"role,omitempty"`
	Member string    `json:"member,omitempty"`
	// Action is a dotted verb such as "member.create" or "dataset.publish".
	Action string `json:"action"`
	// Object is the id of what was written.
	Object string `json:"object"`
	// Before and After are JSON snapshots; nil when absent. Never secrets.
	Before json.RawMessage `json:"before,omitempty"`
	After  json.RawMessage `json:"after,omitempty"`
	// Outcome is "ok", or "refused: <reason>" for attempts worth recording
	// (a refused certificate request, for example).
	Outcome string `json:"outcome"`
}

// Certificate is the record of one issued certificate.
type Certificate struct {
	// Serial is the certificate's serial number in lower-case hex.
	Serial       string     `json:"serial"`
	System       string     `json:"system"`
	SPIFFE       string     `json:"spiffe"`
	Authority    string     `json:"authority"`
	NotBefore    time.Time  `json:"notBefore"`
	NotAfter     time.Time  `json:"notAfter"`
	PEM          string     `json:"pem"`
	RevokedAt    *time.Time `json:"revokedAt,omitempty"`
	RevokeReason string     `json:"revokeReason,omitempty"`
}
