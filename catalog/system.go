package catalog

import (
	"fmt"
	"strings"
	"time"
)

// DefaultInstance and DefaultClass are the first two parts of a system id on
// Vietnam's government federation.
const (
	DefaultInstance = "VN"
	DefaultClass    = "GOV"
)

// SystemID names one information system: instance:class:member:system, e.g.
// VN:GOV:000.00.00.G01:CSDLDC. It follows X-Road's addressing, which Vietnam's
// national platform also uses.
type SystemID struct {
	Instance string
	Class    string
	Member   string
	Code     string
}

// ParseSystemID parses and validates the colon-separated form. Gateways
// parse ids on every exchange, so it allocates only for an error.
func ParseSystemID(s string) (SystemID, error) {
	var p [4]string
	if !splitExactly(s, ":", p[:]) {
		return SystemID{}, fmt.Errorf("system id %q must have four parts instance:class:member:system, e.g. VN:GOV:000.00.00.G01:CSDLDC", s)
	}
	return SystemID{Instance: p[0], Class: p[1], Member: p[2], Code: p[3]}.check("system id", s)
}

// check validates each part of id; kind and s name the form the caller was
// given ("system id", "spiffe id") in the error.
func (id SystemID) check(kind, s string) (SystemID, error) {
	switch {
	case !validUpperName(id.Instance):
		return SystemID{}, fmt.Errorf("%s %q: instance %q must be 2-8 capital letters", kind, s, id.Instance)
	case !validUpperName(id.Class):
		return SystemID{}, fmt.Errorf("%s %q: member class %q must be 2-8 capital letters", kind, s, id.Class)
	case !ValidMemberCode(id.Member):
		return SystemID{}, fmt.Errorf("%s %q: member %q is not an agency code like 000.00.00.G01", kind, s, id.Member)
	case !validSystemCode(id.Code):
		return SystemID{}, fmt.Errorf("%s %q: system code %q must be capital letters, digits, '-' or '_' (at most 64)", kind, s, id.Code)
	}
	return id, nil
}

// splitExactly splits s around sep into exactly len(out) parts, as
// strings.Split would, without allocating; false if the count differs.
func splitExactly(s, sep string, out []string) bool {
	for i := range len(out) - 1 {
		var ok bool
		if out[i], s, ok = strings.Cut(s, sep); !ok {
			return false
		}
	}
	if strings.Contains(s, sep) {
		return false
	}
	out[len(out)-1] = s
	return true
}

// String gives the canonical colon-separated form.
func (id SystemID) String() string {
	return id.Instance + ":" + id.Class + ":" + id.Member + ":" + id.Code
}

// SPIFFE gives the workload identity carried as the URI SAN of the system's
// certificate: spiffe://<trust domain>/<class>/<member>/<system>.
func (id SystemID) SPIFFE(trustDomain string) string {
	return "spiffe://" + trustDomain + "/" + id.Class + "/" + id.Member + "/" + id.Code
}

// ParseSPIFFE maps a certificate's SPIFFE id back to a system id. The trust
// domain must match; the instance is taken from the caller's configuration.
func ParseSPIFFE(uri, trustDomain, instance string) (SystemID, error) {
	path, ok := strings.CutPrefix(uri, "spiffe://")
	if ok {
		path, ok = strings.CutPrefix(path, trustDomain)
	}
	if ok {
		path, ok = strings.CutPrefix(path, "/")
	}
	if !ok {
		return SystemID{}, fmt.Errorf("spiffe id %q is not in trust domain %q", uri, trustDomain)
	}
	var p [3]string
	if !splitExactly(path, "/", p[:]) {
		return SystemID{}, fmt.Errorf("spiffe id %q must have the path /<class>/<member>/<system>", uri)
	}
	return SystemID{Instance: instance, Class: p[0], Member: p[1], Code: p[2]}.check("spiffe id", uri)
}

// Security levels as Vietnam's information-security grading defines them (1
// lowest, 5 highest). Systems that read the population database need 3+.
const (
	MinSecurityLevel = 1
	MaxSecurityLevel = 5
)

