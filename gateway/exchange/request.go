package exchange

import (
	"crypto/sha256"
	"crypto/x509"
	"encoding/hex"
	"encoding/json"
	"net/url"
	"slices"
	"strconv"
	"time"

	"github.com/lienthong/lienthong/audit"
	"github.com/lienthong/lienthong/catalog"
	"github.com/lienthong/lienthong/internal/problem"
	"github.com/lienthong/lienthong/policies"
)

// Request is one exchange as a door received it.
type Request struct {
	// PeerChain is the caller's verified certificate chain, leaf first.
	PeerChain []*x509.Certificate
	// Consumer is the consumer system the caller speaks for, as claimed (a
	// provider-side door; checked against the peer). The consumer side
	// names the consumer from PeerChain and ignores it.
	Consumer string
	// Provider is the provider system id, Dataset the dataset code.
	Provider, Dataset string
	Purpose, Case     string
	// ExchangeID as the consumer's gateway named it (provider side); a new
	// one is made when it is empty or too long.
	ExchangeID string
	Mode       catalog.Mode
	// Method, Path and Query are the request as received, bound into the
	// request hash; Path is also the problem's instance. Query includes
	// fields=.
	Method, Path string
	Query        url.Values
	// Body is the request body as received (verify: the claims).
	Body []byte
	// Fields are the fields asked for (empty: everything granted).
	Fields []string
	// Record is, in a query, the backend path after the dataset; in verify,
	// the record id.
	Record string
}

// Answer is what a door sends back for a served exchange.
type Answer struct {
	Status      int
	ContentType string
	Body        []byte
	ExchangeID  string
	RequestHash string
	// Withheld names the fields asked for that no grant covers (never their
	// values): the answer holds the rest.
	Withheld []string
}

// Refusal is an exchange refused at some stage. A door renders it whole:
// the HTTP door as problem JSON, ext_authz as a denied CheckResponse with the
// same body (Body). Detail names rules and fields, never values.
type Refusal struct {
	// Kind is the problem type after problem.TypePrefix.
	Kind   string
	Status int
	Detail string
	// Instance is the request path, when known.
	Instance string
	// ExchangeID and RequestHash bind the refusal to its request, when the
	// exchange got that far.
	ExchangeID, RequestHash string
	// RetryAfter, when set, tells the caller when to try again.
	RetryAfter time.Duration
}

// Problem kinds the core refuses with.
const (
	KindStale            = "stale-configuration"
	KindUnknownPeer      = "unknown-peer"
	KindUnknownCaller    = "unknown-caller"
	KindForeignCaller    = "foreign-caller"
	KindConsumerNotPeer  = "consumer-not-of-peer"
	KindSystemRevoked    = "system-revoked"
	KindRateLimited      = "rate-limited"
	KindPurposeRequired  = "purpose-required"
	KindUnknownDataset   = "unknown-dataset"
	KindPolicyError      = "policy-error"
	KindAccessDenied     = "access-denied"
	KindMaskedField      = "masked-field"
	KindInvalidPath      = "invalid-path"
	KindInvalidInput     = "invalid-input"
	KindVerifyLimit      = "verify-limit"
	KindNoBackend        = "no-backend"
	KindInternal         = "internal"
	KindBadBackendAnswer = "bad-backend-answer"
	KindBackendTimeout   = "backend-timeout"
	KindBackendError     = "backend-error"
	KindNotFound         = "not-found"
	KindAuditUnavailable = "audit-unavailable"
)

// ReasonFieldsWithheld is added to an audit record's reasons when a query
// was answered without some of the fields it asked for.
const ReasonFieldsWithheld = "fields_withheld"

// ReasonUndeclaredDropped is added to an audit record's reasons when
// projection dropped keys the dataset's schema does not declare from the
// backend's answer. Only the code and, in the log, the count are kept:
// never the keys' names or values.
const ReasonUndeclaredDropped = "undeclared_dropped"

func refusal(status int, kind, detail string) *Refusal {
	return &Refusal{Kind: kind, Status: status, Detail: detail}
}

// Error makes a Refusal usable as an error.
func (r *Refusal) Error() string { return r.Problem().Error() }

