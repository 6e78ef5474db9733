package auditapi

import (
	"context"
	"encoding/json"
	"errors"
	"net/http"
	"net/url"
	"regexp"
	"time"

	"github.com/lienthong/lienthong/audit/index"
	"github.com/lienthong/lienthong/catalog"
	"github.com/lienthong/lienthong/controlplane/api"
	"github.com/lienthong/lienthong/controlplane/auth"
)

// ExchangeQuery is an auditor's query, as the body of POST
// /v1/audit/exchanges/query or the parameters of GET /v1/audit/exchanges.
// A citizen's personal ID is accepted only in the body, so that it never
// stands in a URL (proxies and access logs keep URLs); the control plane
// turns it into the subject HMAC the index holds.
type ExchangeQuery struct {
	Consumer   string    `json:"consumer,omitempty"`
	Provider   string    `json:"provider,omitempty"`
	Dataset    string    `json:"dataset,omitempty"`
	Purpose    string    `json:"purpose,omitempty"`
	Status     int       `json:"status,omitempty"`
	Subject    string    `json:"subject,omitempty"`
	PersonalID string    `json:"personalId,omitempty"`
	Phase      string    `json:"phase,omitempty"`
	From       time.Time `json:"from,omitzero"`
	Until      time.Time `json:"until,omitzero"`
	Limit      int       `json:"limit,omitempty"`
	Cursor     string    `json:"cursor,omitempty"`
}

// personalIDPattern is the 12-digit personal identification number.
var personalIDPattern = regexp.MustCompile(`^[0-9]{12}$`)

// toIndex makes the index query, scoped to what the caller may see.
func (h *Handlers) toIndex(in ExchangeQuery, scope string) (index.Query, error) {
	subject := in.Subject
	if in.PersonalID != "" {
		if !personalIDPattern.MatchString(in.PersonalID) {
			return index.Query{}, catalog.Invalid("query", "/personalId", "a personal ID is 12 digits")
		}
		if subject != "" {
			return index.Query{}, catalog.Invalid("query", "/subject", "give a subject or a personal ID, not both")
		}
		subject = h.subject.Subject(in.PersonalID)
	}
	return index.Query{Scope: scope, Consumer: in.Consumer, Provider: in.Provider, Dataset: in.Dataset, Purpose: in.Purpose,
		Status: in.Status, Subject: subject, Phase: in.Phase, From: in.From, Until: in.Until, Limit: in.Limit, Cursor: in.Cursor}, nil
}

// queryFromURL reads an ExchangeQuery from URL parameters.
func queryFromURL(v url.Values) (ExchangeQuery, error) {
	if v.Has("personalId") {
		return ExchangeQuery{}, catalog.Invalid("query", "/personalId", "send a personal ID in the body of POST /v1/audit/exchanges/query, never in a URL")
	}
	status, err1 := intParam(v.Get("status"), "/status")
	limit, err2 := intParam(v.Get("limit"), "/limit")
	from, err3 := timeParam(v.Get("from"), "/from")
	until, err4 := timeParam(v.Get("until"), "/until")
	if err := errors.Join(err1, err2, err3, err4); err != nil {
		return ExchangeQuery{}, err
	}
	return ExchangeQuery{Consumer: v.Get("consumer"), Provider: v.Get("provider"), Dataset: v.Get("dataset"),
		Purpose: v.Get("purpose"), Status: status, Subject: v.Get("subject"), Phase: v.Get("phase"),
		From: from, Until: until, Limit: limit, Cursor: v.Get("cursor")}, nil
}

func (h *Handlers) exchanges(w http.ResponseWriter, r *http.Request, p auth.Principal) {
	in, err := queryFromURL(r.URL.Query())
	if err != nil {
		h.writeError(w, r, err)
		return
	}
	h.answerQuery(w, r, p, in)
}

func (h *Handlers) exchangesQuery(w http.ResponseWriter, r *http.Request, p auth.Principal) {
	var in ExchangeQuery
	if err := api.DecodeJSON(w, r, 64<<10, &in); err != nil {
		h.writeError(w, r, err)
		return
	}
	h.answerQuery(w, r, p, in)
}

func (h *Handlers) answerQuery(w http.ResponseWriter, r *http.Request, p auth.Principal, in ExchangeQuery) {
	scope, err := AuditScope(p)
	if err != nil {
		h.writeError(w, r, err)
		return
	}
	q, err := h.toIndex(in, scope)
	if err != nil {
		h.writeError(w, r, err)
		return
	}
	if err := h.recordSubjectSearch(r.Context(), p, q.Subject); err != nil {
		h.writeError(w, r, err)
		return
	}
	page, err := h.ix.Exchanges(r.Context(), q)
	if err != nil {
		h.writeError(w, r, err)
		return
	}
	api.WriteJSON(w, http.StatusOK, page)
}

