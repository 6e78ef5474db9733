package gateway

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"time"

	"golang.org/x/time/rate"

	"github.com/lienthong/lienthong/adapters"
	"github.com/lienthong/lienthong/audit"
	"github.com/lienthong/lienthong/catalog"
	"github.com/lienthong/lienthong/gateway/projection"
	"github.com/lienthong/lienthong/internal/problem"
	"github.com/lienthong/lienthong/policies"
)

// exchange carries what one provider-side exchange learned, for its audit
// record, whatever the outcome.
type exchange struct {
	start    time.Time
	rec      audit.Record
	decision *policies.Decision
	// body is the request body as received (verify mode), bound into the
	// request hash.
	body []byte
	// intent is the write of the exchange's intent record, once begun.
	intent *audit.Receipt
}

// providerHandler serves peer gateways: /r/ queries and /v/ verifications.
func (g *Gateway) providerHandler() http.Handler {
	mux := http.NewServeMux()
	mux.HandleFunc("GET /r/{provider}/{dataset}/{path...}", g.serveQuery)
	mux.HandleFunc("POST /v/{provider}/{dataset}/{record}", g.serveVerify)
	mux.HandleFunc("/", func(w http.ResponseWriter, r *http.Request) {
		problem.Write(w, r, problem.New(http.StatusNotFound, "not-found", "use GET /r/{provider}/{dataset}/{path} or POST /v/{provider}/{dataset}/{record}"))
	})
	return mux
}

// admit checks everything that comes before the decision: fresh
// configuration, the peer gateway's identity, the consumer it speaks for,
// and that this gateway serves the dataset.
func (g *Gateway) admit(w http.ResponseWriter, r *http.Request, x *exchange, mode catalog.Mode) (*state, *dataset, bool) {
	x.rec.Side, x.rec.Mode = "provider", string(mode)
	x.rec.Provider, x.rec.Dataset = r.PathValue("provider"), r.PathValue("dataset")
	x.rec.Purpose, x.rec.Case = r.Header.Get(HeaderPurpose), r.Header.Get(HeaderCase)
	x.rec.ExchangeID = r.Header.Get(HeaderExchangeID)
	if x.rec.ExchangeID == "" || len(x.rec.ExchangeID) > 64 {
		x.rec.ExchangeID = catalog.NewID("exc")
	}
	// The consumer as claimed, so even a refusal is bound to the request as
	// received and reaches the consumer gateway as itself; it is checked below.
	x.rec.Consumer = r.Header.Get(HeaderConsumer)
	st, err := g.sync.fresh()
	if err != nil {
		g.refuse(w, r, x, http.StatusServiceUnavailable, "stale-configuration", err.Error())
		return nil, nil, false
	}
	x.rec.PolicyRevision = st.engine.Revision()
	peer, err := g.peerSystem(r, st)
	if err != nil {
		g.refuse(w, r, x, http.StatusForbidden, "unknown-peer", err.Error())
		return nil, nil, false
	}
	consumer := x.rec.Consumer
	if memberOfSystem(consumer) == "" || memberOfSystem(consumer) != st.gatewayMember[peer] {
		g.refuse(w, r, x, http.StatusForbidden, "consumer-not-of-peer",
			fmt.Sprintf("the gateway of member %s may only speak for its own systems; %q is not one", st.gatewayMember[peer], consumer))
		return nil, nil, false
	}
	if st.revokedSystem[consumer] {
		g.refuse(w, r, x, http.StatusForbidden, "system-revoked", "consumer system "+consumer+" has been revoked")
		return nil, nil, false
	}
	if !g.limiter(consumer).Allow() {
		w.Header().Set("Retry-After", "1")
		g.refuse(w, r, x, http.StatusTooManyRequests, "rate-limited", "consumer system "+consumer+" exceeds its request rate at this provider")
		return nil, nil, false
	}
	if x.rec.Purpose == "" {
		g.refuse(w, r, x, http.StatusBadRequest, "purpose-required", "the "+HeaderPurpose+" header (a public-service procedure code) is required")
		return nil, nil, false
	}
	ref := x.rec.Provider + "/" + x.rec.Dataset
	ds, ok := st.documents[ref]
	if !ok || memberOfSystem(x.rec.Provider) != g.cfg.Member {
		g.refuse(w, r, x, http.StatusNotFound, "unknown-dataset", "this gateway serves no dataset "+ref)
		return nil, nil, false
	}
	return st, ds, true
}

