package catalog

import (
	"strings"
	"time"
)

// ValidMemberCode reports whether code has the agency-code form of Vietnam's
// state bodies: dot-separated groups of digits, then the level-1 unit as a
// letter and two digits, e.g. 000.00.00.G01 (Ministry of Public Security) or
// 000.00.18.G12.
func ValidMemberCode(code string) bool { return validMemberCode(code) }

// Member is an agency taking part in the federation.
type Member struct {
	// Code is the electronic agency code, the member's identity everywhere.
	Code      string    `json:"code"`
	Name      string    `json:"name"`
	Contacts  []Contact `json:"contacts"`
	CreatedAt time.Time `json:"createdAt"`
}

// Contact is a person or desk an operator can reach at a member.
type Contact struct {
	Name  string `json:"name"`
	Email string `json:"email,omitempty"`
	Phone string `json:"phone,omitempty"`
	Role  string `json:"role,omitempty"`
}

// Validate checks a member before it is stored.
func (m *Member) Validate() error {
	v := &ValidationError{What: "member"}
	if !ValidMemberCode(m.Code) {
		v.Add("/code", "agency code %q must look like 000.00.00.G01 (groups of 3, 2 and 2 digits, then a letter and two digits)", m.Code)
	}
	if strings.TrimSpace(m.Name) == "" {
		v.Add("/name", "name is required")
	} else if len(m.Name) > 300 {
		v.Add("/name", "name is longer than 300 characters")
	}
	for i, c := range m.Contacts {
		if strings.TrimSpace(c.Name) == "" {
			v.Add(pointerf("/contacts/%d/name", i), "contact name is required")
		}
		if c.Email != "" && !strings.Contains(c.Email, "@") {
			v.Add(pointerf("/contacts/%d/email", i), "%q is not an e-mail address", c.Email)
		}
	}
	return v.Err()
}
