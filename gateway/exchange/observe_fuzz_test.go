package exchange

import (
	"testing"

	"github.com/lienthong/lienthong/internal/problem"
)

// FuzzRelayedKind: whatever a provider gateway answers, the kind a consumer
// gateway observes (and so a metric label) is "", one of the known kinds,
// or "other", and its outcome one of the five.
func FuzzRelayedKind(f *testing.F) {
	f.Add(403, problem.ContentType, []byte(`{"type":"urn:lienthong:problem:access-denied","status":403}`))
	f.Add(502, problem.ContentType, []byte(`{"type":"urn:lienthong:problem:`+"\u0000"+`x"}`))
	f.Add(200, "application/json", []byte(`{"fullName":"Nguyễn Văn An"}`))
	f.Add(500, "text/html", []byte(`<html>`))
	f.Add(418, problem.ContentType, []byte(`{"type":"urn:lienthong:problem:made-up","type":"urn:lienthong:problem:internal"}`))
	outcomes := map[string]bool{OutcomeAllowed: true, OutcomeDenied: true, OutcomeBackendError: true, OutcomeInvalidResponse: true, OutcomeFailed: true}
	f.Fuzz(func(t *testing.T, status int, contentType string, body []byte) {
		kind := relayedKind(status, contentType, body)
		if kind != "" && kind != KindOther && !knownKinds[kind] {
			t.Fatalf("kind %q from a peer's answer is not bounded", kind)
		}
		if !outcomes[OutcomeOf(kind, status)] {
			t.Fatalf("outcome %q", OutcomeOf(kind, status))
		}
	})
}
