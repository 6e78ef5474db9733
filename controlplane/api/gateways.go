package api

import (
	"net/http"
	"time"

	"github.com/lienthong/lienthong/catalog"
	"github.com/lienthong/lienthong/controlplane/auth"
)

func (s *Server) gatewayRoutes() []Route {
	return []Route{
		{Pattern: "GET /v1/gateways", Handler: s.listGateways},
		{Pattern: "PUT /v1/gateways/{member}", Handler: s.registerGateway},
		{Pattern: "GET /v1/gateway-config", Gateway: true, Handler: s.gatewayConfig},
	}
}

func (s *Server) listGateways(w http.ResponseWriter, r *http.Request, _ auth.Principal) {
	gs, err := s.svc.Gateways(r.Context())
	if err != nil {
		s.WriteError(w, r, err)
		return
	}
	WriteJSON(w, http.StatusOK, list[catalog.Gateway]{gs})
}

// gatewayBody is the body of PUT /v1/gateways/{member}.
type gatewayBody struct {
	System  string `json:"system"`
	Address string `json:"address"`
}

func (s *Server) registerGateway(w http.ResponseWriter, r *http.Request, p auth.Principal) {
	var in gatewayBody
	if err := DecodeJSON(w, r, maxJSONBody, &in); err != nil {
		s.WriteError(w, r, err)
		return
	}
	g, err := s.svc.RegisterGateway(r.Context(), p, catalog.Gateway{Member: r.PathValue("member"), System: in.System, Address: in.Address})
	if err != nil {
		s.WriteError(w, r, err)
		return
	}
	WriteJSON(w, http.StatusOK, g)
}

// gatewayConfig serves the signed configuration of the caller's gateway
// (the operator may ask for a member's with ?member=, or the whole
// federation's). The signature travels in X-LT-Signature so the body stays
// the exact bytes signed. With If-None-Match naming the current content, the
// answer is 304 with X-LT-Fresh-At and a signature over
// federation.FreshnessMessage instead.
func (s *Server) gatewayConfig(w http.ResponseWriter, r *http.Request, p auth.Principal) {
	cfg, err := s.svc.GatewayConfig(r.Context(), p, r.URL.Query().Get("member"), r.Header.Get("If-None-Match"))
	if err != nil {
		s.WriteError(w, r, err)
		return
	}
	h := w.Header()
	h.Set("ETag", cfg.ETag)
	h.Set("X-LT-Signature", cfg.Signature)
	if cfg.NotModified {
		h.Set("X-LT-Fresh-At", cfg.FreshAt.UTC().Format(time.RFC3339Nano))
		w.WriteHeader(http.StatusNotModified)
		return
	}
	h.Set("Content-Type", "application/json")
	_, _ = w.Write(cfg.Body)
}
