// Package envoy holds two more doors onto the gateway's exchange core, for
// an agency that puts Envoy at its edge: Envoy's ext_authz asks Check for
// the decision, and ext_proc sends the backend's answer to Process to be
// filtered. Neither holds a copy of the admission, decision, projection,
// masking, validation or audit code: Check runs the core's BeginQuery
// (admission, decision, intent record), Process its FinishQuery (validate,
// row scope, project, mask, outcome record). Between the two, the exchange
// waits here, and Envoy carries the decision as ext_authz dynamic metadata
// (see Handover); an exchange whose answer never comes is recorded as
// abandoned when its wait ends, so every intent record gets its outcome.
//
// The gRPC listener takes only the local Envoy: mutual TLS with the
// gateway's own certificate on both sides (Envoy presents the gateway
// system's certificate, as the xDS configuration sets it).
package envoy

import (
	"context"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"encoding/hex"
	"errors"
	"fmt"
	"log/slog"
	"sync"
	"sync/atomic"
	"time"

	authv3 "github.com/envoyproxy/go-control-plane/envoy/service/auth/v3"
	extprocv3 "github.com/envoyproxy/go-control-plane/envoy/service/ext_proc/v3"
	"go.opentelemetry.io/otel/trace"
	"go.opentelemetry.io/otel/trace/noop"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials"
	"google.golang.org/grpc/peer"
	"google.golang.org/grpc/status"

	"github.com/lienthong/lienthong/certs"
	"github.com/lienthong/lienthong/gateway/exchange"
)

// Config is what the doors need.
type Config struct {
	Core *exchange.Core
	// VerifyPeer checks the certificate chain Envoy forwards for the caller
	// (leaf first) against the federation's trust. Envoy verified it at the
	// handshake; it is checked again so that no Envoy misconfiguration can
	// name a caller. Nil accepts what Envoy forwards.
	VerifyPeer func(chain []*x509.Certificate) error
	// Envoy returns the only SPIFFE id that may call these doors: the
	// gateway's own, which the local Envoy presents.
	Envoy func() string
	// MaxResponseBytes bounds a backend answer; MaxRequestBytes a
	// verification's body.
	MaxResponseBytes int64
	MaxRequestBytes  int64
	// Wait is how long an allowed exchange waits for its answer to reach
	// Process; past it the exchange is recorded as timed out.
	Wait time.Duration
	// Streamed says Envoy sends the response body in STREAMED mode (chunks
	// until end_of_stream) rather than BUFFERED (one message holding the
	// whole body, which the xDS configuration sets).
	Streamed bool
	Log      *slog.Logger
	// Tracer traces Check and Process under the trace context Envoy hands
	// over (nil: no tracing; see trace.go).
	Tracer trace.Tracer
}

// Server serves envoy.service.auth.v3.Authorization and
// envoy.service.ext_proc.v3.ExternalProcessor.
type Server struct {
	authv3.UnimplementedAuthorizationServer
	extprocv3.UnimplementedExternalProcessorServer

	cfg    Config
	tracer trace.Tracer
	// traced is false when the tracer records nothing: the doors then
	// skip every tracing step (the request's trace context passes Envoy
	// as the caller sent it).
	traced  bool
	mu      sync.Mutex
	waiting map[string]*waiting
	closed  bool

	peersMu sync.Mutex
	peers   map[string]peerEntry

	// envoyLeaf is the local Envoy's last certificate and its SPIFFE id:
	// gRPC hands the same parsed certificate to every call of a
	// connection, so its id is read once per connection, not per call.
	envoyLeaf atomic.Pointer[leafID]
}

// leafID is a certificate and the SPIFFE id it names.
type leafID struct {
	leaf *x509.Certificate
	id   string
}

// waiting is an allowed exchange between Check and Process, with the spans
// its trace goes on from: Check's, and the upstream request's (nil when
// nothing goes upstream), which ends when the answer reaches Process.
type waiting struct {
	x        *exchange.Exchange
	timer    *time.Timer
	check    trace.SpanContext
	upstream trace.Span
}

