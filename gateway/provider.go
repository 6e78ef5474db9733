package gateway

import (
	"net/http"

	"github.com/lienthong/lienthong/catalog"
	"github.com/lienthong/lienthong/internal/problem"
)

// providerHandler serves peer gateways: /r/ queries and /v/ verifications.
// It is a door onto the exchange core: it turns an HTTP request into an
// exchange.Request and the core's answer or refusal back into HTTP.
func (g *Gateway) providerHandler() http.Handler {
	mux := http.NewServeMux()
	mux.HandleFunc("GET /r/{provider}/{dataset}/{path...}", g.serveExchange(catalog.ModeQuery))
	mux.HandleFunc("POST /v/{provider}/{dataset}/{record}", g.serveExchange(catalog.ModeVerify))
	mux.HandleFunc("/", func(w http.ResponseWriter, r *http.Request) {
		problem.Write(w, r, problem.New(http.StatusNotFound, "not-found", "use GET /r/{provider}/{dataset}/{path} or POST /v/{provider}/{dataset}/{record}"))
	})
	return guard(mux)
}

// serveExchange is the inbound door for one mode.
func (g *Gateway) serveExchange(mode catalog.Mode) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		// The consumer gateway's trace goes on here, and on to the adapter.
		ctx, span := g.startSpan(r, "lienthong.exchange.provider", "provider", string(mode))
		r = r.WithContext(ctx)
		req := exchangeRequest(r, mode)
		req.Consumer, req.ExchangeID = r.Header.Get(HeaderConsumer), r.Header.Get(HeaderExchangeID)
		if mode == catalog.ModeVerify {
			body, err := readBody(w, r, g.cfg.MaxRequestBytes)
			if err != nil {
				ref := g.core.Reject(r.Context(), req, http.StatusRequestEntityTooLarge, "too-large", "the request body exceeds the limit")
				endAnswer(span, nil, ref)
				writeRefusal(w, ref)
				return
			}
			req.Body = body
		}
		a, ref := g.core.Serve(r.Context(), req)
		endAnswer(span, a, ref)
		if ref != nil {
			writeRefusal(w, ref)
			return
		}
		writeAnswer(w, a)
	}
}
