package envoy

import (
	"net/http"
	"strconv"
	"strings"

	extprocv3 "github.com/envoyproxy/go-control-plane/envoy/service/ext_proc/v3"

	"github.com/lienthong/lienthong/gateway/exchange"
)

// relay handles the ext_proc stream of a consumer-side exchange: the
// provider gateway's answer, which Envoy relayed from the provider's edge,
// is judged by the core's Relayed (bound to the request sent, JSON or
// problem JSON, the withheld fields the caller asked for, outcome record)
// exactly as the native outbound door judges it, and passed on with the
// core's headers only. The consumer side takes BUFFERED bodies: in
// STREAMED mode the headers would leave before the answer is judged.
func (p *processing) relay(in *extprocv3.ProcessingRequest) *extprocv3.ProcessingResponse {
	core := p.s.cfg.Core
	switch r := in.Request.(type) {
	case *extprocv3.ProcessingRequest_ResponseHeaders:
		if p.s.cfg.Streamed {
			p.done = true
			return immediate(core.Refuse(p.ctx, p.x, http.StatusInternalServerError, exchange.KindInternal, "a relayed answer must reach the gateway buffered"))
		}
		p.relayed = http.Header{}
		var remove []string
		for _, hv := range r.ResponseHeaders.GetHeaders().GetHeaders() {
			key := strings.ToLower(hv.GetKey())
			if key == ":status" {
				p.relayStatus, _ = strconv.Atoi(headerValue(hv))
				continue
			}
			if strings.HasPrefix(key, ":") {
				continue
			}
			p.relayed.Add(key, headerValue(hv))
			remove = append(remove, key)
		}
		if n, err := strconv.ParseInt(p.relayed.Get("Content-Length"), 10, 64); err == nil && n > p.s.cfg.MaxResponseBytes {
			return p.relayTooLarge()
		}
		p.sawHeaders = true
		if r.ResponseHeaders.GetEndOfStream() {
			p.done = true
			return answerImmediate(core.Relayed(p.ctx, p.x, p.relayStatus, p.relayed.Get, nil))
		}
		// Every header of the provider's answer is removed; the core's are
		// set with the judged body.
		return &extprocv3.ProcessingResponse{Response: &extprocv3.ProcessingResponse_ResponseHeaders{ResponseHeaders: &extprocv3.HeadersResponse{
			Response: &extprocv3.CommonResponse{HeaderMutation: &extprocv3.HeaderMutation{RemoveHeaders: remove}},
		}}}
	case *extprocv3.ProcessingRequest_ResponseBody:
		if !p.sawHeaders {
			p.done = true
			return immediate(core.Refuse(p.ctx, p.x, http.StatusInternalServerError, exchange.KindInternal, "the answer's headers were not seen"))
		}
		b := r.ResponseBody.GetBody()
		if int64(len(b)) > p.s.cfg.MaxResponseBytes {
			return p.relayTooLarge()
		}
		p.done = true
		a, ref := core.Relayed(p.ctx, p.x, p.relayStatus, p.relayed.Get, b)
		if ref != nil {
			return immediate(ref)
		}
		return bodyResponse(&extprocv3.CommonResponse{
			Status:         extprocv3.CommonResponse_CONTINUE_AND_REPLACE,
			BodyMutation:   &extprocv3.BodyMutation{Mutation: &extprocv3.BodyMutation_Body{Body: a.Body}},
			HeaderMutation: &extprocv3.HeaderMutation{SetHeaders: answerHeaders(a, len(a.Body))},
		})
	case *extprocv3.ProcessingRequest_ResponseTrailers:
		// Trailers with no body answered: nothing can be passed on.
		p.done = true
		return immediate(core.Abandon(p.ctx, p.x, false))
	}
	p.done = true
	return immediate(core.Refuse(p.ctx, p.x, http.StatusInternalServerError, exchange.KindInternal, "a relayed exchange is judged at the response, not the request"))
}

// relayTooLarge refuses a relayed answer over the response limit, as the
// native outbound door does.
func (p *processing) relayTooLarge() *extprocv3.ProcessingResponse {
	p.done = true
	p.s.cfg.Log.Warn("provider answer refused", "exchange", p.x.ID(), "fault", "unreadable-or-too-large")
	return immediate(p.s.cfg.Core.Refuse(p.ctx, p.x, http.StatusBadGateway, exchange.KindBadProviderAnswer, "the provider's answer could not be read or exceeds the limit"))
}
