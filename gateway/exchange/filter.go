package exchange

import (
	"bytes"
	"context"
	"errors"
	"io"
	"net/url"
	"time"

	"github.com/lienthong/lienthong/adapters"
	"github.com/lienthong/lienthong/catalog"
	"github.com/lienthong/lienthong/gateway/projection"
)

// projector builds what applies a decision to records: the plan (allowed
// fields and, when masked, their masks) and the row-scope filter (nil when
// the decision has none). It is the one place both are made.
func (c *Core) projector(x *Exchange, masked bool) (*projection.Plan, func(any) bool, error) {
	d := x.decision
	var masks map[string]catalog.Mask
	if masked {
		masks = d.Masks
	}
	plan, err := x.dataset.Schema.CachedPlan(x.rec.PolicyRevision, d.GrantID, d.Fields, masks, c.cfg.Masker)
	if err != nil {
		return nil, nil, err
	}
	var keep func(any) bool
	if d.RowScope != nil {
		keep = projection.RowScopeFilter(d.RowScope)
	}
	return plan, keep, nil
}

// Body is a response body to filter, and what its source says about it.
type Body struct {
	Reader io.Reader
	// Partial: the source fetched only the granted parts of each record, so
	// records are checked without `required`.
	Partial bool
	// Scoped: the source already applied the decision's row scope.
	Scoped bool
}

// Filter validates the records of a response body against the dataset,
// applies the decision's row scope, projects them to its fields and, when
// masked, applies its masks (verify compares unmasked values inside the core
// and never sends them), writing the result to dst. Each record's subject is
// noted for the audit record. On failure it refuses (recorded); dst may then
// hold part of the output and must be discarded. An answer the row scope
// left empty is "not found", worded as for a missing record.
func (c *Core) Filter(ctx context.Context, x *Exchange, dst *bytes.Buffer, body Body, masked bool) (projection.Stats, *Refusal) {
	plan, keep, err := c.projector(x, masked)
	if err != nil {
		c.cfg.Log.Error("projection plan refused the decision", "exchange", x.rec.ExchangeID, "fault", "plan", "fields", len(x.decision.Fields), "masks", len(x.decision.Masks))
		return projection.Stats{}, c.Refuse(ctx, x, statusInternalServerError, KindInternal, "the decision could not be applied")
	}
	if body.Scoped {
		keep = nil
	}
	validator := x.dataset.Validator
	if body.Partial {
		validator = x.dataset.Partial
	}
	opts := projection.Options{MaxBytes: c.cfg.MaxResponseBytes, Validator: validator, Keep: keep}
	var subjects []string
	if field := c.backend(x).SubjectField; field != "" && x.rec.Mode != string(catalog.ModeVerify) {
		opts.Keep = func(rec any) bool {
			if keep != nil && !keep(rec) {
				return false
			}
			if v, ok := projection.Lookup(rec, field); ok {
				if s, ok := v.(string); ok {
					subjects = append(subjects, c.subject(s))
				}
			}
			return true
		}
	}
	began := time.Now()
	stats, err := plan.Project(dst, body.Reader, opts)
	x.stages.projection += time.Since(began)
	if err != nil {
		n := c.invalidResponses.Add(1)
		c.cfg.Log.Warn("backend answer refused", "exchange", x.rec.ExchangeID, "dataset", x.rec.Provider+"/"+x.rec.Dataset,
			"fault", projectionFault(err), "bytes_in", stats.BytesIn, "records", stats.Records, "refused_so_far", n)
		return stats, c.Refuse(ctx, x, statusBadGateway, KindBadBackendAnswer, "the provider's backend answered with data that does not match the dataset; nothing was passed on")
	}
	if stats.Undeclared > 0 {
		// The backend sent more than its dataset declares. Its keys and values
		// are backend-controlled bytes (and may be the very data the schema
		// keeps out): the log and the record get the count and the code only.
		x.AddReason(ReasonUndeclaredDropped)
		c.cfg.Log.Warn("backend answer carried undeclared keys; dropped", "exchange", x.rec.ExchangeID, "dataset", x.rec.Provider+"/"+x.rec.Dataset,
			"reason", ReasonUndeclaredDropped, "count", stats.Undeclared)
	}
	if stats.Records == 0 && stats.Filtered > 0 && dst.Len() == 0 {
		return stats, c.Refuse(ctx, x, statusNotFound, KindNotFound, notFoundDetail)
	}
	switch {
	case x.rec.Subject == "" && len(subjects) == 1:
		x.rec.Subject = subjects[0]
	case len(subjects) > 1:
		x.rec.Subjects = subjects
	}
	return stats, nil
}

