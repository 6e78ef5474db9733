package gateway

import (
	"bytes"
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strings"
	"time"

	"github.com/lienthong/lienthong/catalog"
	"github.com/lienthong/lienthong/internal/problem"
)

// consumerHandler serves the member's own systems: it names the caller from
// its certificate, forwards to the provider's gateway, and passes the answer
// on only if it is bound to the request it sent.
func (g *Gateway) consumerHandler() http.Handler {
	mux := http.NewServeMux()
	mux.HandleFunc("GET /r/{provider}/{dataset}/{path...}", g.forward)
	mux.HandleFunc("POST /v/{provider}/{dataset}/{record}", g.forward)
	mux.HandleFunc("POST /feeds/{dataset}/events", g.servePublish)
	mux.HandleFunc("GET /feeds/{provider}/{dataset}", g.serveFeedStream)
	mux.HandleFunc("GET /openapi.json", serveOpenAPI)
	mux.HandleFunc("/", func(w http.ResponseWriter, r *http.Request) {
		problem.Write(w, r, problem.New(http.StatusNotFound, "not-found", "use GET /r/{provider}/{dataset}/{path} or POST /v/{provider}/{dataset}/{record}"))
	})
	return mux
}

func (g *Gateway) forward(w http.ResponseWriter, r *http.Request) {
	x := &exchange{start: time.Now()}
	x.rec.Side, x.rec.Mode = "consumer", string(catalog.ModeQuery)
	if r.Method == http.MethodPost {
		x.rec.Mode = string(catalog.ModeVerify)
	}
	x.rec.Provider, x.rec.Dataset = r.PathValue("provider"), r.PathValue("dataset")
	x.rec.Purpose, x.rec.Case = r.Header.Get(HeaderPurpose), r.Header.Get(HeaderCase)
	x.rec.ExchangeID = catalog.NewID("exc")
	st, err := g.sync.fresh()
	if err != nil {
		g.refuse(w, r, x, http.StatusServiceUnavailable, "stale-configuration", err.Error())
		return
	}
	// The caller is who its certificate says, and nothing a header claims.
	caller, err := g.identify(r, st)
	if err != nil {
		g.refuse(w, r, x, http.StatusForbidden, "unknown-caller", err.Error())
		return
	}
	x.rec.Consumer = caller
	if memberOfSystem(caller) != g.cfg.Member {
		g.refuse(w, r, x, http.StatusForbidden, "foreign-caller", fmt.Sprintf("system %s is not a system of member %s, which this gateway serves", caller, g.cfg.Member))
		return
	}
	if x.rec.Purpose == "" {
		g.refuse(w, r, x, http.StatusBadRequest, "purpose-required", "the "+HeaderPurpose+" header (a public-service procedure code) is required")
		return
	}
	peer, ok := st.gateways[memberOfSystem(x.rec.Provider)]
	if !ok {
		g.refuse(w, r, x, http.StatusNotFound, "no-route", "no gateway is registered for the member of provider "+x.rec.Provider)
		return
	}
	var body []byte
	if r.Method == http.MethodPost {
		body, err = io.ReadAll(http.MaxBytesReader(w, r.Body, orDefaultBytes(g.cfg.MaxRequestBytes, 1<<20)))
		x.body = body
		if err != nil {
			g.refuse(w, r, x, http.StatusRequestEntityTooLarge, "too-large", "the request body exceeds the limit")
			return
		}
	}
	ctx, cancel := context.WithTimeout(r.Context(), orDefault(g.cfg.Timeout, 15*time.Second))
	defer cancel()
	out, err := http.NewRequestWithContext(ctx, r.Method, "https://"+peer.Address+r.URL.EscapedPath(), bytes.NewReader(body))
	if err != nil {
		g.refuse(w, r, x, http.StatusBadRequest, "invalid-input", "the request cannot be forwarded")
		return
	}
	out.URL.RawQuery = r.URL.RawQuery
	// Only these headers cross: identity headers from the caller are
	// dropped with everything else it sent.
	out.Header.Set(HeaderConsumer, caller)
	out.Header.Set(HeaderPurpose, x.rec.Purpose)
	if x.rec.Case != "" {
		out.Header.Set(HeaderCase, x.rec.Case)
	}
	out.Header.Set(HeaderExchangeID, x.rec.ExchangeID)
	if r.Method == http.MethodPost {
		out.Header.Set("Content-Type", "application/json")
	}
	// The intent is written while the provider's gateway works.
	if !g.begin(w, r, x, nil) {
		return
	}
	resp, err := g.peerClient(peer.System).Do(out)
	if err != nil {
		status, kind := http.StatusBadGateway, "provider-unreachable"
		if errors.Is(err, context.DeadlineExceeded) {
			status, kind = http.StatusGatewayTimeout, "provider-timeout"
		}
		// The URL holds the record id: log the cause, never the url.Error text.
		cause := err
		var uerr *url.Error
		if errors.As(err, &uerr) {
			cause = uerr.Err
		}
		g.log.Warn("provider gateway failed", "exchange", x.rec.ExchangeID, "peer", peer.Address, "error", cause.Error())
		g.refuse(w, r, x, status, kind, "the provider's gateway could not be reached")
		return
	}
	defer resp.Body.Close()
	limit := orDefaultBytes(g.cfg.MaxResponseBytes, 16<<20)
	answer, err := io.ReadAll(io.LimitReader(resp.Body, limit+1))
	if err != nil || int64(len(answer)) > limit {
		g.refuse(w, r, x, http.StatusBadGateway, "bad-provider-answer", "the provider's answer could not be read or exceeds the limit")
		return
	}
	if resp.Header.Get(HeaderHash) != x.rec.RequestHash || resp.Header.Get(HeaderExchangeID) != x.rec.ExchangeID {
		g.refuse(w, r, x, http.StatusBadGateway, "unbound-answer", "the provider's answer is not bound to this request; it was not passed on")
		return
	}
	ct := resp.Header.Get("Content-Type")
	if !strings.HasPrefix(ct, "application/json") && ct != problem.ContentType {
		g.refuse(w, r, x, http.StatusBadGateway, "bad-provider-answer", "the provider answered with "+ct)
		return
	}
	g.answer(w, r, x, resp.StatusCode, ct, answer)
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
		if exp := want.SPIFFE(g.trustDomain(g.sync.current.Load())); spiffeID != exp {
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