// limiter returns the token bucket of one consumer system.
// The map is bounded: past maxLimiters entries it starts afresh, so a peer
// inventing consumer ids cannot grow it without end (a reset only forgets
// how much of their burst some consumers had used).
func (g *Gateway) limiter(consumer string) *rate.Limiter {
	g.limitersMu.Lock()
	defer g.limitersMu.Unlock()
	if l, ok := g.limiters[consumer]; ok {
		return l
	}
	if g.limiters == nil || len(g.limiters) >= maxLimiters {
		g.limiters = map[string]*rate.Limiter{}
	}
	perSecond, burst := g.cfg.RateLimit.PerSecond, g.cfg.RateLimit.Burst
	if perSecond <= 0 {
		perSecond = 100
	}
	if burst <= 0 {
		burst = 2 * int(perSecond)
	}
	l := rate.NewLimiter(rate.Limit(perSecond), burst)
	g.limiters[consumer] = l
	return l
}

const maxLimiters = 10000

// verifyAttemptsPerRecord bounds verify requests per consumer and record in
// verifyWindow: verify mode must not become a way to read a field with few
// possible values (sex, ethnicity) by trying them all.
const (
	verifyAttemptsPerRecord = 5
	verifyWindow            = time.Hour
)

// allowVerify counts one verify attempt of consumer on record.
func (g *Gateway) allowVerify(consumer, record string) bool {
	g.limitersMu.Lock()
	defer g.limitersMu.Unlock()
	now := g.sync.now()
	if g.verifyAttempts == nil || len(g.verifyAttempts) >= maxLimiters*10 {
		g.verifyAttempts = map[string][]time.Time{}
	}
	key := consumer + "\x00" + record
	recent := g.verifyAttempts[key][:0]
	for _, t := range g.verifyAttempts[key] {
		if now.Sub(t) < verifyWindow {
			recent = append(recent, t)
		}
	}
	if len(recent) >= verifyAttemptsPerRecord {
		g.verifyAttempts[key] = recent
		return false
	}
	g.verifyAttempts[key] = append(recent, now)
	return true
}

// peerSystem maps the verified client certificate to a registered gateway
// system. The TLS layer has already checked the chain and revocation.
func (g *Gateway) peerSystem(r *http.Request, st *state) (string, error) {
	id, err := g.identify(r, st)
	if err != nil {
		return "", err
	}
	if _, ok := st.gatewayMember[id]; !ok {
		return "", fmt.Errorf("%s is not a registered gateway", id)
	}
	return id, nil
}

// decide asks the policy engine and refuses with the decision's reasons.
func (g *Gateway) decide(w http.ResponseWriter, r *http.Request, x *exchange, st *state, mode catalog.Mode, fields []string) (*policies.Decision, bool) {
	d, err := st.engine.Decide(r.Context(), policies.Input{
		Consumer: policies.Consumer{ID: x.rec.Consumer}, Provider: x.rec.Provider, Dataset: x.rec.Dataset,
		Fields: fields, Mode: mode, Purpose: x.rec.Purpose,
	})
	if err != nil {
		g.log.Error("policy evaluation failed", "exchange", x.rec.ExchangeID, "error", err.Error())
		g.refuse(w, r, x, http.StatusServiceUnavailable, "policy-error", "the policy could not be evaluated")
		return nil, false
	}
	x.decision = &d
	x.rec.GrantID = d.GrantID
	for _, reason := range d.Reasons {
		x.rec.Reasons = append(x.rec.Reasons, reason.Code)
	}
	if !d.Allow {
		msgs := make([]string, 0, len(d.Reasons))
		for _, reason := range d.Reasons {
			msgs = append(msgs, reason.Code+": "+reason.Message)
		}
		g.refuse(w, r, x, http.StatusForbidden, "access-denied", strings.Join(msgs, "; "))
		return nil, false
	}
	return &d, true
}

