package api

import (
	"net/http"
	"strconv"
	"time"

	"github.com/lienthong/lienthong/catalog"
	"github.com/lienthong/lienthong/controlplane/auth"
	"github.com/lienthong/lienthong/controlplane/service"
	"github.com/lienthong/lienthong/internal/problem"
)

func (s *Server) builtin() []Route {
	return []Route{
		{Pattern: "GET /openapi.json", Public: true, Handler: s.openapi},
		{Pattern: "GET /healthz", Public: true, Handler: s.healthz},
		{Pattern: "GET /v1/whoami", Gateway: true, Handler: s.whoami},
		{Pattern: "GET /v1/members", Handler: s.listMembers},
		{Pattern: "POST /v1/members", Handler: s.addMember},
		{Pattern: "GET /v1/members/{code}", Handler: s.getMember},
		{Pattern: "GET /v1/systems", Handler: s.listSystems},
		{Pattern: "POST /v1/systems", Handler: s.addSystem},
		{Pattern: "GET /v1/systems/{id}", Handler: s.getSystem},
		{Pattern: "POST /v1/systems/{id}/assessments", Handler: s.assess},
		{Pattern: "GET /v1/datasets", Handler: s.listDatasets},
		{Pattern: "POST /v1/datasets", Handler: s.publish},
		{Pattern: "GET /v1/datasets/{system}/{code}", Handler: s.getDataset},
		{Pattern: "GET /v1/datasets/{system}/{code}/fields", Handler: s.datasetFields},
		{Pattern: "GET /v1/datasets/{system}/{code}/versions", Handler: s.datasetVersions},
		{Pattern: "GET /v1/datasets/{system}/{code}/document", Gateway: true, Handler: s.datasetDocument},
		{Pattern: "GET /v1/tokens", Handler: s.listTokens},
		{Pattern: "POST /v1/tokens", Handler: s.createToken},
		{Pattern: "DELETE /v1/tokens/{id}", Handler: s.revokeToken},
		{Pattern: "GET /v1/trail", Handler: s.trail},
	}
}

func (s *Server) openapi(w http.ResponseWriter, _ *http.Request, _ auth.Principal) {
	w.Header().Set("Content-Type", "application/json")
	_, _ = w.Write(openAPIDocument)
}

func (s *Server) healthz(w http.ResponseWriter, r *http.Request, _ auth.Principal) {
	rev, err := s.svc.Store().Revision(r.Context())
	if err != nil {
		s.WriteError(w, r, err)
		return
	}
	WriteJSON(w, http.StatusOK, map[string]any{"status": "ok", "revision": rev})
}

// whoAmI describes the caller's token, so scripts can check what they hold.
type whoAmI struct {
	TokenID string       `json:"tokenId"`
	Name    string       `json:"name"`
	Role    catalog.Role `json:"role"`
	Member  string       `json:"member,omitempty"`
}

func (s *Server) whoami(w http.ResponseWriter, _ *http.Request, p auth.Principal) {
	WriteJSON(w, http.StatusOK, whoAmI{p.TokenID, p.Name, p.Role, p.Member})
}

func (s *Server) listMembers(w http.ResponseWriter, r *http.Request, _ auth.Principal) {
	ms, err := s.svc.Members(r.Context())
	if err != nil {
		s.WriteError(w, r, err)
		return
	}
	WriteJSON(w, http.StatusOK, list[catalog.Member]{ms})
}

// newMember is the body of POST /v1/members.
type newMember struct {
	Code     string            `json:"code"`
	Name     string            `json:"name"`
	Contacts []catalog.Contact `json:"contacts,omitempty"`
}

func (s *Server) addMember(w http.ResponseWriter, r *http.Request, p auth.Principal) {
	var m newMember
	if err := DecodeJSON(w, r, maxJSONBody, &m); err != nil {
		s.WriteError(w, r, err)
		return
	}
	out, err := s.svc.AddMember(r.Context(), p, catalog.Member{Code: m.Code, Name: m.Name, Contacts: m.Contacts})
	if err != nil {
		s.WriteError(w, r, err)
		return
	}
	w.Header().Set("Location", "/v1/members/"+out.Code)
	WriteJSON(w, http.StatusCreated, out)
}

func (s *Server) getMember(w http.ResponseWriter, r *http.Request, _ auth.Principal) {
	m, err := s.svc.Member(r.Context(), r.PathValue("code"))
	if err != nil {
		s.WriteError(w, r, err)
		return
	}
	WriteJSON(w, http.StatusOK, m)
}

