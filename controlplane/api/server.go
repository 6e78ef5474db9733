// Package api serves the control plane's management API: JSON over HTTPS,
// bearer-token authentication, RFC 9457 problems for every error, and its own
// OpenAPI document at /openapi.json, which the tests hold every request and
// response to.
package api

import (
	"bytes"
	"context"
	"crypto/tls"
	_ "embed"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"strings"
	"time"

	"github.com/getkin/kin-openapi/openapi3"
	"github.com/lienthong/lienthong/catalog"
	"github.com/lienthong/lienthong/controlplane/auth"
	"github.com/lienthong/lienthong/controlplane/service"
	"github.com/lienthong/lienthong/internal/jsonstrict"
	"github.com/lienthong/lienthong/internal/problem"
)

//go:embed openapi.yaml
var openAPIYAML []byte

// openAPIDocument is openapi.yaml as JSON, made once at start.
var openAPIDocument = mustJSONDocument(openAPIYAML)

// OpenAPIDocument returns the API's OpenAPI description as JSON. Extra routes
// mounted by other capabilities document themselves in the same file.
func OpenAPIDocument() []byte { return openAPIDocument }

func mustJSONDocument(src []byte) []byte {
	doc, err := openapi3.NewLoader().LoadFromData(src)
	if err != nil {
		panic("management API document: " + err.Error())
	}
	if err := doc.Validate(context.Background()); err != nil {
		panic("management API document: " + err.Error())
	}
	out, err := json.Marshal(doc)
	if err != nil {
		panic("management API document: " + err.Error())
	}
	return out
}

// Body size limits: JSON requests are small; a dataset document may be up to
// catalog.MaxDocumentSize, and JSON string escaping can double it.
const (
	maxJSONBody    = 1 << 20
	maxPublishBody = 2*catalog.MaxDocumentSize + 64<<10
)

// Server is the management API's http.Handler.
type Server struct {
	svc *service.Service
	log *slog.Logger
	mux *http.ServeMux
	// extra lets later capabilities mount routes (bundles, enrolment) without
	// this package importing them.
	routes []Route
}

// Route is one endpoint: a ServeMux pattern ("GET /v1/x/{id}") and its
// handler, which receives the authenticated principal (zero for public routes).
type Route struct {
	Pattern string
	// Public routes skip authentication (the OpenAPI document, health).
	Public bool
	// Gateway routes are the only ones a gateway known by its certificate
	// may call (pull its share, renew its certificate); on every other
	// route its certificate is refused with 403 before the handler runs.
	Gateway bool
	Handler func(w http.ResponseWriter, r *http.Request, p auth.Principal)
}

// New builds the API over svc. extra routes are mounted beside the built-in ones.
func New(svc *service.Service, log *slog.Logger, extra ...Route) *Server {
	s := &Server{svc: svc, log: log, mux: http.NewServeMux()}
	for _, group := range [][]Route{s.builtin(), s.accessRoutes(), s.certRoutes(), s.policyRoutes(), s.gatewayRoutes(), extra} {
		s.routes = append(s.routes, group...)
	}
	for _, rt := range s.routes {
		s.mux.Handle(rt.Pattern, s.wrap(rt))
	}
	s.mux.HandleFunc("/", func(w http.ResponseWriter, r *http.Request) {
		problem.Write(w, r, problem.New(http.StatusNotFound, "not-found", "no endpoint "+r.Method+" "+r.URL.Path+"; see /openapi.json"))
	})
	return s
}

// Routes lists the mounted patterns, so a test can check each is documented.
func (s *Server) Routes() []string {
	out := make([]string, len(s.routes))
	for i, r := range s.routes {
		out[i] = r.Pattern
	}
	return out
}

// ServeHTTP implements http.Handler.
func (s *Server) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	w.Header().Set("Cache-Control", "no-store")
	w.Header().Set("X-Content-Type-Options", "nosniff")
	s.mux.ServeHTTP(w, r)
}