// serveQuery answers GET /r/{provider}/{dataset}/{path...}.
func (g *Gateway) serveQuery(w http.ResponseWriter, r *http.Request) {
	x := &exchange{start: time.Now()}
	st, ds, ok := g.admit(w, r, x, catalog.ModeQuery)
	if !ok {
		return
	}
	query := r.URL.Query()
	var asked []string
	if f := query.Get("fields"); f != "" {
		asked = strings.Split(f, ",")
	}
	query.Del("fields")
	d, ok := g.decide(w, r, x, st, catalog.ModeQuery, asked)
	if !ok {
		return
	}
	path := r.PathValue("path")
	if err := checkPath(path); err != nil {
		g.refuse(w, r, x, http.StatusBadRequest, "invalid-path", err.Error())
		return
	}
	x.rec.Subject = g.subject(path)
	if !g.begin(w, r, x, d.Fields) {
		return
	}
	out, _, ok := g.fetch(w, r, x, ds, d, adapters.Request{Path: path, Query: query}, g.masker)
	if !ok {
		return
	}
	x.rec.Fields = d.Fields
	g.answer(w, r, x, http.StatusOK, "application/json", out)
}

// fetch asks the dataset's backend, then validates each record, applies the
// row scope and projects to the decision's fields, with its masks when
// masker is set (verify passes nil: it compares unmasked values here and
// never sends them). On any failure it answers the exchange itself and
// returns ok false; an answer left empty by the row scope is "not found",
// worded as for a missing record.
func (g *Gateway) fetch(w http.ResponseWriter, r *http.Request, x *exchange, ds *dataset, d *policies.Decision, req adapters.Request, masker *projection.Masker) (out []byte, records int, ok bool) {
	adapter, found := g.adapters[ds.info.Provider+"/"+ds.info.Code]
	if !found {
		g.refuse(w, r, x, http.StatusServiceUnavailable, "no-backend", "no backend is configured for this dataset")
		return nil, 0, false
	}
	var masks map[string]catalog.Mask
	if masker != nil {
		masks = d.Masks
	}
	plan, err := ds.schema.CachedPlan(x.rec.PolicyRevision, d.GrantID, d.Fields, masks, masker)
	if err != nil {
		g.log.Error("projection plan", "exchange", x.rec.ExchangeID, "error", err.Error())
		g.refuse(w, r, x, http.StatusInternalServerError, "internal", "the decision could not be applied")
		return nil, 0, false
	}
	ctx, cancel := context.WithTimeout(r.Context(), orDefault(g.cfg.Timeout, 15*time.Second))
	defer cancel()
	req.Dataset, req.Fields, req.RowScope = ds.catalogDataset(), d.Fields, d.RowScope
	resp, err := adapter.Fetch(ctx, req)
	if err != nil {
		g.backendError(w, r, x, err)
		return nil, 0, false
	}
	defer resp.Body.Close()
	opts := projection.Options{MaxBytes: orDefaultBytes(g.cfg.MaxResponseBytes, 16<<20), Validate: ds.validatorFor(resp).Validate}
	if d.RowScope != nil && !resp.Scoped {
		opts.Keep = projection.RowScopeFilter(d.RowScope)
	}
	var buf bytes.Buffer
	stats, err := plan.Project(&buf, resp.Body, opts)
	if err != nil {
		n := g.invalidResponses.Add(1)
		g.log.Warn("backend answer refused", "exchange", x.rec.ExchangeID, "dataset", ds.info.Provider+"/"+ds.info.Code, "error", err.Error(), "refused_so_far", n)
		g.refuse(w, r, x, http.StatusBadGateway, "bad-backend-answer", "the provider's backend answered with data that does not match the dataset; nothing was passed on")
		return nil, 0, false
	}
	if stats.Records == 0 && stats.Filtered > 0 && buf.Len() == 0 {
		g.refuse(w, r, x, http.StatusNotFound, "not-found", notFoundDetail)
		return nil, 0, false
	}
	return buf.Bytes(), stats.Records, true
}