func (s *Server) listSystems(w http.ResponseWriter, r *http.Request, _ auth.Principal) {
	ss, err := s.svc.Systems(r.Context(), catalog.SystemFilter{Member: r.URL.Query().Get("member")})
	if err != nil {
		s.WriteError(w, r, err)
		return
	}
	WriteJSON(w, http.StatusOK, list[service.SystemView]{ss})
}

// newSystem is the body of POST /v1/systems; assessment is recorded separately.
type newSystem struct {
	ID            string `json:"id"`
	Name          string `json:"name"`
	Member        string `json:"member,omitempty"`
	SecurityLevel int    `json:"securityLevel"`
}

func (s *Server) addSystem(w http.ResponseWriter, r *http.Request, p auth.Principal) {
	var in newSystem
	if err := DecodeJSON(w, r, maxJSONBody, &in); err != nil {
		s.WriteError(w, r, err)
		return
	}
	out, err := s.svc.AddSystem(r.Context(), p, catalog.System{ID: in.ID, Name: in.Name, Member: in.Member, SecurityLevel: in.SecurityLevel})
	if err != nil {
		s.WriteError(w, r, err)
		return
	}
	w.Header().Set("Location", "/v1/systems/"+out.ID)
	WriteJSON(w, http.StatusCreated, out)
}

func (s *Server) getSystem(w http.ResponseWriter, r *http.Request, _ auth.Principal) {
	out, err := s.svc.System(r.Context(), r.PathValue("id"))
	if err != nil {
		s.WriteError(w, r, err)
		return
	}
	WriteJSON(w, http.StatusOK, out)
}

// newAssessment is the body of POST /v1/systems/{id}/assessments.
type newAssessment struct {
	Level      int       `json:"level"`
	AssessedBy string    `json:"assessedBy"`
	Reference  string    `json:"reference"`
	ValidUntil time.Time `json:"validUntil"`
}

func (s *Server) assess(w http.ResponseWriter, r *http.Request, p auth.Principal) {
	var in newAssessment
	if err := DecodeJSON(w, r, maxJSONBody, &in); err != nil {
		s.WriteError(w, r, err)
		return
	}
	out, err := s.svc.Assess(r.Context(), p, r.PathValue("id"), catalog.Assessment{
		Level: in.Level, AssessedBy: in.AssessedBy, Reference: in.Reference, ValidUntil: in.ValidUntil.UTC(),
	})
	if err != nil {
		s.WriteError(w, r, err)
		return
	}
	WriteJSON(w, http.StatusOK, out)
}

func (s *Server) listDatasets(w http.ResponseWriter, r *http.Request, _ auth.Principal) {
	q := r.URL.Query()
	ds, err := s.svc.Datasets(r.Context(), catalog.DatasetFilter{Member: q.Get("member"), System: q.Get("system")})
	if err != nil {
		s.WriteError(w, r, err)
		return
	}
	WriteJSON(w, http.StatusOK, list[catalog.Dataset]{ds})
}

// publishRequest is the body of POST /v1/datasets. The document travels as a
// string so YAML and JSON documents are published alike, byte for byte.
type publishRequest struct {
	System           string `json:"system"`
	Code             string `json:"code,omitempty"`
	Document         string `json:"document"`
	MinConsumerLevel int    `json:"minConsumerLevel,omitempty"`
}

func (s *Server) publish(w http.ResponseWriter, r *http.Request, p auth.Principal) {
	var in publishRequest
	if err := DecodeJSON(w, r, maxPublishBody, &in); err != nil {
		s.WriteError(w, r, err)
		return
	}
	if len(in.Document) > catalog.MaxDocumentSize {
		problem.Write(w, r, problem.New(http.StatusRequestEntityTooLarge, "too-large", "the dataset document exceeds the limit of "+strconv.Itoa(catalog.MaxDocumentSize)+" bytes"))
		return
	}
	res, err := s.svc.Publish(r.Context(), p, service.PublishInput{
		System: in.System, Code: in.Code, Document: []byte(in.Document), MinConsumerLevel: in.MinConsumerLevel,
	})
	if err != nil {
		s.WriteError(w, r, err)
		return
	}
	status := http.StatusOK
	if res.Created {
		status = http.StatusCreated
		w.Header().Set("Location", "/v1/datasets/"+res.Dataset.Ref())
	}
	WriteJSON(w, status, res)
}

func (s *Server) dataset(w http.ResponseWriter, r *http.Request) (*catalog.Dataset, bool) {
	version := 0
	if v := r.URL.Query().Get("version"); v != "" {
		n, err := strconv.Atoi(v)
		if err != nil || n < 1 {
			s.WriteError(w, r, catalog.Invalid("query", "version", "version %q must be a positive integer", v))
			return nil, false
		}
		version = n
	}
	d, err := s.svc.Dataset(r.Context(), r.PathValue("system"), r.PathValue("code"), version)
	if err != nil {
		s.WriteError(w, r, err)
		return nil, false
	}
	return d, true
}

