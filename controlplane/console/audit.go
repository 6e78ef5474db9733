package console

import (
	"encoding/json"
	"errors"
	"net/http"
	"regexp"
	"sort"
	"strconv"
	"strings"
	"time"

	"github.com/lienthong/lienthong/audit/index"
	"github.com/lienthong/lienthong/catalog"
	"github.com/lienthong/lienthong/controlplane/auditapi"
)

// auditForm is the audit search form as submitted.
type auditForm struct {
	Consumer, Provider, Dataset, Purpose, Status, PersonalID, From, Until string
}

// chainRow is one gateway's shipped chain at the index: where it stands,
// and the alerts it raised (none: every shipment verified against the
// chain and its signed checkpoints).
type chainRow struct {
	Gateway string
	Next    uint64
	Alerts  int
}

type auditData struct {
	HasIndex bool
	Form     auditForm
	Searched bool
	Results  []index.Exchange
	More     bool
	Errors   *formErrors
	Chains   []chainRow
	Alerts   []index.Alert
}

var personalID = regexp.MustCompile(`^[0-9]{12}$`)

// auditPage searches the audit index with the auditor's scope (the same
// auditapi.AuditScope the API applies). A personal ID is only accepted by
// POST, so it never stands in a URL, as in the API; the search for a
// subject is written to the admin trail as the API writes it.
func (c *Console) auditPage(w http.ResponseWriter, r *http.Request, v *view) error {
	scope, err := auditapi.AuditScope(*v.Principal)
	if err != nil {
		return err
	}
	if c.cfg.Index == nil {
		c.render(w, r, v, http.StatusOK, "audit", auditData{})
		return nil
	}
	vals := r.URL.Query()
	if r.Method == http.MethodPost {
		vals = r.PostForm
	}
	f := auditForm{Consumer: strings.TrimSpace(vals.Get("consumer")), Provider: strings.TrimSpace(vals.Get("provider")),
		Dataset: strings.TrimSpace(vals.Get("dataset")), Purpose: strings.TrimSpace(vals.Get("purpose")),
		Status: strings.TrimSpace(vals.Get("status")), From: vals.Get("from"), Until: vals.Get("until")}
	if r.Method == http.MethodPost {
		f.PersonalID = strings.TrimSpace(vals.Get("personal_id"))
	}
	d := auditData{HasIndex: true, Form: f, Errors: &formErrors{Fields: map[string]string{}}}
	cx, cancel := ctx(r)
	defer cancel()
	if vals.Get("search") != "" {
		q := index.Query{Scope: scope, Consumer: f.Consumer, Provider: f.Provider, Dataset: f.Dataset, Purpose: f.Purpose, Limit: 100}
		if f.Status != "" {
			if q.Status, err = strconv.Atoi(f.Status); err != nil || q.Status < 100 || q.Status > 599 {
				d.Errors.Fields["status"] = v.T("audit.badstatus")
			}
		}
		for name, dst := range map[string]*time.Time{"from": &q.From, "until": &q.Until} {
			if s := vals.Get(name); s != "" {
				t, perr := time.Parse("2006-01-02T15:04", s)
				if perr != nil {
					t, perr = time.Parse("2006-01-02", s)
				}
				if perr != nil {
					d.Errors.Fields[name] = v.T("form.date")
				}
				*dst = t.UTC()
			}
		}
		if f.PersonalID != "" {
			if !personalID.MatchString(f.PersonalID) {
				d.Errors.Fields["personal_id"] = v.T("audit.badid")
			} else {
				q.Subject = c.cfg.SubjectKey.Subject(f.PersonalID)
			}
		}
		if len(d.Errors.Fields) == 0 {
			if q.Subject != "" {
				if err := c.recordSubjectSearch(r, v, q.Subject); err != nil {
					return err
				}
			}
			page, err := c.cfg.Index.Exchanges(cx, q)
			if errors.Is(err, index.ErrInvalid) {
				d.Errors.General = err.Error()
			} else if err != nil {
				return err
			}
			d.Searched, d.Results, d.More = true, page.Items, page.Next != ""
		}
	}
	if err := c.loadChains(r, scope, &d); err != nil {
		return err
	}
	status := http.StatusOK
	if d.Errors.Any() {
		status = http.StatusBadRequest
	}
	c.render(w, r, v, status, "audit", d)
	return nil
}

func (c *Console) recordSubjectSearch(r *http.Request, v *view, subject string) error {
	p := *v.Principal
	return c.svc.Store().Update(r.Context(), func(tx catalog.Tx) error {
		return tx.AppendTrail(r.Context(), &catalog.TrailEntry{At: c.svc.Now(), Actor: p.Actor(), Role: p.Role, Member: p.Member,
			Action: "audit.subject-search", Object: "subject:" + subject, Outcome: "ok"})
	})
}

// loadChains reads each visible gateway's position and the alerts.
func (c *Console) loadChains(r *http.Request, scope string, d *auditData) error {
	cx, cancel := ctx(r)
	defer cancel()
	alerts, err := c.cfg.Index.Alerts(cx, scope, 0, 200)
	if err != nil {
		return err
	}
	d.Alerts = alerts
	byGateway := map[string]int{}
	for _, a := range alerts {
		byGateway[a.Gateway]++
	}
	gws, err := c.svc.Gateways(cx)
	if err != nil {
		return err
	}
	for _, g := range gws {
		if scope != "" && g.Member != scope {
			continue
		}
		pos, err := c.cfg.Index.Position(cx, g.System)
		if err != nil {
			return err
		}
		d.Chains = append(d.Chains, chainRow{Gateway: g.System, Next: pos.Next, Alerts: byGateway[g.System]})
	}
	return nil
}