// Problem is the refusal as RFC 9457 problem details.
func (r *Refusal) Problem() *problem.Problem {
	p := problem.New(r.Status, r.Kind, r.Detail)
	p.Instance = r.Instance
	return p
}

// Body is the problem JSON every door sends.
func (r *Refusal) Body() []byte {
	b, _ := json.Marshal(r.Problem())
	return b
}

// Exchange is one exchange in flight: what the stages learned, for the
// next stage and for the audit records.
type Exchange struct {
	req      Request
	snap     *Snapshot
	dataset  *Dataset
	decision *policies.Decision
	start    time.Time
	rec      audit.Record
	// intent is the write of the intent record, once begun.
	intent *audit.Receipt
	// stages times the exchange for the Observer; consumerChecked and
	// providerKnown say which of its names it may be told.
	stages                         stages
	consumerChecked, providerKnown bool
}

// ID is the exchange id.
func (x *Exchange) ID() string { return x.rec.ExchangeID }

// RequestHash binds answers to the request (see RequestHash).
func (x *Exchange) RequestHash() string { return x.rec.RequestHash }

// Consumer is the consumer system, as admitted.
func (x *Exchange) Consumer() string { return x.rec.Consumer }

// Snapshot is the view of the federation the exchange is decided in.
func (x *Exchange) Snapshot() *Snapshot { return x.snap }

// Decision is the policy decision, once made.
func (x *Exchange) Decision() *policies.Decision { return x.decision }

// Record is a copy of the exchange's audit record as it stands.
func (x *Exchange) Record() audit.Record { return x.rec }

// AddReason adds a reason code to the exchange's outcome record (a door
// that learns something the core did not, e.g. the consumer side passing on
// withheld fields).
func (x *Exchange) AddReason(code string) {
	if !slices.Contains(x.rec.Reasons, code) {
		x.rec.Reasons = append(x.rec.Reasons, code)
	}
}

// bind fills the refusal's binding to this exchange.
func (x *Exchange) bind(r *Refusal) *Refusal {
	r.Instance = x.req.Path
	r.ExchangeID, r.RequestHash = x.rec.ExchangeID, x.rec.RequestHash
	return r
}

// RequestHash is SHA-256 over the canonical form of an exchange request:
// method, path, query (sorted by key), consumer, purpose, case, exchange id
// and the SHA-256 of the body, each written as its length, a colon and its
// bytes, so no two requests share a form however their values are chosen.
// Both gateways compute it from what they sent or received, so any change
// on the way, the body of a verify request included, is detected.
func RequestHash(method, path string, query url.Values, consumer, purpose, caseRef, exchangeID string, body []byte) string {
	bodySum := sha256.Sum256(body)
	var bodyHex [2 * sha256.Size]byte
	hex.Encode(bodyHex[:], bodySum[:])
	// One buffer hashed at once: this runs on both gateways for every
	// exchange, and writing each part to a digest allocated per part.
	var stack [512]byte
	form := stack[:0]
	for _, part := range [...]string{method, path, query.Encode(), consumer, purpose, caseRef, exchangeID} {
		form = strconv.AppendInt(form, int64(len(part)), 10)
		form = append(form, ':')
		form = append(form, part...)
	}
	form = strconv.AppendInt(form, int64(len(bodyHex)), 10)
	form = append(form, ':')
	form = append(form, bodyHex[:]...)
	sum := sha256.Sum256(form)
	return hex.EncodeToString(sum[:])
}

// The HTTP statuses refusals carry (RFC 9110 numbers; the core itself does
// not use net/http).
const (
	statusOK                  = 200
	statusBadRequest          = 400
	statusForbidden           = 403
	statusNotFound            = 404
	statusTooManyRequests     = 429
	statusInternalServerError = 500
	statusBadGateway          = 502
	statusServiceUnavailable  = 503
	statusGatewayTimeout      = 504
)

// Withheld names the fields the request asked for that the decision allows
// no part of (never their values), once decided; see Answer.Withheld.
func (x *Exchange) Withheld() []string {
	if x.decision == nil {
		return nil
	}
	return withheld(x.req.Fields, x.decision.Fields)
}
