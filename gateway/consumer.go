package gateway

import (
	"bytes"
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"io"
	"net/http"
	"time"

	"go.opentelemetry.io/otel/trace"

	"github.com/lienthong/lienthong/catalog"
	"github.com/lienthong/lienthong/gateway/exchange"
	"github.com/lienthong/lienthong/internal/problem"
	"github.com/lienthong/lienthong/internal/tracing"
)

// consumerHandler serves the member's own systems: it names the caller from
// its certificate, forwards to the provider's gateway, and passes the answer
// on only if it is bound to the request it sent.
func (g *Gateway) consumerHandler() http.Handler {
	mux := http.NewServeMux()
	mux.HandleFunc("GET /r/{provider}/{dataset}/{path...}", g.forward(catalog.ModeQuery))
	mux.HandleFunc("POST /v/{provider}/{dataset}/{record}", g.forward(catalog.ModeVerify))
	mux.HandleFunc("POST /feeds/{dataset}/events", g.servePublish)
	mux.HandleFunc("GET /feeds/{provider}/{dataset}", g.serveFeedStream)
	mux.HandleFunc("GET /openapi.json", serveOpenAPI)
	mux.HandleFunc("/", func(w http.ResponseWriter, r *http.Request) {
		problem.Write(w, r, problem.New(http.StatusNotFound, "not-found", "use GET /r/{provider}/{dataset}/{path} or POST /v/{provider}/{dataset}/{record}"))
	})
	return guard(mux)
}

// forward is the outbound door for one mode: admission by the core, then
// the provider's gateway, then the core's records.
func (g *Gateway) forward(mode catalog.Mode) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		// The caller's trace, if it sent a traceparent, goes on here.
		ctx, span := g.startSpan(r, "lienthong.exchange.consumer", "consumer", string(mode))
		a, ref := g.forwardExchange(ctx, w, r, mode)
		endAnswer(span, a, ref)
		if ref != nil {
			writeRefusal(w, ref)
			return
		}
		writeAnswer(w, a)
	}
}

// forwardExchange admits the caller's exchange and relays it.
func (g *Gateway) forwardExchange(ctx context.Context, w http.ResponseWriter, r *http.Request, mode catalog.Mode) (*exchange.Answer, *exchange.Refusal) {
	req := exchangeRequest(r, mode)
	if mode == catalog.ModeVerify {
		body, err := readBody(w, r, g.cfg.MaxRequestBytes)
		req.Body = body
		if err != nil {
			req.Body = nil
			x, ref := g.core.AdmitCaller(ctx, req)
			if ref == nil {
				ref = g.core.Refuse(ctx, x, http.StatusRequestEntityTooLarge, "too-large", "the request body exceeds the limit")
			}
			return nil, ref
		}
	}
	x, ref := g.core.AdmitCaller(ctx, req)
	if ref != nil {
		return nil, ref
	}
	return g.relay(ctx, x, req, r.URL.EscapedPath(), r.URL.RawQuery)
}

// relay sends an admitted exchange to the provider's gateway and returns its
// answer if it is bound to the request sent.
func (g *Gateway) relay(ctx context.Context, x *exchange.Exchange, req exchange.Request, escapedPath, rawQuery string) (*exchange.Answer, *exchange.Refusal) {
	peer, ref := g.core.RelayTarget(ctx, x)
	if ref != nil {
		return nil, ref
	}
	x.NoteProvider()
	fctx, cancel := context.WithTimeout(ctx, g.cfg.Timeout.Duration)
	defer cancel()
	out, err := http.NewRequestWithContext(fctx, req.Method, "https://"+peer.Address+escapedPath, bytes.NewReader(req.Body))
	if err != nil {
		return nil, g.core.Refuse(ctx, x, http.StatusBadRequest, "invalid-input", "the request cannot be forwarded")
	}
	out.URL.RawQuery = rawQuery
	// Only these headers cross: identity headers from the caller are
	// dropped with everything else it sent.
	out.Header.Set(HeaderConsumer, x.Consumer())
	out.Header.Set(HeaderPurpose, req.Purpose)
	if req.Case != "" {
		out.Header.Set(HeaderCase, req.Case)
	}
	out.Header.Set(HeaderExchangeID, x.ID())
	if req.Mode == catalog.ModeVerify {
		out.Header.Set("Content-Type", "application/json")
	}
	// The intent is written while the provider's gateway works.
	if ref := g.core.WriteIntent(ctx, x, nil); ref != nil {
		return nil, ref
	}
	fctx, span := g.tracer.Start(fctx, "lienthong.forward", trace.WithSpanKind(trace.SpanKindClient),
		trace.WithAttributes(tracing.KeyExchangeID.String(x.ID()), tracing.KeyDataset.String(req.Provider+"/"+req.Dataset)))
	defer span.End()
	tracing.Inject(fctx, out.Header)
	resp, err := g.peerClient(peer.System).Do(out.WithContext(fctx))
	if err != nil {
		status, kind, fault := http.StatusBadGateway, exchange.KindProviderUnreachable, "unreachable"
		if errors.Is(err, context.DeadlineExceeded) {
			status, kind, fault = http.StatusGatewayTimeout, exchange.KindProviderTimeout, "timeout"
		}
		// The error's text holds the URL (the record id) and what the peer
		// sent: log the kind of fault only.
		g.log.Warn("provider gateway failed", "exchange", x.ID(), "peer", peer.System, "fault", fault)
		return nil, g.core.Refuse(ctx, x, status, kind, "the provider's gateway could not be reached")
	}
	defer resp.Body.Close()
	limit := g.cfg.MaxResponseBytes
	answer, err := io.ReadAll(io.LimitReader(resp.Body, limit+1))
	if err != nil || int64(len(answer)) > limit {
		g.log.Warn("provider answer refused", "exchange", x.ID(), "peer", peer.System, "fault", "unreadable-or-too-large", "bytes", len(answer))
		return nil, g.core.Refuse(ctx, x, http.StatusBadGateway, exchange.KindBadProviderAnswer, "the provider's answer could not be read or exceeds the limit")
	}
	return g.core.Relayed(ctx, x, resp.StatusCode, resp.Header.Get, answer)
}

// peerClient returns the HTTP client that talks to one peer gateway and
// accepts only that gateway's identity.
func (g *Gateway) peerClient(system string) *http.Client {
	g.peersMu.Lock()
	defer g.peersMu.Unlock()
	if c, ok := g.peers[system]; ok {
		return c
	}
	want, err := catalog.ParseSystemID(system)
	allow := func(spiffeID string) error {
		if err != nil {
			return err
		}
		if exp := want.SPIFFE(trustDomainOf(g.sync.current.Load())); spiffeID != exp {
			return fmt.Errorf("peer presented %s, expected %s", spiffeID, exp)
		}
		return nil
	}
	// A pool of HTTP/1.1 keep-alive connections: under load one multiplexed
	// HTTP/2 connection serialises every exchange with a peer behind its
	// lock and flow-control window; measured, the pool is faster here.
	// Connections per peer are bounded, so a burst queues for a pooled
	// connection instead of setting off a storm of mTLS handshakes, and
	// sessions resume, so a reconnect costs no full handshake.
	tlsCfg := g.sync.trust.ClientConfig(g.rotator, allow)
	tlsCfg.ClientSessionCache = tls.NewLRUClientSessionCache(256)
	c := &http.Client{Transport: &http.Transport{
		TLSClientConfig:     tlsCfg,
		MaxIdleConnsPerHost: 128,
		MaxConnsPerHost:     128,
		IdleConnTimeout:     90 * time.Second,
	}}
	g.peers[system] = c
	return c
}
