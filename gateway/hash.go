package gateway

import (
	"net/url"

	"github.com/lienthong/lienthong/gateway/exchange"
)

// Request-binding headers, in the spirit of X-Road's X-Road-Request-Hash: the
// provider gateway hashes the request it served, the consumer gateway hashes
// the request it sent, and an answer whose hashes differ is not passed on.
// They are the exchange core's (exchange.Header*), so every door spells them
// alike.
const (
	HeaderConsumer   = exchange.HeaderConsumer
	HeaderPurpose    = exchange.HeaderPurpose
	HeaderCase       = exchange.HeaderCase
	HeaderExchangeID = exchange.HeaderExchangeID
	HeaderHash       = exchange.HeaderHash
)

// HeaderWithheld names, on a 200 answer to a query whose fields= asked for
// fields no grant covers, those fields (comma-separated, never their
// values): the answer holds the rest.
const HeaderWithheld = exchange.HeaderWithheld

// RequestHash is SHA-256 over the canonical form of an exchange request (see
// exchange.RequestHash): both gateways compute it, and an answer whose hash
// differs from the request's is not passed on.
func RequestHash(method, path string, query url.Values, consumer, purpose, caseRef, exchangeID string, body []byte) string {
	return exchange.RequestHash(method, path, query, consumer, purpose, caseRef, exchangeID, body)
}
