package gateway

import (
	"io"
	"net/http"
	"strconv"
	"strings"

	"github.com/lienthong/lienthong/catalog"
	"github.com/lienthong/lienthong/gateway/exchange"
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
		req := exchangeRequest(r, mode)
		req.Consumer, req.ExchangeID = r.Header.Get(HeaderConsumer), r.Header.Get(HeaderExchangeID)
		if mode == catalog.ModeVerify {
			body, err := readBody(w, r, g.cfg.MaxRequestBytes)
			if err != nil {
				writeRefusal(w, g.core.Reject(r.Context(), req, http.StatusRequestEntityTooLarge, "too-large", "the request body exceeds the limit"))
				return
			}
			req.Body = body
		}
		a, ref := g.core.Serve(r.Context(), req)
		if ref != nil {
			writeRefusal(w, ref)
			return
		}
		writeAnswer(w, a)
	}
}

// exchangeRequest reads what every door reads from an HTTP request: the
// caller's verified certificate chain, the exchange's names and headers.
func exchangeRequest(r *http.Request, mode catalog.Mode) exchange.Request {
	req := exchange.Request{
		Provider: r.PathValue("provider"), Dataset: r.PathValue("dataset"),
		Purpose: r.Header.Get(HeaderPurpose), Case: r.Header.Get(HeaderCase),
		Mode: mode, Method: r.Method, Path: r.URL.Path, Query: r.URL.Query(),
	}
	if r.TLS != nil {
		req.PeerChain = r.TLS.PeerCertificates
	}
	if mode == catalog.ModeVerify {
		req.Record = r.PathValue("record")
	} else {
		req.Record = r.PathValue("path")
		if f := req.Query.Get("fields"); f != "" {
			req.Fields = strings.Split(f, ",")
		}
	}
	return req
}

// readBody reads a request body up to limit bytes.
func readBody(w http.ResponseWriter, r *http.Request, limit int64) ([]byte, error) {
	return io.ReadAll(http.MaxBytesReader(w, r.Body, limit))
}

// writeAnswer sends a served exchange, bound to its request.
func writeAnswer(w http.ResponseWriter, a *exchange.Answer) {
	h := w.Header()
	h.Set("Content-Type", a.ContentType)
	h.Set(HeaderExchangeID, a.ExchangeID)
	h.Set(HeaderHash, a.RequestHash)
	if len(a.Withheld) > 0 {
		h.Set(HeaderWithheld, strings.Join(a.Withheld, ","))
	}
	h.Set("Content-Length", strconv.Itoa(len(a.Body)))
	w.WriteHeader(a.Status)
	_, _ = w.Write(a.Body)
}

// writeRefusal sends a refusal as problem JSON, bound to its request when
// the exchange got that far.
func writeRefusal(w http.ResponseWriter, ref *exchange.Refusal) {
	body := ref.Body()
	h := w.Header()
	h.Set("Content-Type", problem.ContentType)
	h.Set("X-Content-Type-Options", "nosniff")
	if ref.ExchangeID != "" {
		h.Set(HeaderExchangeID, ref.ExchangeID)
		h.Set(HeaderHash, ref.RequestHash)
	}
	if ref.RetryAfter > 0 {
		h.Set("Retry-After", strconv.Itoa(int(ref.RetryAfter.Seconds())))
	}
	h.Set("Content-Length", strconv.Itoa(len(body)))
	w.WriteHeader(ref.Status)
	_, _ = w.Write(body)
}