// System is one information system of a member.
type System struct {
	// ID is the canonical SystemID string.
	ID     string `json:"id"`
	Name   string `json:"name"`
	Member string `json:"member"`
	// SecurityLevel is the level the system was designed and declared for.
	SecurityLevel int `json:"securityLevel"`
	// Assessment is the latest recorded security assessment, if any.
	Assessment *Assessment `json:"assessment,omitempty"`
	// RevokedAt is set when the platform cut the system off the network: its
	// certificates are void and it gets no decision, whatever its assessment.
	RevokedAt    *time.Time `json:"revokedAt,omitempty"`
	RevokeReason string     `json:"revokeReason,omitempty"`
	CreatedAt    time.Time  `json:"createdAt"`
}

// Assessment is an approved security assessment of a system: at which level,
// by whom, on what document, and until when it holds.
type Assessment struct {
	Level      int       `json:"level"`
	AssessedBy string    `json:"assessedBy"`
	Reference  string    `json:"reference"`
	ValidUntil time.Time `json:"validUntil"`
	RecordedAt time.Time `json:"recordedAt"`
}

// Validate checks an assessment before it is recorded. now is the current time,
// so a document that has already lapsed is not recorded as if it held.
func (a *Assessment) Validate(now time.Time) error {
	v := &ValidationError{What: "assessment"}
	if a.Level < MinSecurityLevel || a.Level > MaxSecurityLevel {
		v.Add("/level", "level %d must be between %d and %d", a.Level, MinSecurityLevel, MaxSecurityLevel)
	}
	if strings.TrimSpace(a.AssessedBy) == "" {
		v.Add("/assessedBy", "the assessing body is required")
	}
	if strings.TrimSpace(a.Reference) == "" {
		v.Add("/reference", "the document reference of the assessment is required")
	}
	if a.ValidUntil.IsZero() {
		v.Add("/validUntil", "an expiry date is required")
	} else if !a.ValidUntil.After(now) {
		v.Add("/validUntil", "expiry %s is not in the future", a.ValidUntil.Format(time.RFC3339))
	}
	return v.Err()
}

// Validate checks a system before it is stored.
func (s *System) Validate() error {
	v := &ValidationError{What: "system"}
	id, err := ParseSystemID(s.ID)
	if err != nil {
		v.Add("/id", "%v", err)
	} else if s.Member != "" && id.Member != s.Member {
		v.Add("/member", "member %q does not match the member %q in the system id", s.Member, id.Member)
	}
	if strings.TrimSpace(s.Name) == "" {
		v.Add("/name", "name is required")
	}
	if s.SecurityLevel < MinSecurityLevel || s.SecurityLevel > MaxSecurityLevel {
		v.Add("/securityLevel", "security level %d must be between %d and %d", s.SecurityLevel, MinSecurityLevel, MaxSecurityLevel)
	}
	return v.Err()
}

// Connectivity says whether a system may take part in exchanges at the given
// minimum level: "not secure, not connected".
type Connectivity struct {
	Connectable bool   `json:"connectable"`
	Reason      string `json:"reason"`
}

// ConnectivityAt evaluates the system's assessment against a required level at
// time now. It is the one place the rule is written, so every listing,
// enrolment and decision reports the same reason.
func (s *System) ConnectivityAt(now time.Time, requiredLevel int) Connectivity {
	a := s.Assessment
	switch {
	case s.RevokedAt != nil && !now.Before(*s.RevokedAt):
		return Connectivity{Reason: "system revoked: " + s.RevokeReason}
	case a == nil:
		return Connectivity{Reason: "not assessed"}
	case !now.Before(a.ValidUntil):
		return Connectivity{Reason: "assessment expired on " + a.ValidUntil.UTC().Format("2006-01-02")}
	case a.Level < requiredLevel:
		return Connectivity{Reason: fmt.Sprintf("assessed level %d below required %d", a.Level, requiredLevel)}
	}
	return Connectivity{Connectable: true, Reason: fmt.Sprintf("assessed at level %d until %s", a.Level, a.ValidUntil.UTC().Format("2006-01-02"))}
}

func pointerf(format string, args ...any) string { return fmt.Sprintf(format, args...) }

// Gateway is where a member's gateway accepts peer gateways: its identity
// (a system of the member, enrolled like any other, whose certificate the
// gateway presents) and its inbound address. Consumer gateways route to a
// provider by the provider system's member.
type Gateway struct {
	Member string `json:"member"`
	// System is the gateway's own system id; peers accept only its SPIFFE id.
	System string `json:"system"`
	// Address is host:port of the inbound (peer) listener.
	Address   string    `json:"address"`
	UpdatedAt time.Time `json:"updatedAt"`
}
