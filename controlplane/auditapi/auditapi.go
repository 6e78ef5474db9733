// Package auditapi mounts the audit index on the management API: the
// routes gateways ship their logs through (position, entries, checkpoints,
// key enrolment) and the auditors' queries (exchanges, flow matrix, JSON
// lines export, alerts). The citizen's tracker lives in package citizen.
//
// Routes are handed to api.New as extra routes, so the API server knows
// nothing of the audit index.
package auditapi

import (
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"math"
	"net/http"
	"strconv"
	"time"

	"github.com/lienthong/lienthong/audit"
	"github.com/lienthong/lienthong/audit/index"
	"github.com/lienthong/lienthong/audit/ship"
	"github.com/lienthong/lienthong/catalog"
	"github.com/lienthong/lienthong/controlplane/api"
	"github.com/lienthong/lienthong/controlplane/auth"
	"github.com/lienthong/lienthong/internal/problem"
)

// maxShipment bounds one POST of entries: a gateway ships in batches well
// below it (a batch of a few thousand entries of under 4 KiB each).
const maxShipment = 32 << 20

// Handlers serves the audit index's routes.
type Handlers struct {
	ix      index.Store
	log     *slog.Logger
	subject index.SubjectKey
	trail   catalog.Store
}

// New returns the handlers over ix. key turns a personal ID an auditor
// searches for into the subject HMAC the index holds. trail, when not nil,
// records each search for a subject in the admin trail: who looked for
// whom is itself on record.
func New(ix index.Store, key index.SubjectKey, log *slog.Logger, trail catalog.Store) *Handlers {
	return &Handlers{ix: ix, log: log, subject: key, trail: trail}
}

// Routes lists the routes to mount (api.New's extra routes).
func (h *Handlers) Routes() []api.Route {
	return []api.Route{
		{Pattern: "GET /v1/audit/gateways/{gateway}/position", Handler: h.position, Gateway: true},
		{Pattern: "POST /v1/audit/gateways/{gateway}/entries", Handler: h.entries, Gateway: true},
		{Pattern: "POST /v1/audit/gateways/{gateway}/checkpoints", Handler: h.checkpoints, Gateway: true},
		{Pattern: "GET /v1/audit/gateways/{gateway}/checkpoints", Handler: h.publishedCheckpoints},
		{Pattern: "PUT /v1/audit/gateways/{gateway}/key", Handler: h.enrolKey, Gateway: true},
		{Pattern: "PUT /v1/audit/gateways/{gateway}/head", Handler: h.head, Gateway: true},
		{Pattern: "GET /v1/audit/alerts", Handler: h.alerts},
		{Pattern: "GET /v1/audit/shipping", Handler: h.shipping},
		{Pattern: "GET /v1/audit/exchanges", Handler: h.exchanges},
		{Pattern: "POST /v1/audit/exchanges/query", Handler: h.exchangesQuery},
		{Pattern: "GET /v1/audit/flows", Handler: h.flows},
		{Pattern: "GET /v1/audit/export", Handler: h.export},
		{Pattern: "GET /v1/audit/feed", Handler: h.feed},
	}
}

// AuthorizeGateway decides whether the caller may act as the gateway: read
// its position, ship its entries and checkpoints, enrol its key. It is the
// one place that decides it. A gateway is known by its certificate and acts
// only for itself; a member admin's token may act for its member's gateway
// (an operator's rebuild), and the platform operator for any gateway (a key
// rotation).
func AuthorizeGateway(p auth.Principal, gateway, action string) error {
	member := index.GatewayMember(gateway)
	if member == "" {
		return catalog.Invalid("gateway", "/gateway", "%q is not a gateway id (a member code or a system id like VN:GOV:000.00.00.G01:GW)", gateway)
	}
	if p.IsPlatformAdmin() {
		return nil
	}
	// A gateway is known by its certificate and speaks only for itself.
	if p.IsGateway() {
		if p.System != gateway {
			return fmt.Errorf("%w: %s: gateway %s may not act for gateway %s", catalog.ErrForbidden, action, p.System, gateway)
		}
		return nil
	}
	if p.Role != catalog.RoleMemberAdmin {
		return fmt.Errorf("%w: %s needs the gateway's token; token %s has role %s", catalog.ErrForbidden, action, p.TokenID, p.Role)
	}
	if p.Member != member {
		return fmt.Errorf("%w: %s: token %s acts for member %s, not for gateway %s", catalog.ErrForbidden, action, p.TokenID, p.Member, gateway)
	}
	return nil
}

