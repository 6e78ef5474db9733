package catalog

import "time"

// Mode is how a consumer uses granted fields.
type Mode string

// The exchange modes a request asks for and a grant allows.
const (
	// ModeQuery returns field values.
	ModeQuery Mode = "query"
	// ModeVerify answers match/no-match for claimed values, never the value.
	ModeVerify Mode = "verify"
	// ModeFeed delivers change events.
	ModeFeed Mode = "feed"
)

// Valid reports whether m is a known mode.
func (m Mode) Valid() bool { return m == ModeQuery || m == ModeVerify || m == ModeFeed }

// Mask is how a granted field is altered before it leaves the provider.
type Mask string

// The masks an approver may put on a field. None means the value is sent as is.
const (
	MaskNone Mask = ""
	// MaskHash replaces the value with a keyed HMAC, stable per provider, so
	// records can still be joined without revealing the value.
	MaskHash Mask = "hash"
	// MaskPartial keeps only the last characters.
	MaskPartial Mask = "partial"
	// MaskNullify sends null.
	MaskNullify Mask = "nullify"
)

// Valid reports whether m is a known mask (or none).
func (m Mask) Valid() bool {
	return m == MaskNone || m == MaskHash || m == MaskPartial || m == MaskNullify
}

// Purpose is why a consumer reads: a public-service procedure code (e.g.
// 1.001234) and free text.
type Purpose struct {
	Code string `json:"code"`
	Text string `json:"text,omitempty"`
}

// LegalBasis is the law that permits the processing: a reference such as
// "Decree 13/2023/ND-CP art. 17" and its text or summary.
type LegalBasis struct {
	Reference string `json:"reference"`
	Text      string `json:"text,omitempty"`
	// DiscloseAfter, when set, defers the data subject's right to know:
	// a basis that allows it (an investigation) keeps exchanges under the
	// grant out of the citizen's data tracker until this date. It travels
	// from the request to the grant with the rest of the basis.
	DiscloseAfter *time.Time `json:"discloseAfter,omitempty"`
}

// MaxDisclosureDeferral is how far past the end of a grant's period its
// disclosure date may lie: a deferral is an exception, not a way to hide
// exchanges from their subjects for good.
const MaxDisclosureDeferral = 5 * 365 * 24 * time.Hour

// DisclosedAt reports whether exchanges under this basis may be shown to
// their subjects at time now.
func (b LegalBasis) DisclosedAt(now time.Time) bool {
	return b.DiscloseAfter == nil || !now.Before(*b.DiscloseAfter)
}

// RowScope limits which records a grant covers: only records whose Field
// holds one of Values, e.g. permanentResidence.provinceCode in ["01"].
type RowScope struct {
	Field  string   `json:"field"`
	Values []string `json:"values"`
}

// GrantedField is one field an approver allowed, with its mask.
type GrantedField struct {
	Path string `json:"path"`
	Mask Mask   `json:"mask,omitempty"`
}

// RequestState is where an access request stands.
type RequestState string

// Access request states: pending until the provider decides or the consumer withdraws.
const (
	RequestPending   RequestState = "pending"
	RequestApproved  RequestState = "approved"
	RequestRefused   RequestState = "refused"
	RequestWithdrawn RequestState = "withdrawn"
)

// AccessRequest is a consumer system's request for named fields of a dataset.
type AccessRequest struct {
	ID       string `json:"id"`
	Consumer string `json:"consumer"`
	// Provider and Dataset address the dataset (provider system id and code).
	Provider   string       `json:"provider"`
	Dataset    string       `json:"dataset"`
	Fields     []string     `json:"fields"`
	Purpose    Purpose      `json:"purpose"`
	LegalBasis LegalBasis   `json:"legalBasis"`
	ValidFrom  time.Time    `json:"validFrom"`
	ValidUntil time.Time    `json:"validUntil"`
	RowScope   *RowScope    `json:"rowScope,omitempty"`
	Modes      []Mode       `json:"modes"`
	State      RequestState `json:"state"`
	// Approved lists the fields granted, possibly fewer than asked, with masks.
	Approved []GrantedField `json:"approved,omitempty"`
	// Reason is the written reason of a refusal or withdrawal.
	Reason string `json:"reason,omitempty"`
	// GrantID is set once approved.
	GrantID     string         `json:"grantId,omitempty"`
	RequestedBy string         `json:"requestedBy"`
	CreatedAt   time.Time      `json:"createdAt"`
	UpdatedAt   time.Time      `json:"updatedAt"`
	History     []RequestEvent `json:"history"`
}

// RequestEvent is one step in a request's or grant's life, kept for audit.
type RequestEvent struct {
	At     time.Time `json:"at"`
	Actor  string    `json:"actor"`
	Action string    `json:"action"`
	Detail string    `json:"detail,omitempty"`
}

// GrantState is the stored state of a grant; expiry is computed from time.
type GrantState string

// Grant states. Expired is never stored: StateAt derives it.
const (
	GrantActive  GrantState = "active"
	GrantExpired GrantState = "expired"
	GrantRevoked GrantState = "revoked"
)

// Grant is an approved access request: what a consumer may read, how, why and until when.
type Grant struct {
	ID         string         `json:"id"`
	RequestID  string         `json:"requestId"`
	Consumer   string         `json:"consumer"`
	Provider   string         `json:"provider"`
	Dataset    string         `json:"dataset"`
	Fields     []GrantedField `json:"fields"`
	Purposes   []Purpose      `json:"purposes"`
	LegalBasis LegalBasis     `json:"legalBasis"`
	Modes      []Mode         `json:"modes"`
	RowScope   *RowScope      `json:"rowScope,omitempty"`
	ValidFrom  time.Time      `json:"validFrom"`
	ValidUntil time.Time      `json:"validUntil"`
	// State is active or revoked as stored; use StateAt for the effective state.
	State        GrantState     `json:"state"`
	ApprovedBy   string         `json:"approvedBy"`
	RevokedAt    *time.Time     `json:"revokedAt,omitempty"`
	RevokeReason string         `json:"revokeReason,omitempty"`
	CreatedAt    time.Time      `json:"createdAt"`
	History      []RequestEvent `json:"history"`
}

// StateAt is the effective state at time now: revoked wins, then expiry.
func (g *Grant) StateAt(now time.Time) GrantState {
	if g.State == GrantRevoked {
		return GrantRevoked
	}
	if !now.Before(g.ValidUntil) {
		return GrantExpired
	}
	return GrantActive
}

// AgencyModule is a provider's own Rego module for the datasets of one of its
// systems. It can only narrow what the base policy allows: deny, drop
// fields, add masks. The policy engine enforces that by intersection.
type AgencyModule struct {
	// Provider is the provider system id the module applies to.
	Provider string `json:"provider"`
	Source   []byte `json:"-"`
	// Digest is the SHA-256 (hex) of Source.
	Digest    string    `json:"digest"`
	UpdatedAt time.Time `json:"updatedAt"`
	UpdatedBy string    `json:"updatedBy"`
}
