package gateway

import (
	"crypto/sha256"
	"encoding/hex"
	"net/url"
	"strconv"
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
// method, path, query (sorted by key), consumer, purpose, case, exchange id
// and the SHA-256 of the body, each written as its length, a colon and its
// bytes, so no two requests share a form however their values are chosen.
// Both gateways compute it from what they sent or received, so any change
// on the way, the body of a verify request included, is detected.
func RequestHash(method, path string, query url.Values, consumer, purpose, caseRef, exchangeID string, body []byte) string {
	bodySum := sha256.Sum256(body)
	h := sha256.New()
	for _, part := range []string{method, path, query.Encode(), consumer, purpose, caseRef, exchangeID, hex.EncodeToString(bodySum[:])} {
		h.Write([]byte(strconv.Itoa(len(part))))
		h.Write([]byte{':'})
		h.Write([]byte(part))
	}
	return hex.EncodeToString(h.Sum(nil))
}
