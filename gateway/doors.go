package gateway

import (
	"io"
	"net/http"
	"strconv"
	"strings"

	"github.com/lienthong/lienthong/catalog"
	"github.com/lienthong/lienthong/gateway/exchange"
	"github.com/lienthong/lienthong/internal/httpguard"
)

// guard puts a listener's handler behind the framing guard, with the bounds
// of the exchange headers.
func guard(h http.Handler) http.Handler {
	return httpguard.Wrap(h, httpguard.Options{HeaderLimits: exchange.HeaderLimits})
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
	for _, f := range a.Headers() {
		h.Set(f.Name, f.Value)
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
	for _, f := range ref.Headers() {
		h.Set(f.Name, f.Value)
	}
	h.Set("Content-Length", strconv.Itoa(len(body)))
	w.WriteHeader(ref.Status)
	_, _ = w.Write(body)
}