// projectionFault is the kind of a refused backend answer, for logs: never
// the error's text, which can quote the backend's keys or values.
func projectionFault(err error) string {
	switch {
	case errors.Is(err, projection.ErrDuplicateKey):
		return "duplicate-key"
	case errors.Is(err, projection.ErrInvalidJSON):
		return "invalid-json"
	case errors.Is(err, projection.ErrTooDeep):
		return "too-deep"
	case errors.Is(err, projection.ErrTooLarge):
		return "too-large"
	case errors.Is(err, projection.ErrInvalidRecord):
		return "invalid-record"
	}
	return "write"
}

// notFoundDetail is the one answer for a record that does not exist and for
// one outside the grant's row scope, so the answer never tells them apart.
const notFoundDetail = "no such record"

func (c *Core) backend(x *Exchange) Backend {
	return c.cfg.Backends[x.rec.Provider+"/"+x.rec.Dataset]
}

// Fetch asks the dataset's backend for path (and query) and filters its
// answer with Filter.
func (c *Core) Fetch(ctx context.Context, x *Exchange, path string, query url.Values, masked bool) ([]byte, projection.Stats, *Refusal) {
	be := c.backend(x)
	if be.Adapter == nil {
		return nil, projection.Stats{}, c.Refuse(ctx, x, statusServiceUnavailable, KindNoBackend, "no backend is configured for this dataset")
	}
	fctx, cancel := context.WithTimeout(ctx, c.cfg.Timeout)
	defer cancel()
	d := x.decision
	began := time.Now()
	resp, err := be.Adapter.Fetch(fctx, adapters.Request{Dataset: x.dataset.Catalog, Path: path, Query: query, Fields: d.Fields, RowScope: d.RowScope})
	x.stages.backend = time.Since(began)
	if err != nil {
		return nil, projection.Stats{}, c.BackendFailed(ctx, x, err)
	}
	defer resp.Body.Close()
	var buf bytes.Buffer
	stats, ref := c.Filter(ctx, x, &buf, Body{Reader: resp.Body, Partial: resp.Partial, Scoped: resp.Scoped}, masked)
	if ref != nil {
		return nil, stats, ref
	}
	return buf.Bytes(), stats, nil
}

// BackendFailed refuses after a failed fetch (an adapter's error, or a door
// that fetched itself reporting the backend's answer as one of the adapters'
// errors), logging only the kind of fault: an error's text can quote what
// the backend sent. A refusal is already recorded.
func (c *Core) BackendFailed(ctx context.Context, x *Exchange, err error) *Refusal {
	switch {
	case errors.Is(err, adapters.ErrNotFound):
		return c.Refuse(ctx, x, statusNotFound, KindNotFound, notFoundDetail)
	case errors.Is(err, adapters.ErrTimeout), errors.Is(err, context.DeadlineExceeded):
		return c.Refuse(ctx, x, statusGatewayTimeout, KindBackendTimeout, "the provider's backend did not answer in time")
	}
	fault := "backend"
	if errors.Is(err, adapters.ErrTooLarge) {
		fault = "too-large"
	}
	c.cfg.Log.Warn("backend failed", "exchange", x.rec.ExchangeID, "dataset", x.rec.Provider+"/"+x.rec.Dataset, "fault", fault)
	return c.Refuse(ctx, x, statusBadGateway, KindBackendError, "the provider's backend failed")
}
