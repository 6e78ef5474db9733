package api

import (
	"errors"
	"net/http"
	"strings"

	"github.com/lienthong/lienthong/catalog"
	"github.com/lienthong/lienthong/controlplane/auth"
	"github.com/lienthong/lienthong/controlplane/service"
	"github.com/lienthong/lienthong/internal/problem"
)

// certRoutes are the certificate endpoints: enrolment (and renewal),
// listing and revocation, the trust configuration gateways pull, and CA
// rotation.
func (s *Server) certRoutes() []Route {
	return []Route{
		{Pattern: "POST /v1/systems/{id}/certificates", Gateway: true, Handler: s.enroll},
		{Pattern: "POST /v1/systems/{id}/revoke", Handler: s.revokeSystem},
		{Pattern: "GET /v1/certificates", Handler: s.listCertificates},
		{Pattern: "GET /v1/certificates/{serial}", Handler: s.getCertificate},
		{Pattern: "POST /v1/certificates/{serial}/revoke", Handler: s.revokeCertificate},
		{Pattern: "GET /v1/trust", Gateway: true, Handler: s.trust},
		{Pattern: "GET /v1/ca", Handler: s.caStatus},
		{Pattern: "POST /v1/ca/rotate", Handler: s.rotateCA},
		{Pattern: "POST /v1/ca/retire", Handler: s.retireCA},
	}
}

// certError answers the two failures that belong to the authority rather
// than to the request, then defers to WriteError. The authority's own error
// goes to the log only: it may name Vault's address or paths, which callers
// (integrators included) have no use for.
func (s *Server) certError(w http.ResponseWriter, r *http.Request, err error) {
	switch {
	case errors.Is(err, service.ErrNoAuthority):
		problem.Write(w, r, problem.New(http.StatusServiceUnavailable, "no-authority", "this control plane runs without a certificate authority; start it with --ca embedded or --ca vault"))
	case errors.Is(err, service.ErrAuthorityFailed):
		s.log.Error("certificate authority failed", "method", r.Method, "path", r.URL.Path, "error", err.Error())
		problem.Write(w, r, problem.New(http.StatusBadGateway, "authority-failed", "the certificate authority did not answer as expected; the operator can find the cause in the control plane's log"))
	default:
		s.WriteError(w, r, err)
	}
}

// enrolRequest is the body of POST /v1/systems/{id}/certificates.
type enrolRequest struct {
	// CSR is the PKCS #10 request in PEM; the key stays with the requester.
	CSR string `json:"csr"`
}

func (s *Server) enroll(w http.ResponseWriter, r *http.Request, p auth.Principal) {
	var in enrolRequest
	if err := DecodeJSON(w, r, maxJSONBody, &in); err != nil {
		s.WriteError(w, r, s.svc.RefuseEnrolment(r.Context(), p, r.PathValue("id"), "unreadable request body: "+err.Error(), err))
		return
	}
	out, err := s.svc.Enroll(r.Context(), p, r.PathValue("id"), []byte(in.CSR))
	if err != nil {
		s.certError(w, r, err)
		return
	}
	s.log.Info("certificate issued", "system", out.Certificate.System, "serial", out.Certificate.Serial,
		"not_after", out.Certificate.NotAfter, "token", p.TokenID, "renewed_by_certificate", p.Certificate)
	w.Header().Set("Location", "/v1/certificates/"+out.Certificate.Serial)
	WriteJSON(w, http.StatusCreated, out)
}

func (s *Server) revokeSystem(w http.ResponseWriter, r *http.Request, p auth.Principal) {
	var in reasonBody
	if err := DecodeJSON(w, r, maxJSONBody, &in); err != nil {
		s.WriteError(w, r, err)
		return
	}
	out, err := s.svc.RevokeSystem(r.Context(), p, r.PathValue("id"), in.Reason)
	if err != nil {
		s.certError(w, r, err)
		return
	}
	s.log.Info("system revoked", "system", out.System.ID, "certificates", len(out.RevokedCertificates), "token", p.TokenID)
	WriteJSON(w, http.StatusOK, out)
}

func (s *Server) listCertificates(w http.ResponseWriter, r *http.Request, p auth.Principal) {
	q := r.URL.Query()
	out, err := s.svc.Certificates(r.Context(), p, catalog.CertificateFilter{System: q.Get("system"), Member: q.Get("member")})
	if err != nil {
		s.certError(w, r, err)
		return
	}
	WriteJSON(w, http.StatusOK, list[service.CertificateView]{out})
}

func (s *Server) getCertificate(w http.ResponseWriter, r *http.Request, p auth.Principal) {
	out, err := s.svc.Certificate(r.Context(), p, r.PathValue("serial"))
	if err != nil {
		s.certError(w, r, err)
		return
	}
	WriteJSON(w, http.StatusOK, out)
}

func (s *Server) revokeCertificate(w http.ResponseWriter, r *http.Request, p auth.Principal) {
	var in reasonBody
	if err := DecodeJSON(w, r, maxJSONBody, &in); err != nil {
		s.WriteError(w, r, err)
		return
	}
	out, err := s.svc.RevokeCertificate(r.Context(), p, r.PathValue("serial"), in.Reason)
	if err != nil {
		s.certError(w, r, err)
		return
	}
	s.log.Info("certificate revoked", "system", out.System, "serial", out.Serial, "token", p.TokenID)
	WriteJSON(w, http.StatusOK, out)
}

// trust serves the trust configuration with an ETag, so gateways polling it
// every few seconds get 304 Not Modified until something changes.
func (s *Server) trust(w http.ResponseWriter, r *http.Request, _ auth.Principal) {
	out, err := s.svc.Trust(r.Context())
	if err != nil {
		s.certError(w, r, err)
		return
	}
	w.Header().Set("ETag", out.ETag)
	if etagMatches(r.Header.Get("If-None-Match"), out.ETag) {
		w.WriteHeader(http.StatusNotModified)
		return
	}
	WriteJSON(w, http.StatusOK, out)
}

// etagMatches applies the weak comparison RFC 9110 section 13.1.2 asks of
// If-None-Match: any listed tag equal to etag, ignoring a W/ prefix, or "*".
func etagMatches(header, etag string) bool {
	if header == "" {
		return false
	}
	for _, tag := range strings.Split(header, ",") {
		tag = strings.TrimSpace(tag)
		if tag == "*" || strings.TrimPrefix(tag, "W/") == strings.TrimPrefix(etag, "W/") {
			return true
		}
	}
	return false
}

func (s *Server) caStatus(w http.ResponseWriter, r *http.Request, _ auth.Principal) {
	out, err := s.svc.CA(r.Context())
	if err != nil {
		s.certError(w, r, err)
		return
	}
	WriteJSON(w, http.StatusOK, out)
}

func (s *Server) rotateCA(w http.ResponseWriter, r *http.Request, p auth.Principal) {
	out, err := s.svc.RotateCA(r.Context(), p)
	if err != nil {
		s.certError(w, r, err)
		return
	}
	s.log.Warn("certificate authority rotated; two roots are trusted until it is retired", "roots", len(out.Roots), "token", p.TokenID)
	WriteJSON(w, http.StatusOK, out)
}

func (s *Server) retireCA(w http.ResponseWriter, r *http.Request, p auth.Principal) {
	out, err := s.svc.RetireCA(r.Context(), p)
	if err != nil {
		s.certError(w, r, err)
		return
	}
	s.log.Warn("previous certificate authority root retired", "roots", len(out.Roots), "token", p.TokenID)
	WriteJSON(w, http.StatusOK, out)
}