// New checks cfg and returns a Server.
func New(cfg Config) (*Server, error) {
	var errs []error
	if cfg.Core == nil {
		errs = append(errs, errors.New("no exchange core"))
	}
	if cfg.Envoy == nil {
		errs = append(errs, errors.New("no Envoy identity"))
	}
	if cfg.MaxResponseBytes <= 0 || cfg.MaxRequestBytes <= 0 || cfg.Wait <= 0 {
		errs = append(errs, errors.New("request and response limits and wait must be positive"))
	}
	if err := errors.Join(errs...); err != nil {
		return nil, fmt.Errorf("envoy doors: %w", err)
	}
	if cfg.Log == nil {
		cfg.Log = slog.New(slog.DiscardHandler)
	}
	tracer, traced := cfg.Tracer, cfg.Tracer != nil
	if _, off := tracer.(noop.Tracer); off || !traced {
		tracer, traced = noop.NewTracerProvider().Tracer(""), false
	}
	return &Server{cfg: cfg, tracer: tracer, traced: traced, waiting: map[string]*waiting{}, peers: map[string]peerEntry{}}, nil
}

// GRPCServer returns a gRPC server over tlsConfig (which must require and
// verify client certificates) with both services registered.
func (s *Server) GRPCServer(tlsConfig *tls.Config) *grpc.Server {
	g := grpc.NewServer(grpc.Creds(credentials.NewTLS(tlsConfig)), grpc.MaxRecvMsgSize(int(s.cfg.MaxResponseBytes)+64<<10))
	authv3.RegisterAuthorizationServer(g, s)
	extprocv3.RegisterExternalProcessorServer(g, s)
	return g
}

// Close records every exchange still waiting for its answer as abandoned;
// the doors take no new exchange after it.
func (s *Server) Close() {
	s.mu.Lock()
	s.closed = true
	held := s.waiting
	s.waiting = map[string]*waiting{}
	s.mu.Unlock()
	for _, w := range held {
		w.timer.Stop()
		endUpstream(w.upstream, "the gateway closed before the answer came")
		s.cfg.Core.Abandon(context.Background(), w.x, false)
	}
}

// Waiting is how many allowed exchanges wait for their answer.
func (s *Server) Waiting() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return len(s.waiting)
}

// hold keeps an allowed exchange until Process takes it or its wait ends,
// and returns the handle that names it in the metadata. It is random, not
// the exchange id, which the consumer's gateway chose. check and upstream
// are the exchange's spans (see waiting).
func (s *Server) hold(x *exchange.Exchange, check trace.SpanContext, upstream trace.Span) (string, bool) {
	var b [16]byte
	_, _ = rand.Read(b[:])
	handle := hex.EncodeToString(b[:])
	w := &waiting{x: x, check: check, upstream: upstream}
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.closed {
		return "", false
	}
	w.timer = time.AfterFunc(s.cfg.Wait, func() {
		if w := s.take(handle); w != nil {
			endUpstream(w.upstream, "no answer within the wait")
			s.cfg.Core.Abandon(context.Background(), x, true)
		}
	})
	s.waiting[handle] = w
	return handle, true
}

// take removes and returns the waiting exchange of handle, or nil when
// there is none (never allowed here, already taken, or its wait ended).
func (s *Server) take(handle string) *waiting {
	s.mu.Lock()
	defer s.mu.Unlock()
	w, ok := s.waiting[handle]
	if !ok {
		return nil
	}
	delete(s.waiting, handle)
	w.timer.Stop()
	return w
}

// drop forgets a waiting exchange whose handover failed (the caller
// refuses it): its upstream request is never sent.
func (s *Server) drop(handle string) {
	if w := s.take(handle); w != nil {
		endUpstream(w.upstream, "not handed over")
	}
}

// fromEnvoy admits a gRPC call only from the local Envoy: the TLS peer must
// be the gateway's own SPIFFE id. The listener's TLS configuration checks
// the chain; this checks who it is, on every call.
func (s *Server) fromEnvoy(ctx context.Context) error {
	p, ok := peer.FromContext(ctx)
	if !ok {
		return status.Error(codes.Unauthenticated, "no peer")
	}
	info, ok := p.AuthInfo.(credentials.TLSInfo)
	if !ok || len(info.State.PeerCertificates) == 0 {
		return status.Error(codes.Unauthenticated, "no client certificate")
	}
	id, err := s.peerID(info.State.PeerCertificates[0])
	if err != nil || id != s.cfg.Envoy() {
		return status.Error(codes.PermissionDenied, "only the local Envoy, presenting the gateway's certificate, may call")
	}
	return nil
}

// peerID is the SPIFFE id of the caller's leaf certificate, read once per
// parsed certificate (the same pointer for every call of a connection).
func (s *Server) peerID(leaf *x509.Certificate) (string, error) {
	if c := s.envoyLeaf.Load(); c != nil && c.leaf == leaf {
		return c.id, nil
	}
	id, err := certs.SPIFFEID(leaf)
	if err != nil {
		return "", err
	}
	s.envoyLeaf.Store(&leafID{leaf: leaf, id: id})
	return id, nil
}