// verifyRequest is the body of POST /v/...: claimed values by field path.
type verifyRequest struct {
	Attributes map[string]json.RawMessage `json:"attributes"`
}

// serveVerify answers match / no_match per claimed attribute, never a value.
func (g *Gateway) serveVerify(w http.ResponseWriter, r *http.Request) {
	x := &exchange{start: time.Now()}
	st, ds, ok := g.admit(w, r, x, catalog.ModeVerify)
	if !ok {
		return
	}
	var in verifyRequest
	body, err := io.ReadAll(http.MaxBytesReader(w, r.Body, orDefaultBytes(g.cfg.MaxRequestBytes, 1<<20)))
	x.body = body
	if err != nil {
		g.refuse(w, r, x, http.StatusRequestEntityTooLarge, "too-large", "the request body exceeds the limit")
		return
	}
	dec := json.NewDecoder(bytes.NewReader(body))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&in); err != nil || len(in.Attributes) == 0 {
		g.refuse(w, r, x, http.StatusBadRequest, "invalid-input", `the body must be {"attributes": {"<field path>": <claimed value>, …}}`)
		return
	}
	fields := make([]string, 0, len(in.Attributes))
	for f := range in.Attributes {
		fields = append(fields, f)
	}
	d, ok := g.decide(w, r, x, st, catalog.ModeVerify, fields)
	if !ok {
		return
	}
	allowed := map[string]bool{}
	for _, f := range d.Fields {
		allowed[f] = true
	}
	var missing []string
	for _, f := range fields {
		if !allowed[f] {
			missing = append(missing, f)
		}
	}
	if len(missing) > 0 {
		g.refuse(w, r, x, http.StatusForbidden, "access-denied", "no grant in verify mode covers "+strings.Join(missing, ", "))
		return
	}
	record := r.PathValue("record")
	if err := checkPath(record); err != nil || strings.Contains(record, "/") {
		g.refuse(w, r, x, http.StatusBadRequest, "invalid-path", "the record id is not allowed")
		return
	}
	if !g.allowVerify(x.rec.Consumer, record) {
		w.Header().Set("Retry-After", "3600")
		g.refuse(w, r, x, http.StatusTooManyRequests, "verify-limit", fmt.Sprintf("at most %d verifications of one record per hour", verifyAttemptsPerRecord))
		return
	}
	x.rec.Subject = g.subject(record)
	if !g.begin(w, r, x, fields) {
		return
	}
	path := strings.ReplaceAll(g.recordPath(ds), "{id}", url.PathEscape(record))
	out, records, ok := g.fetch(w, r, x, ds, d, adapters.Request{Path: path}, nil)
	if !ok {
		return
	}
	if records != 1 {
		g.refuse(w, r, x, http.StatusBadGateway, "bad-backend-answer", "the provider's backend answered with other than one record")
		return
	}
	var stored any
	dec = json.NewDecoder(bytes.NewReader(out))
	dec.UseNumber()
	if err := dec.Decode(&stored); err != nil {
		g.refuse(w, r, x, http.StatusBadGateway, "bad-backend-answer", "the provider's backend answer could not be read")
		return
	}
	results := map[string]string{}
	for f, claimed := range in.Attributes {
		results[f] = "no_match"
		if v, ok := projection.Lookup(stored, f); ok && sameJSON(claimed, v) {
			results[f] = "match"
		}
	}
	x.rec.Fields = fields
	answerBody, _ := json.Marshal(map[string]any{"exchangeId": x.rec.ExchangeID, "results": results})
	g.answer(w, r, x, http.StatusOK, "application/json", answerBody)
}

