package exchange

import (
	"context"
	"encoding/json"
	"log/slog"
	"strings"
	"time"

	"github.com/lienthong/lienthong/internal/problem"
)

// Observer hears of every finished exchange, once, whatever door it came
// through (the HTTP listeners, Envoy's ext_authz and ext_proc), after its
// outcome record is written: metrics count and time exchanges from it. It is
// called on the exchange's goroutine and must not block. A nil Observer in
// Config turns observation off.
type Observer interface {
	Finished(o Observation)
}

// Observation is what an Observer learns of one exchange: names the
// federation registers (systems, datasets, problem kinds), sizes and
// durations; never a field value, a subject, a record id or an exchange id,
// so nothing in it can grow a metric's label set with callers' data.
type Observation struct {
	// Side is "consumer" or "provider"; Mode the exchange's mode.
	Side, Mode string
	// Consumer is the consumer system once the gateway has checked it
	// (named by its certificate on the consumer side, bound to the peer
	// gateway's member on the provider side), else "".
	Consumer string
	// Provider and Dataset name the dataset once it is known to exist (the
	// provider side found it in its configuration; the consumer side found
	// a gateway for the provider's member), else "".
	Provider, Dataset string
	// Outcome is one of the Outcome constants; Kind the refusal's problem
	// kind ("" when allowed).
	Outcome, Kind string
	// Status is the HTTP status answered; Bytes the body's length.
	Status int
	Bytes  int64
	// Total runs from admission to the outcome record; the stages are zero
	// when the exchange did not reach them. Backend is the provider's
	// backend on the provider side and the provider's gateway on the
	// consumer side; AuditWait is the wait for the records to be durable.
	Total, Decision, Backend, Projection, AuditWait time.Duration
}

// Outcomes of an exchange, as observed.
const (
	// OutcomeAllowed: answered with the data (2xx).
	OutcomeAllowed = "allowed"
	// OutcomeDenied: refused by a rule (policy, admission, rate, input,
	// staleness), Kind says which.
	OutcomeDenied = "denied"
	// OutcomeBackendError: the backend (or the provider's gateway, seen
	// from the consumer side) failed or did not answer in time.
	OutcomeBackendError = "backend_error"
	// OutcomeInvalidResponse: the backend's (or provider gateway's) answer
	// was refused: not the dataset's shape, or not bound to the request.
	OutcomeInvalidResponse = "invalid_response"
	// OutcomeFailed: the gateway itself could not complete the exchange
	// (audit log, policy evaluation, internal error).
	OutcomeFailed = "failed"
)

// OutcomeOf classifies a refusal's problem kind and status; status < 400
// with no kind is allowed. Kinds a consumer gateway relays from a provider
// (its problem type) are classified alike.
func OutcomeOf(kind string, status int) string {
	switch kind {
	case "":
		if status < 400 {
			return OutcomeAllowed
		}
	case KindBackendError, KindBackendTimeout, KindNoBackend, "provider-unreachable", "provider-timeout":
		return OutcomeBackendError
	case KindBadBackendAnswer, "bad-provider-answer", "unbound-answer":
		return OutcomeInvalidResponse
	case KindAuditUnavailable, KindPolicyError, KindInternal:
		return OutcomeFailed
	}
	if status >= 500 && kind != KindStale {
		return OutcomeFailed
	}
	return OutcomeDenied
}

// stages are the durations an exchange spent in each stage, kept for the
// Observer.
type stages struct {
	decision, backend, projection, auditWait time.Duration
	// intentAt is when the intent record was submitted: the backend (or
	// the provider's gateway) works from then on.
	intentAt time.Time
	// observed is set once the Observer has heard of the exchange.
	observed bool
}

