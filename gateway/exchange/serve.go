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

	"github.com/lienthong/lienthong/catalog"
	"github.com/lienthong/lienthong/gateway/projection"
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
		return c.serveVerify(ctx, x)
	}
	return nil, c.Refuse(ctx, x, statusBadRequest, KindInvalidInput, "only query and verify exchanges are served here")
}

func (c *Core) serveQuery(ctx context.Context, x *Exchange) (*Answer, *Refusal) {
	req := &x.req
	d, ref := c.Decide(ctx, x, req.Fields)
	if ref != nil {
		return nil, ref
	}
	if err := CheckPath(req.Record); err != nil {
		return nil, c.Refuse(ctx, x, statusBadRequest, KindInvalidPath, err.Error())
	}
	x.rec.Subject = c.subject(recordID(c.backend(x).RecordPath, req.Record))
	if ref := c.WriteIntent(ctx, x, d.Fields); ref != nil {
		return nil, ref
	}
	query := url.Values{}
	for k, v := range req.Query {
		if k != "fields" {
			query[k] = v
		}
	}
	out, _, ref := c.Fetch(ctx, x, req.Record, query, true)
	if ref != nil {
		return nil, ref
	}
	x.rec.Fields = d.Fields
	held := withheld(req.Fields, d.Fields)
	if len(held) > 0 {
		x.rec.Reasons = append(x.rec.Reasons, ReasonFieldsWithheld)
	}
	a, ref := c.Answer(ctx, x, statusOK, "application/json", out)
	if a != nil {
		a.Withheld = held
	}
	return a, ref
}

// verifyRequest is the body of a verification: claimed values by field path.
type verifyRequest struct {
	Attributes map[string]json.RawMessage `json:"attributes"`
}

// serveVerify answers match / no_match per claimed attribute, never a value.
// A field the grant masks cannot be verified: confirming a claim would
// reveal what the mask hides (a nullified value, the hidden part of a
// partial one, the preimage of a hash).
func (c *Core) serveVerify(ctx context.Context, x *Exchange) (*Answer, *Refusal) {
	var in verifyRequest
	dec := json.NewDecoder(bytes.NewReader(x.req.Body))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&in); err != nil || len(in.Attributes) == 0 {
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
	var missing, masked []string
	for _, f := range fields {
		switch {
		case !slices.Contains(d.Fields, f):
			missing = append(missing, f)
		case maskOn(f, d.Masks) != "":
			masked = append(masked, fmt.Sprintf("%s (%s)", f, maskOn(f, d.Masks)))
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
	dec = json.NewDecoder(bytes.NewReader(out))
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