// begin submits the exchange's intent record before the gateway acts on it
// (calls the backend, or forwards to the provider's gateway), so the record's
// write overlaps that work; fields are the fields the decision allowed, if
// any. answer and refuse wait for it before releasing anything. begin
// refuses the exchange itself, and returns false, when the log has already
// failed: then nothing is fetched or forwarded unrecorded.
func (g *Gateway) begin(w http.ResponseWriter, r *http.Request, x *exchange, fields []string) bool {
	x.rec.Time = time.Now().UTC()
	x.rec.RequestHash = RequestHash(r.Method, r.URL.Path, r.URL.Query(), x.rec.Consumer, x.rec.Purpose, x.rec.Case, x.rec.ExchangeID, x.body)
	intent := x.rec
	intent.Phase, intent.Fields = audit.Intent, fields
	intent.LatencyMS = float64(time.Since(x.start).Microseconds()) / 1000
	x.intent = g.sink.Submit(&intent, audit.CommitNow)
	if x.intent.Failed() != nil {
		g.refuse(w, r, x, http.StatusServiceUnavailable, "audit-unavailable", "the exchange could not be recorded, so it was not started")
		return false
	}
	return true
}

// answer records the outcome, then sends the response: nothing leaves unless
// the exchange is durably in the log (see recorded).
func (g *Gateway) answer(w http.ResponseWriter, r *http.Request, x *exchange, status int, contentType string, body []byte) {
	x.rec.Status, x.rec.Bytes = status, int64(len(body))
	if !g.recorded(r, x) {
		// Bound to the request like any answer, so the consumer's gateway
		// passes the reason on rather than suspecting a forgery.
		p := problem.New(http.StatusServiceUnavailable, "audit-unavailable", "the exchange could not be recorded, so it was not completed")
		p.Instance = r.URL.Path
		status, contentType = http.StatusServiceUnavailable, problem.ContentType
		body, _ = json.Marshal(p)
	}
	h := w.Header()
	h.Set("Content-Type", contentType)
	h.Set(HeaderExchangeID, x.rec.ExchangeID)
	h.Set(HeaderHash, x.rec.RequestHash)
	h.Set("Content-Length", strconv.Itoa(len(body)))
	w.WriteHeader(status)
	_, _ = w.Write(body)
}

// refuse answers with a problem, recorded like any answer. Details name rules
// and fields, never values.
func (g *Gateway) refuse(w http.ResponseWriter, r *http.Request, x *exchange, status int, kind, detail string) {
	p := problem.New(status, kind, detail)
	p.Instance = r.URL.Path
	body, _ := json.Marshal(p)
	x.rec.Status = status
	if !g.recorded(r, x) && status < 500 {
		status = http.StatusServiceUnavailable
		p = problem.New(status, "audit-unavailable", "the exchange could not be recorded")
		body, _ = json.Marshal(p)
	}
	h := w.Header()
	h.Set("Content-Type", problem.ContentType)
	if x.rec.ExchangeID != "" {
		h.Set(HeaderExchangeID, x.rec.ExchangeID)
		h.Set(HeaderHash, x.rec.RequestHash)
	}
	w.WriteHeader(status)
	_, _ = w.Write(body)
}

