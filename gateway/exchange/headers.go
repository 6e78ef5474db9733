package exchange

import (
	"strconv"
	"strings"

	"github.com/lienthong/lienthong/internal/problem"
)

// The exchange headers every door reads and writes, in the spirit of
// X-Road's X-Road-Request-Hash: the provider gateway hashes the request it
// served, the consumer gateway hashes the request it sent, and an answer
// whose hashes differ is not passed on. They live in the core so that every
// door (HTTP, ext_authz, ext_proc) spells and bounds them alike.
const (
	HeaderConsumer   = "X-LT-Consumer"
	HeaderPurpose    = "X-LT-Purpose"
	HeaderCase       = "X-LT-Case"
	HeaderExchangeID = "X-LT-Exchange-Id"
	HeaderHash       = "X-LT-Request-Hash"
	// HeaderWithheld names, on a 200 answer to a query whose fields= asked
	// for fields no grant covers, those fields (comma-separated, never
	// their values): the answer holds the rest.
	HeaderWithheld = "X-LT-Withheld-Fields"
)

// HeaderLimits bounds the bytes of the exchange headers a door accepts (a
// procedure code, a case reference, a system id, an exchange id); a longer
// value is refused, never echoed.
var HeaderLimits = map[string]int{
	HeaderPurpose: 64, HeaderCase: 128,
	HeaderConsumer: 256, HeaderExchangeID: 256,
}

// Field is one response header a door sends, in the core's canonical
// spelling.
type Field struct{ Name, Value string }

// Headers are the response headers of a served exchange, except
// Content-Length, which a door sets from the body it sends.
func (a *Answer) Headers() []Field {
	h := []Field{
		{"Content-Type", a.ContentType},
		{HeaderExchangeID, a.ExchangeID},
		{HeaderHash, a.RequestHash},
	}
	if len(a.Withheld) > 0 {
		h = append(h, Field{HeaderWithheld, strings.Join(a.Withheld, ",")})
	}
	return h
}

// Headers are the response headers of a refusal (problem JSON, bound to its
// request when the exchange got that far), except Content-Length.
func (r *Refusal) Headers() []Field {
	h := []Field{
		{"Content-Type", problem.ContentType},
		{"X-Content-Type-Options", "nosniff"},
	}
	if r.ExchangeID != "" {
		h = append(h, Field{HeaderExchangeID, r.ExchangeID}, Field{HeaderHash, r.RequestHash})
	}
	if r.RetryAfter > 0 {
		h = append(h, Field{"Retry-After", strconv.Itoa(int(r.RetryAfter.Seconds()))})
	}
	return h
}
