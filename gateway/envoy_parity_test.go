package gateway_test

import (
	"bytes"
	"fmt"
	"slices"
	"testing"

	"github.com/lienthong/lienthong/audit"
	"github.com/lienthong/lienthong/gateway"
)

// TestEnvoyParity: for each (grant, request, backend answer), the native
// inbound door and the ext_authz + ext_proc path (fake Envoy, real gRPC)
// answer with the same status, byte-identical bodies and the same exchange
// headers, and each writes the same records: one intent (when allowed) and
// one outcome per exchange, with the same fields, grant, subject, reasons
// and status.
func TestEnvoyParity(t *testing.T) {
	ef := newEnvoyFederation(t, false, 0)
	cases := []struct {
		name, consumer, path string
		noPurpose            bool
	}{
		{"masked grant, whole record", insurance, recordPath + citizenID, false},
		{"masked grant, other record", insurance, recordPath + "079195000002", false},
		{"fields= narrowing", insurance, recordPath + citizenID + "?fields=fullName,dateOfBirth", false},
		{"fields= with a withheld field", insurance, recordPath + citizenID + "?fields=sex,religion,nationality", false},
		{"fields= of a masked field", insurance, recordPath + citizenID + "?fields=personalId", false},
		{"ungranted field only", insurance, recordPath + citizenID + "?fields=religion", false},
		{"row scope in", rowScoped, recordPath + "079195000002", false},
		{"row scope out", rowScoped, recordPath + citizenID, false},
		{"undeclared key in a granted object", rowScoped, recordPath + "079195000007", false},
		{"duplicate keys", insurance, recordPath + "001090000004", false},
		{"schema violation", insurance, recordPath + "001090000003", false},
		{"backend content type", insurance, recordPath + badContentTypeID, false},
		{"no such record", insurance, recordPath + "009999999999", false},
		{"dot segment in the record path", insurance, recordPath + "a/./b", false},
		{"consumer of another member", "VN:GOV:000.00.00.G01:CSDLDC", recordPath + citizenID, false},
		{"revoked or unknown consumer system", "VN:GOV:000.00.00.G14:NOSUCH", recordPath + citizenID, false},
		{"no purpose", insurance, recordPath + citizenID, true},
		{"unknown dataset", insurance, "/r/" + population + "/nosuch/" + citizenID, false},
	}
	for i, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			nid, eid := fmt.Sprintf("native-%d", i), fmt.Sprintf("envoy-%d", i)
			nh, eh := exchangeHeaders(tc.consumer, nid), exchangeHeaders(tc.consumer, eid)
			if tc.noPurpose {
				delete(nh, gateway.HeaderPurpose)
				delete(eh, gateway.HeaderPurpose)
			}
			native := ef.native(tc.path, nh)
			envoy := ef.call(tc.path, eh, oneChunk)
			sameExchange(t, ef, native, envoy, nid, eid)
		})
	}
}

// sameExchange requires the native door's answer and the Envoy doors' to
// match: status, byte-identical bodies (but for the exchange id a
// verification's answer names), the exchange headers, each bound to
// its own request, and the same records (phases, status, fields, grant,
// subject(s), reasons, bytes, revision, mode, purpose).
func sameExchange(t *testing.T, ef *envoyFederation, native, envoy envoyAnswer, nid, eid string) {
	t.Helper()
	// A verification's answer names its exchange; the ids are of equal
	// length, so lengths compare as they are.
	if native.status != envoy.status || !bytes.Equal(native.body, bytes.ReplaceAll(envoy.body, []byte(eid), []byte(nid))) {
		t.Fatalf("native %d %s\nenvoy  %d %s", native.status, native.body, envoy.status, envoy.body)
	}
	for _, h := range []string{"Content-Type", "Content-Length", gateway.HeaderWithheld, "Retry-After", "X-Content-Type-Options"} {
		if native.header.Get(h) != envoy.header.Get(h) {
			t.Errorf("%s: native %q, envoy %q", h, native.header.Get(h), envoy.header.Get(h))
		}
	}
	if (native.header.Get(gateway.HeaderExchangeID) == nid) != (envoy.header.Get(gateway.HeaderExchangeID) == eid) {
		t.Errorf("binding: native names %q, envoy %q", native.header.Get(gateway.HeaderExchangeID), envoy.header.Get(gateway.HeaderExchangeID))
	}
	nr, er := ef.sink.of(nid), ef.sink.of(eid)
	// Only a request the listeners' guard refuses (before the core)
	// has no record; every other ends with one outcome.
	if len(nr) == 0 && native.status != 400 || len(nr) > 0 && nr[len(nr)-1].Phase != audit.Outcome {
		t.Fatalf("native records %v", phases(nr))
	}
	if !slices.Equal(phases(nr), phases(er)) {
		t.Fatalf("records: native %v, envoy %v", phases(nr), phases(er))
	}
	for j := range nr {
		n, e := nr[j], er[j]
		if n.Subject != e.Subject || !slices.Equal(n.Subjects, e.Subjects) || !slices.Equal(n.Fields, e.Fields) || n.GrantID != e.GrantID ||
			!slices.Equal(n.Reasons, e.Reasons) || n.Consumer != e.Consumer || n.Bytes != e.Bytes || n.PolicyRevision != e.PolicyRevision ||
			n.Mode != e.Mode || n.Purpose != e.Purpose {
			t.Errorf("record %d:\nnative %+v\nenvoy  %+v", j, n, e)
		}
	}
}
