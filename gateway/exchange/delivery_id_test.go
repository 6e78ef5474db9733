package exchange_test

import (
	"crypto/sha256"
	"encoding/hex"
	"strings"
	"testing"

	"github.com/lienthong/lienthong/gateway/exchange"
)

// TestFeedExchangeIDIsStable holds the delivery exchange id to its
// definition (SHA-256 of source, event id and consumer joined by NUL, its
// first 16 bytes in hex after "fx-"): a redo after an upgrade must audit
// under the id the first attempt used. Long and non-ASCII parts included.
func TestFeedExchangeIDIsStable(t *testing.T) {
	for _, c := range []struct{ provider, event, consumer string }{
		{"VN:GOV:000.00.00.G05:HTTTHT", "b-1", "VN:GOV:000.00.00.G01:CSDLDC"},
		{"", "", ""},
		{"VN:GOV:000.00.00.G05:HTTTHT", strings.Repeat("sự-kiện-", 60), "VN:GOV:000.00.00.G14:CSDLBH"},
		{"a\x00b", "c", "d"},
	} {
		sum := sha256.Sum256([]byte(c.provider + "\x00" + c.event + "\x00" + c.consumer))
		want := "fx-" + hex.EncodeToString(sum[:16])
		if got := exchange.FeedExchangeID(c.provider, c.event, c.consumer); got != want {
			t.Errorf("FeedExchangeID(%q, %q, %q) = %s, want %s", c.provider, c.event, c.consumer, got, want)
		}
	}
}
