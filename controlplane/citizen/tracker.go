package citizen

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/lienthong/lienthong/audit/index"
	"github.com/lienthong/lienthong/catalog"
	"github.com/lienthong/lienthong/controlplane/api"
	"github.com/lienthong/lienthong/controlplane/auth"
	"github.com/lienthong/lienthong/internal/problem"
)

// Outcome says what an exchange did with the citizen's record.
type Outcome string

// The outcomes a tracker entry can have.
const (
	// OutcomeAllowed: the fields listed were disclosed.
	OutcomeAllowed Outcome = "allowed"
	// OutcomePartial: the fields listed were disclosed, and some fields
	// the consumer asked for were withheld.
	OutcomePartial Outcome = "partial"
	// OutcomeDenied: the exchange was refused (a 4xx answer); nothing was
	// disclosed.
	OutcomeDenied Outcome = "denied"
	// OutcomeFailed: the exchange failed (a 5xx answer, e.g. the provider
	// was unreachable); nothing was disclosed.
	OutcomeFailed Outcome = "failed"
)

// reasonFieldsWithheld is the reason code gateways record when they answer
// with some asked-for fields withheld (gateway/exchange's
// ReasonFieldsWithheld; the control plane does not import the gateway).
const reasonFieldsWithheld = "fields_withheld"

// outcomeOf classifies an answered status and its reason codes.
func outcomeOf(status int, reasons []string) Outcome {
	switch {
	case status >= 200 && status < 300 && slices.Contains(reasons, reasonFieldsWithheld):
		return OutcomePartial
	case status >= 200 && status < 300:
		return OutcomeAllowed
	case status >= 400 && status < 500:
		return OutcomeDenied
	default:
		return OutcomeFailed
	}
}

// Entry is one line of a citizen's tracker: an agency's system asked for
// their record at this time, for this purpose, under this law, and was
// given these fields, or refused.
type Entry struct {
	Time time.Time `json:"time"`
	// Outcome and Status say whether anything was disclosed: Fields only
	// when the outcome is allowed or partial.
	Outcome    Outcome            `json:"outcome"`
	Status     int                `json:"status"`
	Consumer   string             `json:"consumer"`
	Provider   string             `json:"provider"`
	Dataset    string             `json:"dataset"`
	Fields     []string           `json:"fields"`
	Purpose    catalog.Purpose    `json:"purpose"`
	LegalBasis catalog.LegalBasis `json:"legalBasis"`
	ExchangeID string             `json:"exchangeId"`
	GrantID    string             `json:"grantId,omitempty"`
	// Gateway and Seq locate the gateway's record of the exchange (the
	// provider's when the index holds it), for an inclusion proof under a
	// signed checkpoint.
	Gateway string `json:"gateway"`
	Seq     uint64 `json:"seq"`
}

// Tracker answers a citizen's "who read my data".
type Tracker struct {
	verifier *Verifier
	key      index.SubjectKey
	ix       index.Store
	store    catalog.Store
	now      func() time.Time
	log      *slog.Logger
}

// NewTracker returns a tracker. store gives the grants (purpose, legal
// basis, disclosure date) and takes the admin-trail entry of each lookup.
func NewTracker(v *Verifier, key index.SubjectKey, ix index.Store, store catalog.Store, now func() time.Time, log *slog.Logger) *Tracker {
	if now == nil {
		now = time.Now
	}
	return &Tracker{verifier: v, key: key, ix: ix, store: store, now: now, log: log}
}

// maxRounds bounds how many index pages one lookup reads while it skips
// deferred disclosures.
const maxRounds = 50

// Lookup lists the exchanges that asked for personalID's record, newest
// first, limit entries a page: allowed, partial, denied and failed alike,
// one entry per exchange (the index prefers the provider gateway's record).
// An exchange under a grant whose legal basis defers disclosure is left out
// until its date; so is one that names no grant (a refusal, or a consumer
// gateway's record) between a consumer and a provider that hold a grant
// deferred at now, lest a refused attempt betray the investigation. Pages
// are filled past hidden entries and
// Next is set only when a visible entry follows, so neither a short page nor
// a dangling cursor betrays that a deferred exchange exists. The lookup
// itself is written to the admin trail under the subject's HMAC, never the
// personal ID.
func (t *Tracker) Lookup(ctx context.Context, personalID string, limit int, cursor string) (index.Page[Entry], error) {
	subject := t.key.Subject(personalID)
	want := index.PageLimit(limit)
	now := t.now()
	grants := map[string]*catalog.Grant{}
	deferred := map[[2]string]bool{}
	var (
		visible []Entry
		after   []string // the cursor after each visible entry
	)
	for round := 0; round < maxRounds && len(visible) <= want; round++ {
		page, err := t.ix.Disclosures(ctx, subject, want+1, cursor)
		if err != nil {
			return index.Page[Entry]{}, err
		}
		for _, d := range page.Items {
			e, show, err := t.entry(ctx, d, now, grants, deferred)
			if err != nil {
				return index.Page[Entry]{}, err
			}
			if show {
				visible = append(visible, e)
				after = append(after, index.DisclosureCursor(d))
			}
		}
		if page.Next == "" {
			break
		}
		cursor = page.Next
	}
	out := index.Page[Entry]{Items: visible}
	if len(visible) > want {
		out.Items, out.Next = visible[:want], after[want-1]
	}
	if out.Items == nil {
		out.Items = []Entry{}
	}
	if err := t.recordLookup(ctx, subject, len(out.Items)); err != nil {
		return index.Page[Entry]{}, err
	}
	return out, nil
}

