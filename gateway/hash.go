package gateway

import (
	"crypto/sha256"
	"encoding/hex"
	"net/url"
	"strings"
)

// Request-binding headers, in the spirit of X-Road's X-Road-Request-Hash: the
// provider gateway hashes the request it served, the consumer gateway hashes
// the request it sent, and an answer whose hashes differ is not passed on.
const (
	HeaderConsumer   = "X-LT-Consumer"
	HeaderPurpose    = "X-LT-Purpose"
	HeaderCase       = "X-LT-Case"
	HeaderExchangeID = "X-LT-Exchange-Id"
	HeaderHash       = "X-LT-Request-Hash"
)

// RequestHash is SHA-256 over the canonical form of an exchange request:
// method, path, query sorted by key, consumer, purpose, case, exchange id and
// the SHA-256 of the body, one per line. Both gateways compute it from what
// they sent or received, so any change on the way is detected.
func RequestHash(method, path string, query url.Values, consumer, purpose, caseRef, exchangeID string, body []byte) string {
	bodySum := sha256.Sum256(body)
	canon := strings.Join([]string{
		method, path, query.Encode(), consumer, purpose, caseRef, exchangeID, hex.EncodeToString(bodySum[:]),
	}, "\n")
	sum := sha256.Sum256([]byte(canon))
	return hex.EncodeToString(sum[:])
}