// recorded submits the exchange's outcome record and reports whether the
// answer may be released. With an intent record, the intent must be durable
// and the outcome accepted (it is made durable by the sink's next commit, so
// the intent's write overlapped the work and the outcome's costs the caller
// no wait); without one, the outcome itself must be durable.
func (g *Gateway) recorded(r *http.Request, x *exchange) bool {
	// The caller going away does not stop the record; a log that hangs
	// fails the exchange after the gateway's timeout.
	ctx, cancel := context.WithTimeout(context.WithoutCancel(r.Context()), orDefault(g.cfg.Timeout, 15*time.Second))
	defer cancel()
	if x.rec.Time.IsZero() {
		x.rec.Time = time.Now().UTC()
	}
	if x.rec.RequestHash == "" {
		x.rec.RequestHash = RequestHash(r.Method, r.URL.Path, r.URL.Query(), x.rec.Consumer, x.rec.Purpose, x.rec.Case, x.rec.ExchangeID, x.body)
	}
	x.rec.Phase = audit.Outcome
	x.rec.LatencyMS = float64(time.Since(x.start).Microseconds()) / 1000
	var err error
	if x.intent != nil {
		if err = x.intent.Wait(ctx); err == nil {
			err = g.sink.Submit(&x.rec, audit.CommitSoon).Failed()
		}
	} else {
		err = audit.Write(ctx, g.sink, &x.rec)
	}
	if err != nil {
		g.log.Error("audit record refused", "exchange", x.rec.ExchangeID, "error", err.Error())
		return false
	}
	return true
}

func (g *Gateway) backendError(w http.ResponseWriter, r *http.Request, x *exchange, err error) {
	switch {
	case errors.Is(err, adapters.ErrNotFound):
		g.refuse(w, r, x, http.StatusNotFound, "not-found", notFoundDetail)
	case errors.Is(err, adapters.ErrTimeout), errors.Is(err, context.DeadlineExceeded):
		g.refuse(w, r, x, http.StatusGatewayTimeout, "backend-timeout", "the provider's backend did not answer in time")
	default:
		g.log.Warn("backend failed", "exchange", x.rec.ExchangeID, "error", err.Error())
		g.refuse(w, r, x, http.StatusBadGateway, "backend-error", "the provider's backend failed")
	}
}

// notFoundDetail is the one answer for a record that does not exist and for
// one outside the grant's row scope, so the answer never tells them apart.
const notFoundDetail = "no such record"

// checkPath refuses backend paths that could leave the dataset, whatever the
// adapter: empty, "." or ".." segments, and characters that would change
// the meaning of a URL or a log line. Adapters check again.
func checkPath(path string) error {
	for _, seg := range strings.Split(path, "/") {
		if seg == "" || seg == "." || seg == ".." {
			return errors.New("the path has an empty, . or .. segment")
		}
		for _, c := range seg {
			if c < 0x20 || c == 0x7f || strings.ContainsRune(`\?#%`, c) {
				return errors.New("the path has a character that is not allowed")
			}
		}
	}
	return nil
}

// subject is the audit form of a record id: a keyed hash, so the log can be
// searched for one citizen without holding anyone's id in clear.
func (g *Gateway) subject(id string) string {
	if id == "" {
		return ""
	}
	return g.masker.Hash([]byte(strconv.Quote(id)))
}

func (g *Gateway) recordPath(ds *dataset) string {
	if b, ok := g.cfg.Backends[ds.info.Provider+"/"+ds.info.Code]; ok && b.RecordPath != "" {
		return b.RecordPath
	}
	return "{id}"
}

// validatorFor picks the full or the partial schema for an answer.
func (d *dataset) validatorFor(resp *adapters.Response) *projection.Validator {
	if resp.Partial {
		return d.partial
	}
	return d.validator
}

func (d *dataset) catalogDataset() *catalog.Dataset {
	return &catalog.Dataset{System: d.info.Provider, Code: d.info.Code, Version: d.info.Version, Digest: d.info.Digest,
		RecordSchema: d.info.RecordSchema, Document: d.document}
}

// sameJSON compares a claimed value with a stored one by their canonical JSON.
func sameJSON(claimed json.RawMessage, stored any) bool {
	var c any
	dec := json.NewDecoder(bytes.NewReader(claimed))
	dec.UseNumber()
	if dec.Decode(&c) != nil {
		return false
	}
	a, err1 := json.Marshal(c)
	b, err2 := json.Marshal(stored)
	return err1 == nil && err2 == nil && bytes.Equal(a, b)
}
