package exchange

import (
	"context"
	"time"

	"github.com/lienthong/lienthong/audit"
)

// WriteIntent submits the exchange's intent record before the gateway acts
// on it (calls the backend, forwards to the provider's gateway), so its
// write overlaps that work; fields are the fields the decision allowed, if
// any. Answer and Refuse wait for it before releasing anything. When the log
// has already failed it refuses (recorded), and nothing may be fetched or
// forwarded.
func (c *Core) WriteIntent(ctx context.Context, x *Exchange, fields []string) *Refusal {
	x.rec.Time = time.Now().UTC()
	intent := x.rec
	intent.Phase, intent.Fields = audit.Intent, fields
	intent.LatencyMS = float64(time.Since(x.start).Microseconds()) / 1000
	x.intent = c.cfg.Sink.Submit(&intent, audit.CommitNow)
	x.stages.intentAt = time.Now()
	if x.intent.Failed() != nil {
		return c.Refuse(ctx, x, statusServiceUnavailable, KindAuditUnavailable, "the exchange could not be recorded, so it was not started")
	}
	return nil
}

// Answer records the exchange's outcome and returns the answer to release.
// Nothing leaves unless the exchange is durably in the log: when it cannot
// be recorded, the answer is a refusal, bound to the request like any
// answer, so the consumer's gateway passes the reason on.
func (c *Core) Answer(ctx context.Context, x *Exchange, status int, contentType string, body []byte) (*Answer, *Refusal) {
	x.rec.Status, x.rec.Bytes = status, int64(len(body))
	if !c.writeOutcome(ctx, x) {
		c.observe(x, KindAuditUnavailable)
		return nil, x.bind(refusal(statusServiceUnavailable, KindAuditUnavailable, "the exchange could not be recorded, so it was not completed"))
	}
	c.observe(x, relayedKind(status, contentType, body))
	return &Answer{Status: status, ContentType: contentType, Body: body, ExchangeID: x.rec.ExchangeID, RequestHash: x.rec.RequestHash}, nil
}

// Refuse records the exchange's outcome as refused and returns the refusal
// to send; when the refusal cannot be recorded, a client error becomes
// audit-unavailable.
func (c *Core) Refuse(ctx context.Context, x *Exchange, status int, kind, detail string) *Refusal {
	return c.refuse(ctx, x, refusal(status, kind, detail))
}

// Reject records and returns the refusal of a provider-side request its door
// turned away before the core saw it (a body over the limit): the exchange
// is recorded like any other.
func (c *Core) Reject(ctx context.Context, req Request, status int, kind, detail string) *Refusal {
	x := c.open(req, "provider")
	x.seal(req.Consumer)
	return c.Refuse(ctx, x, status, kind, detail)
}

func (c *Core) refuse(ctx context.Context, x *Exchange, r *Refusal) *Refusal {
	x.rec.Status = r.Status
	if !c.writeOutcome(ctx, x) && r.Status < statusInternalServerError {
		r = refusal(statusServiceUnavailable, KindAuditUnavailable, "the exchange could not be recorded")
	}
	c.observe(x, r.Kind)
	return x.bind(r)
}

// writeOutcome submits the outcome record and reports whether the answer
// may be released. With an intent record, the intent must be durable and
// the outcome accepted (the sink's next commit makes it durable, so the
// intent's write overlapped the work and the outcome's costs no wait);
// without one, the outcome itself must be durable.
func (c *Core) writeOutcome(ctx context.Context, x *Exchange) bool {
	if x.rec.Time.IsZero() {
		x.rec.Time = time.Now().UTC()
	}
	x.rec.Phase = audit.Outcome
	x.rec.LatencyMS = float64(time.Since(x.start).Microseconds()) / 1000
	if x.intent != nil && x.stages.backend == 0 && x.stages.projection == 0 && !x.stages.intentAt.IsZero() {
		// A door whose backend answer never reached the core (a consumer
		// gateway's relay, an abandoned Envoy exchange) waited from the
		// intent on.
		x.stages.backend = time.Since(x.stages.intentAt)
	}
	began := time.Now()
	defer func() { x.stages.auditWait += time.Since(began) }()
	var err error
	if x.intent != nil {
		if err = c.wait(ctx, x.intent); err == nil {
			err = c.cfg.Sink.Submit(&x.rec, audit.CommitSoon).Failed()
		}
	} else {
		err = c.wait(ctx, c.cfg.Sink.Submit(&x.rec, audit.CommitNow))
	}
	if err != nil {
		c.cfg.Log.Error("audit record refused", "exchange", x.rec.ExchangeID, "error", err.Error())
		return false
	}
	return true
}

// wait waits for a record to be durable. The caller going away does not
// stop the record; a log that hangs fails the exchange after the timeout.
// A receipt already settled (an intent whose sync finished while the
// exchange worked, the common case) is read without arming a timer.
func (c *Core) wait(ctx context.Context, r *audit.Receipt) error {
	if r.Settled() {
		return r.Wait(ctx)
	}
	ctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), c.cfg.Timeout)
	defer cancel()
	return r.Wait(ctx)
}
