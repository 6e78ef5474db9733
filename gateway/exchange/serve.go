package exchange

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/url"
	"slices"
	"strings"
	"time"

	"github.com/lienthong/lienthong/adapters"
	"github.com/lienthong/lienthong/catalog"
	"github.com/lienthong/lienthong/gateway/projection"
	"github.com/lienthong/lienthong/internal/jsonstrict"
)

// Serve runs the whole provider-side pipeline for a query or a verification:
// Admit, Decide, the intent record, Fetch (validate, project, mask) and the
// outcome record.
func (c *Core) Serve(ctx context.Context, req Request) (*Answer, *Refusal) {
	x, ref := c.Admit(ctx, req)
	if ref != nil {
		return nil, ref
	}
	switch req.Mode {
	case catalog.ModeQuery:
		return c.serveQuery(ctx, x)
	case catalog.ModeVerify:
		return c.serveVerify(ctx, x, true)
	}
	return nil, c.Refuse(ctx, x, statusBadRequest, KindInvalidInput, "only query and verify exchanges are served here")
}

func (c *Core) serveQuery(ctx context.Context, x *Exchange) (*Answer, *Refusal) {
	if ref := c.decideQuery(ctx, x); ref != nil {
		return nil, ref
	}
	req := &x.req
	query := url.Values{}
	for k, v := range req.Query {
		if k != "fields" {
			query[k] = v
		}
	}
	be := c.backend(x)
	if be.Adapter == nil {
		return nil, c.Refuse(ctx, x, statusServiceUnavailable, KindNoBackend, "no backend is configured for this dataset")
	}
	fctx, cancel := context.WithTimeout(ctx, c.cfg.Timeout)
	defer cancel()
	d := x.decision
	began := time.Now()
	resp, err := be.Adapter.Fetch(fctx, adapters.Request{Dataset: x.dataset.Catalog, Path: req.Record, Query: query, Fields: d.Fields, RowScope: d.RowScope})
	x.stages.backend = time.Since(began)
	if err != nil {
		return nil, c.BackendFailed(ctx, x, err)
	}
	defer resp.Body.Close()
	return c.FinishQuery(ctx, x, Body{Reader: resp.Body, Partial: resp.Partial, Scoped: resp.Scoped})
}

// BeginQuery runs a query's stages up to the backend: Admit, Decide on the
// fields asked, the record path's check and the intent record. A door that
// does not fetch itself (ext_authz, with Envoy fetching) hands the exchange
// to FinishQuery once the backend's answer is there, or to Abandon when it
// never comes. A refusal is already recorded.
func (c *Core) BeginQuery(ctx context.Context, req Request) (*Exchange, *Refusal) {
	if req.Mode != catalog.ModeQuery {
		return nil, c.Reject(ctx, req, statusBadRequest, KindInvalidInput, "only query exchanges are served here")
	}
	x, ref := c.Admit(ctx, req)
	if ref != nil {
		return nil, ref
	}
	if ref := c.decideQuery(ctx, x); ref != nil {
		return nil, ref
	}
	return x, nil
}

// decideQuery decides an admitted query, checks its record path, names its
// subject and writes the intent record.
func (c *Core) decideQuery(ctx context.Context, x *Exchange) *Refusal {
	req := &x.req
	d, ref := c.Decide(ctx, x, req.Fields)
	if ref != nil {
		return ref
	}
	if err := CheckPath(req.Record); err != nil {
		return c.Refuse(ctx, x, statusBadRequest, KindInvalidPath, err.Error())
	}
	x.rec.Subject = c.subject(recordID(c.backend(x).RecordPath, req.Record))
	return c.WriteIntent(ctx, x, d.Fields)
}

// FinishQuery filters the backend's answer to a begun query (validate, row
// scope, project, mask), names the fields withheld and records the outcome.
// It is the one end of every query, whichever door fetched the body.
func (c *Core) FinishQuery(ctx context.Context, x *Exchange, body Body) (*Answer, *Refusal) {
	if x.stages.backend == 0 && !x.stages.intentAt.IsZero() {
		// A door that fetched itself (Envoy) hands the body over now.
		x.stages.backend = time.Since(x.stages.intentAt)
	}
	var buf bytes.Buffer
	if _, ref := c.Filter(ctx, x, &buf, body, true); ref != nil {
		return nil, ref
	}
	d := x.decision
	x.rec.Fields = d.Fields
	held := withheld(x.req.Fields, d.Fields)
	if len(held) > 0 {
		x.AddReason(ReasonFieldsWithheld)
	}
	a, ref := c.Answer(ctx, x, statusOK, "application/json", buf.Bytes())
	if a != nil {
		a.Withheld = held
	}
	return a, ref
}

// Abandon records the outcome of a begun exchange whose answer never reached
// the core (the backend did not answer in time, or the door's stream ended
// first): every intent record gets its outcome. It returns the refusal a
// door still able to answer sends.
func (c *Core) Abandon(ctx context.Context, x *Exchange, timedOut bool) *Refusal {
	if x.rec.Side == "consumer" {
		// A relayed exchange waits for the provider's gateway, not a backend.
		if timedOut {
			return c.Refuse(ctx, x, statusGatewayTimeout, KindProviderTimeout, "the provider's gateway could not be reached")
		}
		return c.Refuse(ctx, x, statusBadGateway, KindProviderUnreachable, "the provider's gateway could not be reached")
	}
	if timedOut {
		return c.Refuse(ctx, x, statusGatewayTimeout, KindBackendTimeout, "the provider's backend did not answer in time")
	}
	return c.Refuse(ctx, x, statusBadGateway, KindBackendError, "the provider's backend answer did not reach the gateway")
}