// AuditScope is the member whose exchanges p may query: "" (all) for the
// platform operator, its own member for an auditor; anyone else is refused.
func AuditScope(p auth.Principal) (string, error) {
	if p.IsPlatformAdmin() {
		return "", nil
	}
	if p.Role == catalog.RoleAuditor && p.Member != "" {
		return p.Member, nil
	}
	return "", fmt.Errorf("%w: querying the audit index needs the auditor role (or platform-admin); token %s has role %s", catalog.ErrForbidden, p.TokenID, p.Role)
}

// writeError answers ShipErrors as 409 problems of their alert kind and
// unreadable shipments as 400, and everything else as the API does.
func (h *Handlers) writeError(w http.ResponseWriter, r *http.Request, err error) {
	var se *index.ShipError
	switch {
	case errors.As(err, &se):
		problem.Write(w, r, problem.New(http.StatusConflict, string(se.Kind), se.Error()))
	case errors.Is(err, index.ErrInvalid):
		problem.Write(w, r, problem.New(http.StatusBadRequest, "invalid-input", err.Error()))
	default:
		api.WriteErrorWith(h.log, w, r, err)
	}
}

func (h *Handlers) position(w http.ResponseWriter, r *http.Request, p auth.Principal) {
	gw := r.PathValue("gateway")
	if err := AuthorizeGateway(p, gw, "read the audit position"); err != nil {
		h.writeError(w, r, err)
		return
	}
	pos, err := h.ix.Position(r.Context(), gw)
	if err != nil {
		h.writeError(w, r, err)
		return
	}
	api.WriteJSON(w, http.StatusOK, pos)
}

// Shipment is the body of POST .../entries: raw entry lines, each a JSON
// string holding the entry's exact stored bytes.
type Shipment struct {
	Entries []string `json:"entries"`
}

// Shipped is the answer to a shipment: the seq the index expects next.
type Shipped struct {
	Next uint64 `json:"next"`
}

func (h *Handlers) entries(w http.ResponseWriter, r *http.Request, p auth.Principal) {
	gw := r.PathValue("gateway")
	if err := AuthorizeGateway(p, gw, "ship audit entries"); err != nil {
		h.writeError(w, r, err)
		return
	}
	var in Shipment
	if err := api.DecodeJSON(w, r, maxShipment, &in); err != nil {
		h.writeError(w, r, err)
		return
	}
	head, err := logHead(r)
	if err != nil {
		h.writeError(w, r, err)
		return
	}
	lines := make([][]byte, len(in.Entries))
	for i, e := range in.Entries {
		lines[i] = []byte(e)
	}
	// The head and lag are recorded in the shipment's own transaction, a
	// refused one's too: a gateway stuck on a fork shows a lag that grows.
	pos, err := h.ix.IngestShipment(r.Context(), gw, lines, head)
	if err != nil {
		h.writeError(w, r, err)
		return
	}
	api.WriteJSON(w, http.StatusOK, Shipped{Next: pos.Next})
}

// logHead reads the log head a shipment carries (ship.HeadHeader; 0 when
// absent).
func logHead(r *http.Request) (uint64, error) {
	return parseLogHead(r.Header.Get(ship.HeadHeader))
}