// flowWindow is the time the flow view covers, and flowBuckets the number
// of points of its time series.
const (
	flowWindow  = 30 * time.Minute
	flowBuckets = 30
)

// flowsJSON is the flow view's data: the member × member matrix of the
// window and the exchanges per bucket. The page renders it once in HTML and
// the script fetches it again to update.
type flowsJSON struct {
	Members []string     `json:"members"`
	Cells   []index.Flow `json:"cells"`
	Series  []flowPoint  `json:"series"`
	Total   int64        `json:"total"`
	At      time.Time    `json:"at"`
}

type flowPoint struct {
	At        time.Time `json:"at"`
	Exchanges int64     `json:"exchanges"`
	Denials   int64     `json:"denials"`
}

func (c *Console) loadFlows(r *http.Request, scope string) (*flowsJSON, error) {
	cx, cancel := ctx(r)
	defer cancel()
	now := c.svc.Now().Truncate(time.Minute).Add(time.Minute)
	from := now.Add(-flowWindow)
	cells, err := c.cfg.Index.Flows(cx, scope, from, now)
	if err != nil {
		return nil, err
	}
	out := &flowsJSON{Cells: cells, At: c.svc.Now()}
	seen := map[string]bool{}
	for _, f := range cells {
		for _, m := range []string{f.Consumer, f.Provider} {
			if !seen[m] {
				seen[m] = true
				out.Members = append(out.Members, m)
			}
		}
		out.Total += f.Exchanges
	}
	sort.Strings(out.Members)
	step := flowWindow / flowBuckets
	for i := 0; i < flowBuckets; i++ {
		a := from.Add(time.Duration(i) * step)
		fs, err := c.cfg.Index.Flows(cx, scope, a, a.Add(step))
		if err != nil {
			return nil, err
		}
		p := flowPoint{At: a}
		for _, f := range fs {
			p.Exchanges += f.Exchanges
			p.Denials += f.Denials
		}
		out.Series = append(out.Series, p)
	}
	return out, nil
}

// flowsView adds what the HTML table needs to the JSON data.
type flowsView struct {
	HasIndex bool
	Data     *flowsJSON
	JSON     string
	Max      int64
}

// Cell returns the flow from provider to consumer, if any.
func (f flowsView) Cell(consumer, provider string) *index.Flow {
	for i := range f.Data.Cells {
		if f.Data.Cells[i].Consumer == consumer && f.Data.Cells[i].Provider == provider {
			return &f.Data.Cells[i]
		}
	}
	return nil
}

// bar is one bar of the time series drawn in SVG (attributes, not styles,
// so the strict CSP holds).
type bar struct {
	X, Y, H float64
	N       int64
	Denials int64
	At      time.Time
}

// Bars lays the series out in a 300×100 box.
func (f flowsView) Bars() []bar {
	out := make([]bar, 0, len(f.Data.Series))
	for i, p := range f.Data.Series {
		h := 0.0
		if f.Max > 0 {
			h = float64(p.Exchanges) / float64(f.Max) * 95
		}
		out = append(out, bar{X: float64(i) * 10, Y: 100 - h, H: h, N: p.Exchanges, Denials: p.Denials, At: p.At})
	}
	return out
}

func (c *Console) flowsPage(w http.ResponseWriter, r *http.Request, v *view) error {
	scope, err := auditapi.AuditScope(*v.Principal)
	if err != nil {
		return err
	}
	if c.cfg.Index == nil {
		c.render(w, r, v, http.StatusOK, "flows", flowsView{})
		return nil
	}
	d, err := c.loadFlows(r, scope)
	if err != nil {
		return err
	}
	b, err := json.Marshal(d)
	if err != nil {
		return err
	}
	fv := flowsView{HasIndex: true, Data: d, JSON: string(b)}
	for _, p := range d.Series {
		fv.Max = max(fv.Max, p.Exchanges)
	}
	c.render(w, r, v, http.StatusOK, "flows", fv)
	return nil
}

// flowsData answers the flow view's polling script with the same data as
// JSON, under the same session and scope; errors are problem JSON.
func (c *Console) flowsData(w http.ResponseWriter, r *http.Request) {
	s, err := c.session(w, r)
	if err != nil {
		http.Error(w, "session error", http.StatusInternalServerError)
		return
	}
	p, err := c.principal(r.Context(), s)
	if err == nil && p == nil {
		writeProblem(w, r, http.StatusUnauthorized, "unauthenticated", "sign in to the console again")
		return
	}
	if err != nil {
		c.writeError(w, r, err)
		return
	}
	scope, err := auditapi.AuditScope(*p)
	if err != nil {
		c.writeError(w, r, err)
		return
	}
	if c.cfg.Index == nil {
		c.writeError(w, r, errNoIndex)
		return
	}
	d, err := c.loadFlows(r, scope)
	if err != nil {
		c.writeError(w, r, err)
		return
	}
	w.Header().Set("Content-Type", "application/json")
	_ = json.NewEncoder(w).Encode(d)
}
