// Package problem writes and reads RFC 9457 problem details, the one error
// format of every Liên Thông HTTP API (management API and gateways alike), so
// clients and operators see the same shape wherever something went wrong.
package problem

import (
	"encoding/json"
	"fmt"
	"net/http"
)

// ContentType is the media type RFC 9457 registers for problem details.
const ContentType = "application/problem+json"

// TypePrefix starts every problem type URI this project defines; a client can
// switch on the part after it.
const TypePrefix = "urn:lienthong:problem:"

// Problem is an RFC 9457 problem details object. Detail must never carry a
// secret or a data value a caller is not granted: it names places and rules.
type Problem struct {
	Type     string `json:"type"`
	Title    string `json:"title"`
	Status   int    `json:"status"`
	Detail   string `json:"detail,omitempty"`
	Instance string `json:"instance,omitempty"`
	// Errors lists each precise complaint about the input (an extension member).
	Errors []FieldError `json:"errors,omitempty"`
}

// FieldError locates one complaint: a JSON pointer into the input and a message.
type FieldError struct {
	Pointer string `json:"pointer"`
	Message string `json:"message"`
}

// Error makes a Problem usable as a Go error on the client side.
func (p *Problem) Error() string {
	if p.Detail != "" {
		return fmt.Sprintf("%d %s: %s", p.Status, p.Title, p.Detail)
	}
	return fmt.Sprintf("%d %s", p.Status, p.Title)
}

// New builds a problem of the given kind (the part after TypePrefix, e.g.
// "invalid-input"), status and detail. Title is the status text.
func New(status int, kind, detail string) *Problem {
	return &Problem{Type: TypePrefix + kind, Title: http.StatusText(status), Status: status, Detail: detail}
}

// Write sends p with its status. Instance, if empty, is the request path.
func Write(w http.ResponseWriter, r *http.Request, p *Problem) {
	if p.Instance == "" && r != nil {
		p.Instance = r.URL.Path
	}
	w.Header().Set("Content-Type", ContentType)
	w.Header().Set("X-Content-Type-Options", "nosniff")
	w.WriteHeader(p.Status)
	_ = json.NewEncoder(w).Encode(p)
}

// Read decodes a problem from a response body; when the body is not a problem
// it returns a Problem built from the status alone, so callers always get one.
func Read(resp *http.Response, body []byte) *Problem {
	var p Problem
	if err := json.Unmarshal(body, &p); err != nil || p.Status == 0 {
		return &Problem{Type: "about:blank", Title: http.StatusText(resp.StatusCode), Status: resp.StatusCode}
	}
	return &p
}