// parseLogHead reads a log head header value: empty is none (0), else a
// decimal seq in 1..math.MaxInt64 (the index stores seqs as signed 64-bit
// numbers, and no log reaches past that).
func parseLogHead(v string) (uint64, error) {
	if v == "" {
		return 0, nil
	}
	head, err := strconv.ParseUint(v, 10, 64)
	if err != nil || !validHead(head) {
		return 0, catalog.Invalid("header", "/"+ship.HeadHeader, "%.40q is not the seq of the log's last entry (1 to %d)", v, int64(math.MaxInt64))
	}
	return head, nil
}

// validHead reports whether head can be the last seq of a log.
func validHead(head uint64) bool { return head >= 1 && head <= math.MaxInt64 }

// LogHead is the body of PUT .../head: the last seq of the gateway's log,
// reported while it has nothing to ship.
type LogHead struct {
	Head uint64 `json:"head"`
}

func (h *Handlers) head(w http.ResponseWriter, r *http.Request, p auth.Principal) {
	gw := r.PathValue("gateway")
	if err := AuthorizeGateway(p, gw, "report the audit log head"); err != nil {
		h.writeError(w, r, err)
		return
	}
	var in LogHead
	if err := api.DecodeJSON(w, r, 4<<10, &in); err != nil {
		h.writeError(w, r, err)
		return
	}
	if !validHead(in.Head) {
		h.writeError(w, r, catalog.Invalid("request body", "/head", "head must be the seq of the log's last entry (1 to %d)", int64(math.MaxInt64)))
		return
	}
	if err := h.ix.ReportHead(r.Context(), gw, in.Head); err != nil {
		h.writeError(w, r, err)
		return
	}
	w.WriteHeader(http.StatusNoContent)
}

func (h *Handlers) checkpoints(w http.ResponseWriter, r *http.Request, p auth.Principal) {
	gw := r.PathValue("gateway")
	if err := AuthorizeGateway(p, gw, "send an audit checkpoint"); err != nil {
		h.writeError(w, r, err)
		return
	}
	var c audit.Checkpoint
	if err := api.DecodeJSON(w, r, 64<<10, &c); err != nil {
		h.writeError(w, r, err)
		return
	}
	if err := h.ix.AddCheckpoint(r.Context(), gw, &c); err != nil {
		h.writeError(w, r, err)
		return
	}
	api.WriteJSON(w, http.StatusOK, map[string]uint64{"seq": c.Seq})
}

// publishedCheckpoints answers the checkpoints a gateway sent, as the JSON
// array `lienthong audit verify --checkpoints` reads: a gateway that
// rewrote and re-signed its log is caught against them. The gateway itself,
// its member's auditors and the platform operator may read them.
func (h *Handlers) publishedCheckpoints(w http.ResponseWriter, r *http.Request, p auth.Principal) {
	gw := r.PathValue("gateway")
	if err := h.mayReadGateway(p, gw); err != nil {
		h.writeError(w, r, err)
		return
	}
	from, err := intParam(r.URL.Query().Get("from"), "/from")
	if err != nil {
		h.writeError(w, r, err)
		return
	}
	// Streamed: a gateway checkpoints every few seconds, for years.
	started := false
	enc := json.NewEncoder(w)
	err = h.ix.Checkpoints(r.Context(), gw, uint64(from), func(c *audit.Checkpoint) error {
		sep := ","
		if !started {
			w.Header().Set("Content-Type", "application/json")
			w.WriteHeader(http.StatusOK)
			started, sep = true, "["
		}
		if _, err := io.WriteString(w, sep); err != nil {
			return err
		}
		return enc.Encode(c)
	})
	switch {
	case err != nil && !started:
		h.writeError(w, r, err)
	case err != nil:
		h.log.Error("audit checkpoints: listing stopped midway", "gateway", gw, "error", err.Error())
		// The array stays unterminated, so a reader cannot take it for whole.
	case !started:
		api.WriteJSON(w, http.StatusOK, []audit.Checkpoint{})
	default:
		_, _ = io.WriteString(w, "]\n")
	}
}

