package console

import (
	"context"
	"fmt"
	"net/http"
	"sort"
	"strings"
	"time"

	"github.com/lienthong/lienthong/audit/index"
	"github.com/lienthong/lienthong/catalog"
	"github.com/lienthong/lienthong/controlplane/auth"
	"github.com/lienthong/lienthong/controlplane/service"
	"github.com/lienthong/lienthong/controlplane/xds/server"
)

// How early the console warns: an assessment lapsing within assessmentSoon,
// a certificate expiring within certSoon.
const (
	assessmentSoon = 30 * 24 * time.Hour
	certSoon       = 14 * 24 * time.Hour
)

// systemRow is a system with how urgent its assessment is.
type systemRow struct {
	service.SystemView
	Level string // "ok", "warn", "bad"
	Days  int
}

type certRow struct {
	service.CertificateView
	Level string
	Days  int
}

type securityData struct {
	Systems []systemRow
	Certs   []certRow
}

// assessmentLevel grades a system's assessment at now.
func assessmentLevel(s service.SystemView, now time.Time) (string, int) {
	if !s.Connectivity.Connectable || s.Assessment == nil {
		return "bad", 0
	}
	left := s.Assessment.ValidUntil.Sub(now)
	days := int(left.Hours() / 24)
	if left < assessmentSoon {
		return "warn", days
	}
	return "ok", days
}

// certLevel grades a certificate at now. It warns when less than a third
// of its lifetime is left (at most certSoon before expiry): gateways renew
// earlier than that, so a warning means a renewal did not happen, however
// short the lifetimes the platform issues. A certificate superseded by a
// newer one of the same system is "gone" as far as warnings go.
func certLevel(c service.CertificateView, now time.Time, superseded bool) (string, int) {
	days := int(c.NotAfter.Sub(now).Hours() / 24)
	soon := min(certSoon, c.NotAfter.Sub(c.NotBefore)/3)
	switch {
	case c.Status != service.CertificateValid || superseded:
		return "gone", days
	case c.NotAfter.Sub(now) < soon:
		return "warn", days
	}
	return "ok", days
}

// loadSecurity reads the systems and certificates p may see, most urgent first.
func (c *Console) loadSecurity(cx context.Context, p auth.Principal) (*securityData, error) {
	now := c.svc.Now()
	systems, err := c.svc.Systems(cx, catalog.SystemFilter{Member: p.ReadScope()})
	if err != nil {
		return nil, err
	}
	certs, err := c.svc.Certificates(cx, p, catalog.CertificateFilter{})
	if err != nil {
		return nil, err
	}
	out := &securityData{}
	for _, s := range systems {
		l, d := assessmentLevel(s, now)
		out.Systems = append(out.Systems, systemRow{SystemView: s, Level: l, Days: d})
	}
	newest := map[string]time.Time{}
	for _, ct := range certs {
		if ct.Status == service.CertificateValid && ct.NotAfter.After(newest[ct.System]) {
			newest[ct.System] = ct.NotAfter
		}
	}
	for _, ct := range certs {
		l, d := certLevel(ct, now, ct.NotAfter.Before(newest[ct.System]))
		out.Certs = append(out.Certs, certRow{CertificateView: ct, Level: l, Days: d})
	}
	rank := map[string]int{"bad": 0, "warn": 1, "ok": 2, "gone": 3}
	sort.SliceStable(out.Systems, func(i, j int) bool { return rank[out.Systems[i].Level] < rank[out.Systems[j].Level] })
	sort.SliceStable(out.Certs, func(i, j int) bool {
		a, b := out.Certs[i], out.Certs[j]
		if rank[a.Level] != rank[b.Level] {
			return rank[a.Level] < rank[b.Level]
		}
		return a.NotAfter.Before(b.NotAfter)
	})
	return out, nil
}

func (c *Console) securityPage(w http.ResponseWriter, r *http.Request, v *view) error {
	cx, cancel := ctx(r)
	defer cancel()
	d, err := c.loadSecurity(cx, *v.Principal)
	if err != nil {
		return err
	}
	c.render(w, r, v, http.StatusOK, "security", d)
	return nil
}

// warnings are the banner lines every staff page shows: a system whose
// assessment lapsed or lapses soon, a certificate expiring soon.
func (c *Console) warnings(r *http.Request, v *view) []warning {
	cx, cancel := ctx(r)
	defer cancel()
	d, err := c.loadSecurity(cx, *v.Principal)
	if err != nil {
		c.log.Error("console: warnings", "error", err.Error())
		return nil
	}
	var out []warning
	for _, s := range d.Systems {
		switch s.Level {
		case "bad":
			reason := s.Connectivity.Reason
			out = append(out, warning{Level: "bad", Text: fmt.Sprintf(v.T("warn.notconnectable"), s.ID, reason)})
		case "warn":
			out = append(out, warning{Level: "warn", Text: fmt.Sprintf(v.T("warn.assessment"), s.ID, s.Days)})
		}
	}
	for _, ct := range d.Certs {
		if ct.Level == "warn" {
			out = append(out, warning{Level: "warn", Text: fmt.Sprintf(v.T("warn.cert"), ct.Serial, ct.System, ct.Days)})
		}
	}
	return out
}