// verifyRequest is the body of a verification: claimed values by field path.
type verifyRequest struct {
	Attributes map[string]json.RawMessage `json:"attributes"`
}

// serveVerify answers match / no_match per claimed attribute, never a value.
// A field the grant masks cannot be verified: confirming a claim would
// reveal what the mask hides (a nullified value, the hidden part of a
// partial one, the preimage of a hash). Without finish it stops after the
// intent record (BeginVerify), answering nothing; FinishVerify goes on.
func (c *Core) serveVerify(ctx context.Context, x *Exchange, finish bool) (*Answer, *Refusal) {
	var in verifyRequest
	dec := json.NewDecoder(bytes.NewReader(x.req.Body))
	dec.DisallowUnknownFields()
	_, _, dup := jsonstrict.FindDuplicate(x.req.Body) // a repeated claim: which one would be checked?
	if err := dec.Decode(&in); err != nil || dup || len(in.Attributes) == 0 {
		return nil, c.Refuse(ctx, x, statusBadRequest, KindInvalidInput, `the body must be {"attributes": {"<field path>": <claimed value>, …}}`)
	}
	fields := make([]string, 0, len(in.Attributes))
	for f := range in.Attributes {
		fields = append(fields, f)
	}
	slices.Sort(fields)
	d, ref := c.Decide(ctx, x, fields)
	if ref != nil {
		return nil, ref
	}
	// Which claims may be checked is the plan's to say (Plan.CanVerify, the
	// one verify rule), compiled from the decision with its masks.
	plan, _, err := c.projector(x, true)
	if err != nil {
		c.cfg.Log.Error("projection plan refused the decision", "exchange", x.rec.ExchangeID, "fault", "plan", "fields", len(d.Fields), "masks", len(d.Masks))
		return nil, c.Refuse(ctx, x, statusInternalServerError, KindInternal, "the decision could not be applied")
	}
	var missing, masked []string
	for _, f := range fields {
		var nv *projection.NotVerifiableError
		switch err := plan.CanVerify(f); {
		case err == nil:
		case errors.As(err, &nv) && nv.Reason == projection.Masked:
			masked = append(masked, fmt.Sprintf("%s (%s)", f, nv.Mask))
		default:
			missing = append(missing, f)
		}
	}
	if len(missing) > 0 {
		return nil, c.Refuse(ctx, x, statusForbidden, KindAccessDenied, "no grant in verify mode covers "+strings.Join(missing, ", "))
	}
	if len(masked) > 0 {
		return nil, c.Refuse(ctx, x, statusForbidden, KindMaskedField, "the grant masks "+strings.Join(masked, ", ")+
			"; a masked field cannot be verified unless a verify grant names it unmasked")
	}
	record := x.req.Record
	if err := CheckPath(record); err != nil || strings.Contains(record, "/") {
		return nil, c.Refuse(ctx, x, statusBadRequest, KindInvalidPath, "the record id is not allowed")
	}
	if !c.allowVerify(x.rec.Consumer, record) {
		ref := refusal(statusTooManyRequests, KindVerifyLimit, fmt.Sprintf("at most %d verifications of one record per hour", verifyAttemptsPerRecord))
		ref.RetryAfter = verifyWindow
		return nil, c.refuse(ctx, x, ref)
	}
	x.rec.Subject = c.subject(record)
	if ref := c.WriteIntent(ctx, x, fields); ref != nil {
		return nil, ref
	}
	if !finish {
		return nil, nil
	}
	return c.FinishVerify(ctx, x)
}

// FinishVerify fetches the record of a begun verification through the
// dataset's adapter, compares each claim with it and records the outcome:
// the one end of every verification, whichever door began it.
func (c *Core) FinishVerify(ctx context.Context, x *Exchange) (*Answer, *Refusal) {
	in, fields, record := verifyClaims(x)
	tmpl := c.backend(x).RecordPath
	if tmpl == "" {
		tmpl = "{id}"
	}
	out, stats, ref := c.Fetch(ctx, x, strings.ReplaceAll(tmpl, "{id}", url.PathEscape(record)), nil, false)
	if ref != nil {
		return nil, ref
	}
	if stats.Records != 1 {
		return nil, c.Refuse(ctx, x, statusBadGateway, KindBadBackendAnswer, "the provider's backend answered with other than one record")
	}
	var stored any
	dec := json.NewDecoder(bytes.NewReader(out))
	dec.UseNumber()
	if err := dec.Decode(&stored); err != nil {
		return nil, c.Refuse(ctx, x, statusBadGateway, KindBadBackendAnswer, "the provider's backend answer could not be read")
	}
	results := map[string]string{}
	for f, claimed := range in.Attributes {
		results[f] = "no_match"
		if v, ok := projection.Lookup(stored, f); ok && sameJSON(claimed, v) {
			results[f] = "match"
		}
	}
	x.rec.Fields = fields
	body, _ := json.Marshal(map[string]any{"exchangeId": x.rec.ExchangeID, "results": results})
	return c.Answer(ctx, x, statusOK, "application/json", body)
}

// recordID returns the id in path when path is one record's path under the
// template (e.g. "citizens/{id}"), else "".
func recordID(tmpl, path string) string {
	if tmpl == "" {
		tmpl = "{id}"
	}
	before, after, ok := strings.Cut(tmpl, "{id}")
	if !ok || !strings.HasPrefix(path, before) || !strings.HasSuffix(path, after) || len(path) < len(before)+len(after) {
		return ""
	}
	id := path[len(before) : len(path)-len(after)]
	if strings.Contains(id, "/") {
		return ""
	}
	return id
}

// CheckPath refuses backend paths that could leave the dataset, whatever the
// adapter: empty, "." or ".." segments, and characters that would change
// the meaning of a URL or a log line. Adapters check again.
func CheckPath(path string) error {
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