// mayReadGateway allows the gateway itself, an auditor of its member and
// the platform operator.
func (h *Handlers) mayReadGateway(p auth.Principal, gateway string) error {
	scope, err := AuditScope(p)
	if err == nil && (scope == "" || scope == index.GatewayMember(gateway)) {
		return nil
	}
	return AuthorizeGateway(p, gateway, "read the gateway's published checkpoints")
}

// KeyEnrolment is the body of PUT .../key: the gateway's Ed25519 checkpoint
// public key (base64 in JSON).
type KeyEnrolment struct {
	PublicKey []byte `json:"publicKey"`
}

func (h *Handlers) enrolKey(w http.ResponseWriter, r *http.Request, p auth.Principal) {
	gw := r.PathValue("gateway")
	if err := AuthorizeGateway(p, gw, "enrol an audit checkpoint key"); err != nil {
		h.writeError(w, r, err)
		return
	}
	var in KeyEnrolment
	if err := api.DecodeJSON(w, r, 4<<10, &in); err != nil {
		h.writeError(w, r, err)
		return
	}
	// Only the platform operator may replace an enrolled key (rotation).
	if err := h.ix.EnrolKey(r.Context(), gw, in.PublicKey, p.IsPlatformAdmin()); err != nil {
		h.writeError(w, r, err)
		return
	}
	api.WriteJSON(w, http.StatusOK, in)
}

func (h *Handlers) alerts(w http.ResponseWriter, r *http.Request, p auth.Principal) {
	scope, err := AuditScope(p)
	if err != nil {
		h.writeError(w, r, err)
		return
	}
	q := r.URL.Query()
	after, err1 := intParam(q.Get("after"), "/after")
	limit, err2 := intParam(q.Get("limit"), "/limit")
	if err := errors.Join(err1, err2); err != nil {
		h.writeError(w, r, err)
		return
	}
	as, err := h.ix.Alerts(r.Context(), scope, int64(after), limit)
	if err != nil {
		h.writeError(w, r, err)
		return
	}
	api.WriteJSON(w, http.StatusOK, index.Page[index.Alert]{Items: as})
}

func intParam(s, pointer string) (int, error) {
	if s == "" {
		return 0, nil
	}
	n, err := strconv.Atoi(s)
	if err != nil || n < 0 {
		return 0, catalog.Invalid("query", pointer, "%q is not a non-negative integer", s)
	}
	return n, nil
}

func timeParam(s, pointer string) (time.Time, error) {
	if s == "" {
		return time.Time{}, nil
	}
	t, err := time.Parse(time.RFC3339Nano, s)
	if err != nil {
		return time.Time{}, catalog.Invalid("query", pointer, "%q is not an RFC 3339 time such as 2026-11-01T00:00:00Z", s)
	}
	return t, nil
}

// ShippingRow is one gateway of GET /v1/audit/shipping: its shipping and
// whether it falls behind now.
type ShippingRow struct {
	index.Shipping
	Behind bool `json:"behind"`
}

// shipping lists how far each gateway's shipping has got, scoped as the
// auditors' queries are (an auditor sees its member's gateways).
func (h *Handlers) shipping(w http.ResponseWriter, r *http.Request, p auth.Principal) {
	scope, err := AuditScope(p)
	if err != nil {
		h.writeError(w, r, err)
		return
	}
	all, err := h.ix.ShippingStatus(r.Context())
	if err != nil {
		h.writeError(w, r, err)
		return
	}
	now := time.Now()
	out := []ShippingRow{}
	for _, sh := range all {
		if scope == "" || index.GatewayMember(sh.Gateway) == scope {
			out = append(out, ShippingRow{Shipping: sh, Behind: sh.Behind(now)})
		}
	}
	api.WriteJSON(w, http.StatusOK, map[string][]ShippingRow{"items": out})
}
