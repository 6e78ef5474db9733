package api

import (
	"net/http"

	"github.com/lienthong/lienthong/catalog"
	"github.com/lienthong/lienthong/controlplane/auth"
	"github.com/lienthong/lienthong/controlplane/service"
)

func (s *Server) accessRoutes() []Route {
	return []Route{
		{Pattern: "GET /v1/access-requests", Handler: s.listRequests},
		{Pattern: "POST /v1/access-requests", Handler: s.requestAccess},
		{Pattern: "GET /v1/access-requests/{id}", Handler: s.getRequest},
		{Pattern: "POST /v1/access-requests/{id}/approve", Handler: s.approve},
		{Pattern: "POST /v1/access-requests/{id}/refuse", Handler: s.refuse},
		{Pattern: "POST /v1/access-requests/{id}/withdraw", Handler: s.withdraw},
		{Pattern: "GET /v1/grants", Handler: s.listGrants},
		{Pattern: "GET /v1/grants/{id}", Handler: s.getGrant},
		{Pattern: "POST /v1/grants/{id}/revoke", Handler: s.revokeGrant},
	}
}

func (s *Server) requestAccess(w http.ResponseWriter, r *http.Request, p auth.Principal) {
	var in service.AccessRequestInput
	if err := DecodeJSON(w, r, maxJSONBody, &in); err != nil {
		s.WriteError(w, r, err)
		return
	}
	out, err := s.svc.RequestAccess(r.Context(), p, in)
	if err != nil {
		s.WriteError(w, r, err)
		return
	}
	w.Header().Set("Location", "/v1/access-requests/"+out.ID)
	WriteJSON(w, http.StatusCreated, out)
}

func (s *Server) listRequests(w http.ResponseWriter, r *http.Request, p auth.Principal) {
	q := r.URL.Query()
	out, err := s.svc.AccessRequests(r.Context(), p, catalog.AccessRequestFilter{
		Member: q.Get("member"), Consumer: q.Get("consumer"), Provider: q.Get("provider"), State: catalog.RequestState(q.Get("state")),
	})
	if err != nil {
		s.WriteError(w, r, err)
		return
	}
	WriteJSON(w, http.StatusOK, list[catalog.AccessRequest]{out})
}

func (s *Server) getRequest(w http.ResponseWriter, r *http.Request, p auth.Principal) {
	out, err := s.svc.AccessRequest(r.Context(), p, r.PathValue("id"))
	if err != nil {
		s.WriteError(w, r, err)
		return
	}
	WriteJSON(w, http.StatusOK, out)
}

func (s *Server) approve(w http.ResponseWriter, r *http.Request, p auth.Principal) {
	var in service.Approval
	if err := DecodeJSON(w, r, maxJSONBody, &in); err != nil {
		s.WriteError(w, r, err)
		return
	}
	g, err := s.svc.Approve(r.Context(), p, r.PathValue("id"), in)
	if err != nil {
		s.WriteError(w, r, err)
		return
	}
	w.Header().Set("Location", "/v1/grants/"+g.ID)
	WriteJSON(w, http.StatusCreated, s.svc.View(*g))
}

// reasonBody is the body of refuse, withdraw and revoke.
type reasonBody struct {
	Reason string `json:"reason"`
}

func (s *Server) refuse(w http.ResponseWriter, r *http.Request, p auth.Principal) {
	var in reasonBody
	if err := DecodeJSON(w, r, maxJSONBody, &in); err != nil {
		s.WriteError(w, r, err)
		return
	}
	out, err := s.svc.Refuse(r.Context(), p, r.PathValue("id"), in.Reason)
	if err != nil {
		s.WriteError(w, r, err)
		return
	}
	WriteJSON(w, http.StatusOK, out)
}

func (s *Server) withdraw(w http.ResponseWriter, r *http.Request, p auth.Principal) {
	var in reasonBody
	if err := DecodeJSON(w, r, maxJSONBody, &in); err != nil {
		s.WriteError(w, r, err)
		return
	}
	out, err := s.svc.Withdraw(r.Context(), p, r.PathValue("id"), in.Reason)
	if err != nil {
		s.WriteError(w, r, err)
		return
	}
	WriteJSON(w, http.StatusOK, out)
}

func (s *Server) listGrants(w http.ResponseWriter, r *http.Request, p auth.Principal) {
	q := r.URL.Query()
	gs, err := s.svc.Grants(r.Context(), p, catalog.GrantFilter{
		Member: q.Get("member"), Consumer: q.Get("consumer"), Provider: q.Get("provider"),
		Dataset: q.Get("dataset"), State: catalog.GrantState(q.Get("state")),
	})
	if err != nil {
		s.WriteError(w, r, err)
		return
	}
	out := make([]service.GrantView, len(gs))
	for i, g := range gs {
		out[i] = s.svc.View(g)
	}
	WriteJSON(w, http.StatusOK, list[service.GrantView]{out})
}

func (s *Server) getGrant(w http.ResponseWriter, r *http.Request, p auth.Principal) {
	g, err := s.svc.Grant(r.Context(), p, r.PathValue("id"))
	if err != nil {
		s.WriteError(w, r, err)
		return
	}
	WriteJSON(w, http.StatusOK, s.svc.View(*g))
}

func (s *Server) revokeGrant(w http.ResponseWriter, r *http.Request, p auth.Principal) {
	var in reasonBody
	if err := DecodeJSON(w, r, maxJSONBody, &in); err != nil {
		s.WriteError(w, r, err)
		return
	}
	g, err := s.svc.RevokeGrant(r.Context(), p, r.PathValue("id"), in.Reason)
	if err != nil {
		s.WriteError(w, r, err)
		return
	}
	WriteJSON(w, http.StatusOK, s.svc.View(*g))
}
