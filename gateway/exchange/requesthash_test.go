package exchange_test

import (
	"crypto/sha256"
	"encoding/hex"
	"net/url"
	"strconv"
	"strings"
	"testing"

	"github.com/lienthong/lienthong/gateway/exchange"
)

// TestRequestHashForm pins RequestHash to its documented form (each part
// as its length, a colon and its bytes, the body as the hex of its
// SHA-256), written here part by part, so a faster encoding can never
// change what both gateways and the audit log agree on.
func TestRequestHashForm(t *testing.T) {
	long := strings.Repeat("x", 700)
	cases := []struct {
		method, path string
		query        url.Values
		consumer     string
		purpose      string
		caseRef      string
		id           string
		body         []byte
	}{
		{"GET", "/citizens/012345678901", nil, "VN:GOV:000.00.00.G01:A", "p", "", "id", nil},
		{"POST", "/verify", url.Values{"b": {"2", "1"}, "a": {":"}}, "c", "", "case:1", "x", []byte(`{"a":1}`)},
		{"GET", long, url.Values{"q": {long}}, long, long, long, long, []byte(long)},
		{"", "", nil, "", "", "", "", []byte{}},
	}
	for i, c := range cases {
		h := sha256.New()
		bodySum := sha256.Sum256(c.body)
		for _, part := range []string{c.method, c.path, c.query.Encode(), c.consumer, c.purpose, c.caseRef, c.id, hex.EncodeToString(bodySum[:])} {
			h.Write([]byte(strconv.Itoa(len(part)) + ":" + part))
		}
		want := hex.EncodeToString(h.Sum(nil))
		if got := exchange.RequestHash(c.method, c.path, c.query, c.consumer, c.purpose, c.caseRef, c.id, c.body); got != want {
			t.Errorf("case %d: RequestHash = %s, want %s", i, got, want)
		}
	}
	// Moving a byte from one part to the next changes the hash.
	if exchange.RequestHash("GET", "/a", nil, "bc", "", "", "", nil) == exchange.RequestHash("GET", "/ab", nil, "c", "", "", "", nil) {
		t.Fatal("two requests with different parts share a hash")
	}
}