// entry describes one exchange with its grant's purpose and legal basis,
// and says whether it may be shown at now.
func (t *Tracker) entry(ctx context.Context, d index.Disclosure, now time.Time, grants map[string]*catalog.Grant, deferred map[[2]string]bool) (Entry, bool, error) {
	e := Entry{Time: d.Time, Outcome: outcomeOf(d.Status, d.Reasons), Status: d.Status, Consumer: d.Consumer, Provider: d.Provider,
		Dataset: d.Dataset, Fields: d.Fields, Purpose: catalog.Purpose{Code: d.Purpose}, ExchangeID: d.ExchangeID,
		GrantID: d.GrantID, Gateway: d.Gateway, Seq: d.Seq}
	if e.Outcome != OutcomeAllowed && e.Outcome != OutcomePartial {
		e.Fields = nil // nothing was disclosed, whatever the record lists
	}
	if e.Fields == nil {
		e.Fields = []string{}
	}
	if d.GrantID == "" {
		hide, err := t.deferredBetween(ctx, d.Consumer, d.Provider, now, deferred)
		return e, !hide && err == nil, err
	}
	g, ok := grants[d.GrantID]
	if !ok {
		var err error
		g, err = t.store.GetGrant(ctx, d.GrantID)
		if errors.Is(err, catalog.ErrNotFound) {
			g, err = nil, nil
		}
		if err != nil {
			return e, false, fmt.Errorf("citizen tracker: grant %s: %w", d.GrantID, err)
		}
		grants[d.GrantID] = g
	}
	if g == nil {
		return e, true, nil
	}
	if !g.LegalBasis.DisclosedAt(now) {
		return e, false, nil
	}
	e.LegalBasis = g.LegalBasis
	for _, p := range g.Purposes {
		if p.Code == d.Purpose {
			e.Purpose = p
		}
	}
	return e, true, nil
}

// deferredBetween reports whether the consumer holds a grant of the
// provider's, in any state, whose disclosure date is still to come: an
// exchange between them that names no grant is then hidden as well.
func (t *Tracker) deferredBetween(ctx context.Context, consumer, provider string, now time.Time, cache map[[2]string]bool) (bool, error) {
	k := [2]string{consumer, provider}
	if v, ok := cache[k]; ok {
		return v, nil
	}
	gs, err := t.store.ListGrants(ctx, catalog.GrantFilter{Consumer: consumer, Provider: provider})
	if err != nil {
		return false, fmt.Errorf("citizen tracker: grants of %s from %s: %w", consumer, provider, err)
	}
	hide := false
	for _, g := range gs {
		if !g.LegalBasis.DisclosedAt(now) {
			hide = true
		}
	}
	cache[k] = hide
	return hide, nil
}

// recordLookup writes the lookup to the admin trail, so a citizen's
// lookups are themselves on record (and who looked can be asked about).
func (t *Tracker) recordLookup(ctx context.Context, subject string, shown int) error {
	after, err := json.Marshal(map[string]int{"shown": shown})
	if err != nil {
		return err
	}
	return t.store.Update(ctx, func(tx catalog.Tx) error {
		return tx.AppendTrail(ctx, &catalog.TrailEntry{At: t.now().UTC(), Actor: "citizen (ID token of " + t.verifier.cfg.Issuer + ")",
			Action: "citizen.lookup", Object: "subject:" + subject, After: after, Outcome: "ok"})
	})
}

// Route is the tracker's endpoint, mounted as a public route of the
// management API: the citizen authenticates with their ID token, not with
// an API token.
func (t *Tracker) Route() api.Route {
	return api.Route{Pattern: "GET /v1/citizen/disclosures", Public: true, Handler: t.serve}
}

func (t *Tracker) serve(w http.ResponseWriter, r *http.Request, _ auth.Principal) {
	scheme, raw, ok := strings.Cut(r.Header.Get("Authorization"), " ")
	if !ok || !strings.EqualFold(scheme, "Bearer") || strings.TrimSpace(raw) == "" {
		t.unauthenticated(w, r, errors.New("no bearer ID token"))
		return
	}
	id, err := t.verifier.PersonalID(r.Context(), strings.TrimSpace(raw))
	if errors.Is(err, ErrUnauthenticated) {
		t.unauthenticated(w, r, err)
		return
	}
	if err != nil {
		t.log.Error("citizen tracker: identity provider", "error", err.Error())
		problem.Write(w, r, problem.New(http.StatusServiceUnavailable, "identity-provider-unavailable", "the identity provider cannot be reached; try again later"))
		return
	}
	limit := 0
	if s := r.URL.Query().Get("limit"); s != "" {
		if limit, err = strconv.Atoi(s); err != nil || limit < 1 {
			api.WriteErrorWith(t.log, w, r, catalog.Invalid("query", "/limit", "%q is not a positive integer", s))
			return
		}
	}
	page, err := t.Lookup(r.Context(), id, limit, r.URL.Query().Get("cursor"))
	if errors.Is(err, index.ErrInvalid) {
		api.WriteErrorWith(t.log, w, r, catalog.Invalid("query", "/cursor", "%v", err))
		return
	}
	if err != nil {
		api.WriteErrorWith(t.log, w, r, err)
		return
	}
	api.WriteJSON(w, http.StatusOK, page)
}

func (t *Tracker) unauthenticated(w http.ResponseWriter, r *http.Request, why error) {
	// The reason goes to the log only, and never the token.
	t.log.Info("citizen tracker: token refused", "remote", r.RemoteAddr, "reason", why.Error())
	w.Header().Set("WWW-Authenticate", `Bearer realm="lienthong-citizen", error="invalid_token"`)
	problem.Write(w, r, problem.New(http.StatusUnauthorized, "unauthenticated",
		"a valid ID token from the platform's identity provider is required (Authorization: Bearer <ID token>)"))
}