// observe tells the Observer about a finished exchange, once, and logs it
// at debug level (an access log line: the exchange id and names, never a
// path, field or subject).
func (c *Core) observe(x *Exchange, kind string) {
	if x.stages.observed || (c.cfg.Observer == nil && !c.cfg.Log.Enabled(context.Background(), slog.LevelDebug)) {
		return
	}
	x.stages.observed = true
	o := Observation{
		Side: x.rec.Side, Mode: x.rec.Mode, Status: x.rec.Status, Bytes: x.rec.Bytes, Kind: BoundedKind(kind),
		Total: time.Since(x.start), Decision: x.stages.decision, Backend: x.stages.backend,
		Projection: x.stages.projection, AuditWait: x.stages.auditWait,
	}
	o.Outcome = OutcomeOf(o.Kind, o.Status)
	if x.consumerChecked {
		o.Consumer = x.rec.Consumer
	}
	// The consumer side names the dataset once the provider's gateway has
	// not said it serves no such dataset.
	if x.dataset != nil || (x.rec.Side == "consumer" && x.providerKnown && o.Kind != KindUnknownDataset) {
		o.Provider, o.Dataset = x.rec.Provider, x.rec.Dataset
	}
	if c.cfg.Log.Enabled(context.Background(), slog.LevelDebug) {
		dataset := ""
		if o.Provider != "" {
			dataset = o.Provider + "/" + o.Dataset
		}
		c.cfg.Log.Debug("exchange finished", "exchange", x.rec.ExchangeID, "side", o.Side, "mode", o.Mode,
			"consumer", o.Consumer, "dataset", dataset, "outcome", o.Outcome, "kind", o.Kind,
			"status", o.Status, "bytes", o.Bytes, "took_ms", float64(o.Total.Microseconds())/1000)
	}
	if c.cfg.Observer != nil {
		c.cfg.Observer.Finished(o)
	}
}

// NoteBackend records how long a door's own call to the backend or the
// provider's gateway took, for the Observer (doors that fetch themselves).
func (x *Exchange) NoteBackend(d time.Duration) { x.stages.backend = d }

// NoteProvider says the consumer side found a gateway for the provider's
// member, so the provider and dataset asked for may be named in metrics
// (bounded further by the Observer).
func (x *Exchange) NoteProvider() { x.providerKnown = true }

// knownKinds are the problem kinds an Observation may carry: a consumer
// gateway relays its peer's problem type, which is bounded to these (any
// other is "other"), so a peer cannot grow a metric's labels.
var knownKinds = map[string]bool{
	KindStale: true, KindUnknownPeer: true, KindUnknownCaller: true, KindForeignCaller: true,
	KindConsumerNotPeer: true, KindSystemRevoked: true, KindRateLimited: true, KindPurposeRequired: true,
	KindUnknownDataset: true, KindPolicyError: true, KindAccessDenied: true, KindMaskedField: true,
	KindInvalidPath: true, KindInvalidInput: true, KindVerifyLimit: true, KindNoBackend: true,
	KindInternal: true, KindBadBackendAnswer: true, KindBackendTimeout: true, KindBackendError: true,
	KindNotFound: true, KindAuditUnavailable: true,
	// The consumer gateway's own refusals.
	"no-route": true, "provider-unreachable": true, "provider-timeout": true,
	"bad-provider-answer": true, "unbound-answer": true, "too-large": true,
}

// KindOther stands for a problem kind outside the known set.
const KindOther = "other"

// BoundedKind is kind when it is a known problem kind, else KindOther.
func BoundedKind(kind string) string {
	if kind == "" || knownKinds[kind] {
		return kind
	}
	return KindOther
}

// relayedKind is the problem kind of an answer a consumer gateway passes on
// from the provider's gateway ("" for a success): its problem type, bounded.
func relayedKind(status int, contentType string, body []byte) string {
	if status < 400 {
		return ""
	}
	var p struct {
		Type string `json:"type"`
	}
	if contentType != problem.ContentType || json.Unmarshal(body, &p) != nil || !strings.HasPrefix(p.Type, problem.TypePrefix) {
		return KindOther
	}
	return BoundedKind(strings.TrimPrefix(p.Type, problem.TypePrefix))
}