func (s *Server) wrap(rt Route) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		start := time.Now()
		defer func() {
			if v := recover(); v != nil {
				s.log.Error("handler panic", "method", r.Method, "path", r.URL.Path, "panic", fmt.Sprint(v))
				problem.Write(w, r, problem.New(http.StatusInternalServerError, "internal", "internal error"))
			}
		}()
		var p auth.Principal
		if !rt.Public {
			var err error
			if p, err = s.authenticate(r); err != nil {
				s.log.Info("authentication refused", "method", r.Method, "path", r.URL.Path, "remote", r.RemoteAddr, "reason", err.Error())
				w.Header().Set("WWW-Authenticate", `Bearer realm="lienthong"`)
				problem.Write(w, r, problem.New(http.StatusUnauthorized, "unauthenticated", "a valid bearer token (Authorization: Bearer lt_...) or the client certificate of a registered gateway is required"))
				return
			}
			if p.IsGateway() && !rt.Gateway {
				s.log.Info("gateway certificate refused on a management route", "method", r.Method, "path", r.URL.Path, "system", p.System)
				problem.Write(w, r, problem.New(http.StatusForbidden, "forbidden", "a gateway certificate may only pull its member's configuration, policy bundle, trust and dataset documents, renew its own certificate and ask who it is"))
				return
			}
		}
		rt.Handler(w, r, p)
		s.log.Debug("request", "method", r.Method, "path", r.URL.Path, "token", p.TokenID, "elapsed", time.Since(start))
	})
}

// authenticate knows the caller by its bearer token (people and the CLI) or,
// without one, by the client certificate of its TLS connection (gateways,
// which hold no token). A token wins when both come: a browser may offer a
// certificate on its own.
func (s *Server) authenticate(r *http.Request) (auth.Principal, error) {
	h := r.Header.Get("Authorization")
	if h == "" && r.TLS != nil && len(r.TLS.PeerCertificates) > 0 {
		return s.svc.AuthenticateGateway(r.Context(), r.TLS.PeerCertificates)
	}
	scheme, token, ok := strings.Cut(h, " ")
	if !ok || !strings.EqualFold(scheme, "Bearer") {
		return auth.Principal{}, fmt.Errorf("%w: no bearer token or client certificate", auth.ErrUnauthenticated)
	}
	return auth.Authenticate(r.Context(), s.svc.Store(), strings.TrimSpace(token), s.svc.Now())
}

// RequestClientCertificates makes a management TLS configuration ask every
// client for a certificate without requiring one: people come with bearer
// tokens, gateways with their certificate. The chain is verified per request
// against the federation's current roots (Service.AuthenticateGateway), not
// in the handshake, so a CA rotation or a revocation counts at once.
func RequestClientCertificates(c *tls.Config) *tls.Config {
	c = c.Clone()
	c.ClientAuth = tls.RequestClientCert
	return c
}

// WriteJSON sends v with status.
func WriteJSON(w http.ResponseWriter, status int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	_ = enc.Encode(v)
}

// list wraps a collection so responses can grow (paging) without breaking clients.
type list[T any] struct {
	Items []T `json:"items"`
}