// recordSubjectSearch writes an auditor's search for a subject to the admin
// trail, under the subject's HMAC, never the personal ID.
func (h *Handlers) recordSubjectSearch(ctx context.Context, p auth.Principal, subject string) error {
	if subject == "" || h.trail == nil {
		return nil
	}
	return h.trail.Update(ctx, func(tx catalog.Tx) error {
		return tx.AppendTrail(ctx, &catalog.TrailEntry{At: time.Now().UTC(), Actor: p.Actor(), Role: p.Role, Member: p.Member,
			Action: "audit.subject-search", Object: "subject:" + subject, Outcome: "ok"})
	})
}

// FlowMatrix is the answer of GET /v1/audit/flows.
type FlowMatrix struct {
	From  time.Time    `json:"from,omitzero"`
	Until time.Time    `json:"until,omitzero"`
	Items []index.Flow `json:"items"`
}

func (h *Handlers) flows(w http.ResponseWriter, r *http.Request, p auth.Principal) {
	scope, err := AuditScope(p)
	if err != nil {
		h.writeError(w, r, err)
		return
	}
	v := r.URL.Query()
	from, err1 := timeParam(v.Get("from"), "/from")
	until, err2 := timeParam(v.Get("until"), "/until")
	if err := errors.Join(err1, err2); err != nil {
		h.writeError(w, r, err)
		return
	}
	fs, err := h.ix.Flows(r.Context(), scope, from, until)
	if err != nil {
		h.writeError(w, r, err)
		return
	}
	api.WriteJSON(w, http.StatusOK, FlowMatrix{From: from, Until: until, Items: fs})
}

// export streams every exchange record the query matches as JSON lines
// (application/jsonl), newest first, reading the index a page at a time.
// An error after the first line cannot become a problem any more: the
// stream then ends early, and the last line is an {"error": ...} object.
func (h *Handlers) export(w http.ResponseWriter, r *http.Request, p auth.Principal) {
	scope, err := AuditScope(p)
	if err != nil {
		h.writeError(w, r, err)
		return
	}
	in, err := queryFromURL(r.URL.Query())
	if err != nil {
		h.writeError(w, r, err)
		return
	}
	q, err := h.toIndex(in, scope)
	if err != nil {
		h.writeError(w, r, err)
		return
	}
	q.Limit = 1000
	if err := h.recordSubjectSearch(r.Context(), p, q.Subject); err != nil {
		h.writeError(w, r, err)
		return
	}
	page, err := h.ix.Exchanges(r.Context(), q)
	if err != nil {
		h.writeError(w, r, err)
		return
	}
	w.Header().Set("Content-Type", "application/jsonl")
	w.WriteHeader(http.StatusOK)
	enc := json.NewEncoder(w)
	for {
		for _, x := range page.Items {
			if err := enc.Encode(x); err != nil {
				return // the client left
			}
		}
		if page.Next == "" {
			return
		}
		q.Cursor = page.Next
		if page, err = h.ix.Exchanges(r.Context(), q); err != nil {
			h.log.Error("audit export failed midway", "error", err.Error())
			_ = enc.Encode(map[string]string{"error": "the export stopped early; the operator can find why in the control plane's log"})
			return
		}
	}
}

// feed answers GET /v1/audit/feed: the records after a cursor in each
// gateway's seq order, for a follower (lienthong audit export --kafka-topic),
// scoped to what the caller may see.
func (h *Handlers) feed(w http.ResponseWriter, r *http.Request, p auth.Principal) {
	scope, err := AuditScope(p)
	if err != nil {
		h.writeError(w, r, err)
		return
	}
	limit, err := intParam(r.URL.Query().Get("limit"), "/limit")
	if err != nil {
		h.writeError(w, r, err)
		return
	}
	page, err := h.ix.Feed(r.Context(), scope, r.URL.Query().Get("cursor"), limit)
	if errors.Is(err, index.ErrInvalid) {
		h.writeError(w, r, catalog.Invalid("query", "/cursor", "%v", err))
		return
	}
	if err != nil {
		h.writeError(w, r, err)
		return
	}
	api.WriteJSON(w, http.StatusOK, page)
}
