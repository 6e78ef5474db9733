package api

import (
	"net/http"

	"github.com/lienthong/lienthong/controlplane/auth"
	"github.com/lienthong/lienthong/controlplane/service"
)

func (s *Server) policyRoutes() []Route {
	return []Route{
		{Pattern: "GET /v1/policy/bundle", Gateway: true, Handler: s.policyBundle},
		{Pattern: "GET /v1/policy/verification-key", Public: true, Handler: s.verificationKey},
		{Pattern: "POST /v1/policy/explain", Handler: s.explain},
		{Pattern: "GET /v1/systems/{id}/policy", Handler: s.getAgencyModule},
		{Pattern: "PUT /v1/systems/{id}/policy", Handler: s.putAgencyModule},
		{Pattern: "DELETE /v1/systems/{id}/policy", Handler: s.deleteAgencyModule},
	}
}

// policyBundle serves the signed OPA bundle of the current revision: a
// gateway (by its certificate) gets its member's share. The ETag is the revision, so a
// gateway polling with If-None-Match gets 304 until something changes.
func (s *Server) policyBundle(w http.ResponseWriter, r *http.Request, p auth.Principal) {
	b, err := s.svc.PolicyBundleFor(r.Context(), p, r.URL.Query().Get("member"))
	if err != nil {
		s.WriteError(w, r, err)
		return
	}
	etag := `"` + b.Revision + `"`
	w.Header().Set("ETag", etag)
	w.Header().Set("X-LT-Revision", b.Revision)
	if match := r.Header.Get("If-None-Match"); match == etag || match == "*" {
		w.WriteHeader(http.StatusNotModified)
		return
	}
	w.Header().Set("Content-Type", "application/gzip")
	_, _ = w.Write(b.Archive)
}

// verificationKey is public: it is what lets anyone check a bundle's origin.
func (s *Server) verificationKey(w http.ResponseWriter, r *http.Request, _ auth.Principal) {
	id, pem, err := s.svc.PolicyVerificationKey()
	if err != nil {
		s.WriteError(w, r, err)
		return
	}
	WriteJSON(w, http.StatusOK, map[string]string{"keyId": id, "publicKeyPem": string(pem)})
}

func (s *Server) explain(w http.ResponseWriter, r *http.Request, p auth.Principal) {
	var in service.ExplainInput
	if err := DecodeJSON(w, r, maxJSONBody, &in); err != nil {
		s.WriteError(w, r, err)
		return
	}
	d, err := s.svc.Explain(r.Context(), p, in)
	if err != nil {
		s.WriteError(w, r, err)
		return
	}
	WriteJSON(w, http.StatusOK, d)
}

// moduleBody carries a Rego module's source.
type moduleBody struct {
	Source string `json:"source"`
}

// moduleView describes a stored module.
type moduleView struct {
	Provider  string `json:"provider"`
	Source    string `json:"source"`
	Digest    string `json:"digest"`
	UpdatedAt string `json:"updatedAt"`
	UpdatedBy string `json:"updatedBy"`
}

func (s *Server) getAgencyModule(w http.ResponseWriter, r *http.Request, _ auth.Principal) {
	m, err := s.svc.AgencyModule(r.Context(), r.PathValue("id"))
	if err != nil {
		s.WriteError(w, r, err)
		return
	}
	WriteJSON(w, http.StatusOK, moduleView{m.Provider, string(m.Source), m.Digest, m.UpdatedAt.Format(timeFormat), m.UpdatedBy})
}

const timeFormat = "2006-01-02T15:04:05.999999999Z07:00"

func (s *Server) putAgencyModule(w http.ResponseWriter, r *http.Request, p auth.Principal) {
	var in moduleBody
	if err := DecodeJSON(w, r, maxJSONBody, &in); err != nil {
		s.WriteError(w, r, err)
		return
	}
	m, err := s.svc.SetAgencyModule(r.Context(), p, r.PathValue("id"), []byte(in.Source))
	if err != nil {
		s.WriteError(w, r, err)
		return
	}
	WriteJSON(w, http.StatusOK, moduleView{m.Provider, string(m.Source), m.Digest, m.UpdatedAt.Format(timeFormat), m.UpdatedBy})
}

func (s *Server) deleteAgencyModule(w http.ResponseWriter, r *http.Request, p auth.Principal) {
	if err := s.svc.DeleteAgencyModule(r.Context(), p, r.PathValue("id")); err != nil {
		s.WriteError(w, r, err)
		return
	}
	w.WriteHeader(http.StatusNoContent)
}