// WriteError maps an error to its problem: validation → 400 with every
// located complaint, not found → 404, conflict → 409, forbidden → 403, an
// oversized body → 413, anything else → 500 with no internals disclosed.
func (s *Server) WriteError(w http.ResponseWriter, r *http.Request, err error) {
	var (
		verr    *catalog.ValidationError
		tooBig  *http.MaxBytesError
		already *problem.Problem
	)
	switch {
	case errors.As(err, &already):
		problem.Write(w, r, already)
	case errors.As(err, &verr):
		p := problem.New(http.StatusBadRequest, "invalid-input", verr.Error())
		for _, pr := range verr.Problems {
			p.Errors = append(p.Errors, problem.FieldError{Pointer: pr.Pointer, Message: pr.Message})
		}
		problem.Write(w, r, p)
	case errors.As(err, &tooBig):
		problem.Write(w, r, problem.New(http.StatusRequestEntityTooLarge, "too-large", fmt.Sprintf("request body exceeds the limit of %d bytes", tooBig.Limit)))
	case errors.Is(err, catalog.ErrForbidden):
		problem.Write(w, r, problem.New(http.StatusForbidden, "forbidden", err.Error()))
	case errors.Is(err, catalog.ErrNotFound):
		problem.Write(w, r, problem.New(http.StatusNotFound, "not-found", err.Error()))
	case errors.Is(err, catalog.ErrConflict):
		problem.Write(w, r, problem.New(http.StatusConflict, "conflict", err.Error()))
	case errors.Is(err, context.Canceled):
		// The client left; nothing useful to send.
	default:
		s.log.Error("request failed", "method", r.Method, "path", r.URL.Path, "error", err.Error())
		problem.Write(w, r, problem.New(http.StatusInternalServerError, "internal", "internal error; the operator can find it in the control plane's log"))
	}
}

// DecodeJSON reads a JSON body strictly into v; every management API handler
// reads its body through it. The content type must be JSON; a key written
// twice in one object (also escaped or in another case), unknown members and
// trailing data are refused; and every error names the JSON pointer of the
// offending member.
func DecodeJSON(w http.ResponseWriter, r *http.Request, limit int64, v any) error {
	if ct := r.Header.Get("Content-Type"); ct != "" && !strings.HasPrefix(ct, "application/json") {
		return problem.New(http.StatusUnsupportedMediaType, "unsupported-media-type", "send the body as application/json, not "+ct)
	}
	body, err := io.ReadAll(http.MaxBytesReader(w, r.Body, limit))
	if err != nil {
		return decodeProblem(err)
	}
	if pointer, key, found := jsonstrict.FindDuplicate(body); found {
		if len(pointer) > 256 {
			pointer = strings.ToValidUTF8(pointer[:256], "") + "…"
		}
		return catalog.Invalid("request body", pointer, "duplicate member %q: a key may appear once in an object (keys are compared unescaped and regardless of case)", clipKey(key))
	}
	dec := json.NewDecoder(bytes.NewReader(body))
	dec.DisallowUnknownFields()
	if err := dec.Decode(v); err != nil {
		return decodeProblem(err)
	}
	if dec.More() {
		return catalog.Invalid("request body", "", "unexpected data after the JSON value")
	}
	return nil
}

// clipKey bounds a caller's key before it is echoed in a problem.
func clipKey(k string) string {
	if len(k) > 64 {
		return strings.ToValidUTF8(k[:64], "") + "…"
	}
	return k
}

func decodeProblem(err error) error {
	var (
		typeErr *json.UnmarshalTypeError
		synErr  *json.SyntaxError
		tooBig  *http.MaxBytesError
	)
	switch {
	case errors.As(err, &tooBig):
		return err
	case errors.As(err, &typeErr):
		return catalog.Invalid("request body", "/"+strings.ReplaceAll(typeErr.Field, ".", "/"), "expected %s, got JSON %s", typeErr.Type, typeErr.Value)
	case errors.As(err, &synErr):
		return catalog.Invalid("request body", "", "malformed JSON at byte %d: %v", synErr.Offset, err)
	case strings.HasPrefix(err.Error(), "json: unknown field "):
		name := strings.Trim(strings.TrimPrefix(err.Error(), "json: unknown field "), `"`)
		return catalog.Invalid("request body", "/"+name, "unknown member %q", name)
	case errors.Is(err, io.EOF):
		return catalog.Invalid("request body", "", "a JSON body is required")
	case errors.Is(err, io.ErrUnexpectedEOF):
		return catalog.Invalid("request body", "", "the JSON body ends too early")
	}
	return catalog.Invalid("request body", "", "malformed JSON: %v", err)
}