// gatewayRow is one gateway: its registration, its last pull (sent and
// held revision), staleness, certificate expiry and audit shipping.
type gatewayRow struct {
	catalog.Gateway
	Pull     *service.GatewayPull
	Age      string
	Stale    bool
	Lagging  bool
	CertDays int
	CertSoon bool
	// Audit says how far the gateway's audit shipping has got ("" without
	// an index), Reported when it last reported its log head, and
	// ShippingBehind flags a lag that grows or stands unshipped.
	Audit          string
	Reported       string
	ShippingBehind bool
}

type gatewaysData struct {
	Gateways []gatewayRow
	Envoy    []envoyRow
	HasXDS   bool
}

type envoyRow struct {
	server.NodeStatus
	Lagging bool
}

// stalenessLimit is the gateway's default allowed staleness (gateway
// config max_staleness): past it, a gateway denies every exchange, so the
// console flags it.
const stalenessLimit = 10 * time.Minute

func (c *Console) gatewaysPage(w http.ResponseWriter, r *http.Request, v *view) error {
	cx, cancel := ctx(r)
	defer cancel()
	now := c.svc.Now()
	gws, err := c.svc.Gateways(cx)
	if err != nil {
		return err
	}
	pulls := map[string]service.GatewayPull{}
	for _, p := range c.svc.GatewayPulls(*v.Principal) {
		pulls[p.Member] = p
	}
	certs, err := c.svc.Certificates(cx, *v.Principal, catalog.CertificateFilter{})
	if err != nil {
		return err
	}
	shipping := map[string]index.Shipping{}
	if c.cfg.Index != nil {
		all, err := c.cfg.Index.ShippingStatus(cx)
		if err != nil {
			return err
		}
		for _, sh := range all {
			shipping[sh.Gateway] = sh
		}
	}
	scope := v.Principal.ReadScope()
	out := gatewaysData{HasXDS: c.cfg.EnvoyNodes != nil}
	for _, g := range gws {
		if scope != "" && g.Member != scope {
			continue
		}
		row := gatewayRow{Gateway: g, CertDays: -1}
		if p, ok := pulls[g.Member]; ok {
			row.Pull = &p
			age := now.Sub(p.At)
			row.Age = age.Round(time.Second).String()
			row.Stale = age > stalenessLimit
			row.Lagging = p.Held != p.Sent
		} else {
			row.Stale = true
		}
		var latest *service.CertificateView
		for i := range certs {
			ct := &certs[i]
			if ct.System == g.System && ct.Status == service.CertificateValid && (latest == nil || ct.NotAfter.After(latest.NotAfter)) {
				latest = ct
			}
		}
		if latest != nil {
			l, days := certLevel(*latest, now, false)
			row.CertDays, row.CertSoon = days, l == "warn"
		}
		if sh, ok := shipping[g.System]; ok {
			row.Audit, row.Reported = shippingText(v, sh, now)
			row.ShippingBehind = sh.Behind(now)
		} else if c.cfg.Index != nil {
			row.Audit = fmt.Sprintf(v.T("gateways.shippednohead"), 0, v.T("gateways.never"))
		}
		out.Gateways = append(out.Gateways, row)
	}
	if c.cfg.EnvoyNodes != nil {
		for _, n := range c.cfg.EnvoyNodes() {
			if scope != "" && !nodeOf(n.Node, scope) {
				continue
			}
			row := envoyRow{NodeStatus: n}
			for _, t := range n.Types {
				row.Lagging = row.Lagging || t.Sent != t.Acked || t.Nacked != ""
			}
			out.Envoy = append(out.Envoy, row)
		}
	}
	c.render(w, r, v, http.StatusOK, "gateways", out)
	return nil
}

// shippingText says how far a gateway's shipping has got at now: "shipped
// up to N of M (lag K records, last shipment T ago)", and when its shipper
// last reported the log head.
func shippingText(v *view, sh index.Shipping, now time.Time) (audit, reported string) {
	ago := func(t time.Time) string {
		if t.IsZero() {
			return v.T("gateways.never")
		}
		return fmt.Sprintf(v.T("gateways.ago"), now.Sub(t).Round(time.Second))
	}
	if sh.HeadAt.IsZero() {
		return fmt.Sprintf(v.T("gateways.shippednohead"), sh.Shipped, ago(sh.ShippedAt)), ""
	}
	return fmt.Sprintf(v.T("gateways.shipped"), sh.Shipped, sh.Head, sh.Lag, ago(sh.ShippedAt)),
		fmt.Sprintf(v.T("gateways.reported"), now.Sub(sh.HeadAt).Round(time.Second))
}

// nodeOf reports whether an Envoy node id belongs to member: node ids name
// the member's gateway system (deploy/envoy), so its code is in the id.
func nodeOf(node, member string) bool { return strings.Contains(node, member) }
