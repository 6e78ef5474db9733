package exchange

import (
	"context"
	"mime"
	"slices"
	"strings"

	"github.com/lienthong/lienthong/catalog"
	"github.com/lienthong/lienthong/internal/problem"
)

// Kinds of the refusals only the consumer side gives, when it relays an
// exchange to the provider's gateway.
const (
	KindNoRoute             = "no-route"
	KindUnboundAnswer       = "unbound-answer"
	KindBadProviderAnswer   = "bad-provider-answer"
	KindProviderUnreachable = "provider-unreachable"
	KindProviderTimeout     = "provider-timeout"
)

// RelayTarget is the registered gateway of the provider's member, which an
// admitted consumer-side exchange goes to; without one it is refused
// (recorded). Every consumer-side door asks it before relaying.
func (c *Core) RelayTarget(ctx context.Context, x *Exchange) (catalog.Gateway, *Refusal) {
	peer, ok := x.snap.Gateways[MemberOf(x.req.Provider)]
	if !ok {
		return catalog.Gateway{}, c.Refuse(ctx, x, statusNotFound, KindNoRoute, "no gateway is registered for the member of provider "+x.req.Provider)
	}
	return peer, nil
}

// Relayed judges the provider gateway's answer to a relayed exchange, as
// every consumer-side door must before passing it on: it must be bound to
// the request sent (the exchange id and request hash in its headers) and be
// JSON or problem JSON. It names the withheld fields the caller itself
// asked for and records the outcome. header reads the answer's headers;
// body is the whole answer, which the door read within the response limit.
func (c *Core) Relayed(ctx context.Context, x *Exchange, status int, header func(string) string, body []byte) (*Answer, *Refusal) {
	if header(HeaderHash) != x.RequestHash() || header(HeaderExchangeID) != x.ID() {
		return nil, c.Refuse(ctx, x, statusBadGateway, KindUnboundAnswer, "the provider's answer is not bound to this request; it was not passed on")
	}
	ct := header("Content-Type")
	mt, _, err := mime.ParseMediaType(ct)
	if err != nil || (mt != "application/json" && mt != problem.ContentType) {
		// The type's text comes from the peer: log its size only.
		c.cfg.Log.Warn("provider answer refused", "exchange", x.ID(), "peer", x.snap.Gateways[MemberOf(x.req.Provider)].System,
			"fault", "content-type", "content_type_bytes", len(ct))
		return nil, c.Refuse(ctx, x, statusBadGateway, KindBadProviderAnswer, "the provider answered with a content type that is not JSON")
	}
	held := withheldFrom(header(HeaderWithheld), x.req.Fields)
	if len(held) > 0 {
		x.AddReason(ReasonFieldsWithheld)
	}
	a, ref := c.Answer(ctx, x, status, mt, body)
	if a != nil {
		a.Withheld = held
	}
	return a, ref
}

// withheldFrom passes on the provider's list of withheld fields, keeping
// only names the caller itself asked for: the header comes from a peer.
func withheldFrom(header string, asked []string) []string {
	if header == "" {
		return nil
	}
	var out []string
	for _, f := range strings.Split(header, ",") {
		if slices.Contains(asked, f) && !slices.Contains(out, f) {
			out = append(out, f)
		}
	}
	return out
}
