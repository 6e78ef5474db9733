package api

import (
	"net/http"

	"github.com/lienthong/lienthong/catalog"
	"github.com/lienthong/lienthong/controlplane/auth"
	"github.com/lienthong/lienthong/controlplane/service"
)

func (s *Server) gatewayRoutes() []Route {
	return []Route{
		{Pattern: "GET /v1/gateways", Handler: s.listGateways},
		{Pattern: "PUT /v1/gateways/{member}", Handler: s.registerGateway},
		{Pattern: "GET /v1/gateway-config", Handler: s.gatewayConfig},
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

// gatewayConfig serves the signed configuration every gateway pulls. The
// signature travels in X-LT-Signature so the body stays the exact bytes signed.
func (s *Server) gatewayConfig(w http.ResponseWriter, r *http.Request, p auth.Principal) {
	if err := service.RequireGateway(p, "pull the gateway configuration"); err != nil {
		s.WriteError(w, r, err)
		return
	}
	body, sig, err := s.svc.SignedGatewayConfig(r.Context())
	if err != nil {
		s.WriteError(w, r, err)
		return
	}
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set("X-LT-Signature", sig)
	_, _ = w.Write(body)
}