func (s *Server) getDataset(w http.ResponseWriter, r *http.Request, _ auth.Principal) {
	if d, ok := s.dataset(w, r); ok {
		WriteJSON(w, http.StatusOK, d)
	}
}

func (s *Server) datasetFields(w http.ResponseWriter, r *http.Request, _ auth.Principal) {
	if d, ok := s.dataset(w, r); ok {
		WriteJSON(w, http.StatusOK, list[catalog.Field]{d.Fields})
	}
}

func (s *Server) datasetDocument(w http.ResponseWriter, r *http.Request, p auth.Principal) {
	if err := service.RequireOwnDataset(p, r.PathValue("system")); err != nil {
		s.WriteError(w, r, err)
		return
	}
	d, ok := s.dataset(w, r)
	if !ok {
		return
	}
	ct := "application/yaml"
	if len(d.Document) > 0 && d.Document[0] == '{' {
		ct = "application/json"
	}
	w.Header().Set("Content-Type", ct)
	w.Header().Set("ETag", `"`+d.Digest+`"`)
	_, _ = w.Write(d.Document)
}

func (s *Server) datasetVersions(w http.ResponseWriter, r *http.Request, _ auth.Principal) {
	vs, err := s.svc.DatasetVersions(r.Context(), r.PathValue("system"), r.PathValue("code"))
	if err != nil {
		s.WriteError(w, r, err)
		return
	}
	WriteJSON(w, http.StatusOK, list[catalog.Dataset]{vs})
}

func (s *Server) listTokens(w http.ResponseWriter, r *http.Request, p auth.Principal) {
	ts, err := s.svc.Tokens(r.Context(), p)
	if err != nil {
		s.WriteError(w, r, err)
		return
	}
	WriteJSON(w, http.StatusOK, list[catalog.Token]{ts})
}

// tokenRequest is the body of POST /v1/tokens.
type tokenRequest struct {
	Name   string       `json:"name"`
	Role   catalog.Role `json:"role"`
	Member string       `json:"member,omitempty"`
	// TTL is a Go duration such as "720h"; empty means no expiry.
	TTL string `json:"ttl,omitempty"`
}

// tokenCreated answers POST /v1/tokens: the only time the secret is shown.
type tokenCreated struct {
	Token  string        `json:"token"`
	Record catalog.Token `json:"record"`
}

func (s *Server) createToken(w http.ResponseWriter, r *http.Request, p auth.Principal) {
	var in tokenRequest
	if err := DecodeJSON(w, r, maxJSONBody, &in); err != nil {
		s.WriteError(w, r, err)
		return
	}
	req := service.TokenRequest{Name: in.Name, Role: in.Role, Member: in.Member}
	if in.TTL != "" {
		d, err := time.ParseDuration(in.TTL)
		if err != nil || d <= 0 {
			s.WriteError(w, r, catalog.Invalid("token", "/ttl", "ttl %q must be a positive duration such as 720h", in.TTL))
			return
		}
		req.TTL = d
	}
	secret, tok, err := s.svc.CreateToken(r.Context(), p, req)
	if err != nil {
		s.WriteError(w, r, err)
		return
	}
	WriteJSON(w, http.StatusCreated, tokenCreated{Token: secret, Record: *tok})
}

func (s *Server) revokeToken(w http.ResponseWriter, r *http.Request, p auth.Principal) {
	tok, err := s.svc.RevokeToken(r.Context(), p, r.PathValue("id"))
	if err != nil {
		s.WriteError(w, r, err)
		return
	}
	WriteJSON(w, http.StatusOK, tok)
}

func (s *Server) trail(w http.ResponseWriter, r *http.Request, p auth.Principal) {
	q := r.URL.Query()
	f := catalog.TrailFilter{Member: q.Get("member"), Object: q.Get("object")}
	if v := q.Get("after"); v != "" {
		n, err := strconv.ParseInt(v, 10, 64)
		if err != nil || n < 0 {
			s.WriteError(w, r, catalog.Invalid("query", "after", "after %q must be a non-negative integer", v))
			return
		}
		f.AfterSeq = n
	}
	if v := q.Get("limit"); v != "" {
		n, err := strconv.Atoi(v)
		if err != nil || n < 1 || n > 10000 {
			s.WriteError(w, r, catalog.Invalid("query", "limit", "limit %q must be between 1 and 10000", v))
			return
		}
		f.Limit = n
	}
	es, err := s.svc.Trail(r.Context(), p, f)
	if err != nil {
		s.WriteError(w, r, err)
		return
	}
	WriteJSON(w, http.StatusOK, list[catalog.TrailEntry]{es})
}
