package auditapi_test

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/lienthong/lienthong/audit"
	"github.com/lienthong/lienthong/audit/index"
	"github.com/lienthong/lienthong/audit/index/indextest"
	"github.com/lienthong/lienthong/catalog"
	"github.com/lienthong/lienthong/catalog/sqlstore"
	"github.com/lienthong/lienthong/controlplane/api"
	"github.com/lienthong/lienthong/controlplane/auditapi"
	"github.com/lienthong/lienthong/controlplane/client"
	"github.com/lienthong/lienthong/controlplane/service"
	"github.com/lienthong/lienthong/internal/problem"
)

const (
	mps        = "000.00.00.G01" // provider: Ministry of Public Security
	vss        = "000.00.00.G14" // consumer: Social Security
	hcm        = "000.00.79.H29" // consumer: Hồ Chí Minh City
	population = "VN:GOV:000.00.00.G01:CSDLDC"
	insurance  = "VN:GOV:000.00.00.G14:BHXH"
	portal     = "VN:GOV:000.00.79.H29:DVC"
	gwMPS      = "VN:GOV:000.00.00.G01:GW"
	gwVSS      = "VN:GOV:000.00.00.G14:GW"

	alice = "001201012345"
)

// fixture is the management API with the audit routes over real TLS and a
// real SQLite catalog and index.
type fixture struct {
	t     *testing.T
	store catalog.Store
	srv   *httptest.Server
	admin *client.Client
	key   index.SubjectKey
}

func newFixture(t *testing.T) *fixture {
	t.Helper()
	ctx := context.Background()
	st, err := sqlstore.OpenSQLite(ctx, filepath.Join(t.TempDir(), "catalog.db"))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { st.Close() })
	log := slog.New(slog.NewTextHandler(io.Discard, nil))
	ix, err := index.New(st.DB(), st.Dialect(), index.WithLogger(log))
	if err != nil {
		t.Fatal(err)
	}
	key, err := index.LoadOrCreateSubjectKey(filepath.Join(t.TempDir(), index.SubjectKeyFile))
	if err != nil {
		t.Fatal(err)
	}
	svc := service.New(st)
	srv := httptest.NewTLSServer(api.New(svc, log, auditapi.New(ix, key, log, st).Routes()...))
	t.Cleanup(srv.Close)
	secret, err := svc.Bootstrap(ctx)
	if err != nil {
		t.Fatal(err)
	}
	f := &fixture{t: t, srv: srv, key: key, store: st}
	f.admin = f.client(secret)
	for _, m := range []string{mps, vss, hcm} {
		if _, err := f.admin.AddMember(ctx, client.NewMember{Code: m, Name: "member " + m}); err != nil {
			t.Fatal(err)
		}
	}
	return f
}

func (f *fixture) client(token string) *client.Client {
	hc := *f.srv.Client()
	hc.Transport = newDocumented(f.t, f.srv.URL, hc.Transport)
	return client.NewWithHTTP(f.srv.URL, token, &hc)
}

func (f *fixture) token(role catalog.Role, member string) *client.Client {
	f.t.Helper()
	out, err := f.admin.CreateToken(context.Background(), client.NewToken{Name: string(role) + " " + member, Role: role, Member: member})
	if err != nil {
		f.t.Fatal(err)
	}
	return f.client(out.Token)
}

func wantProblem(t *testing.T, err error, status int, kind string) *problem.Problem {
	t.Helper()
	var p *problem.Problem
	if !errors.As(err, &p) {
		t.Fatalf("err = %v, want a %d problem", err, status)
	}
	if p.Status != status || (kind != "" && p.Type != problem.TypePrefix+kind) {
		t.Fatalf("got %d %s (%s), want %d %s", p.Status, p.Type, p.Detail, status, kind)
	}
	return p
}

func TestShippingOverHTTPS(t *testing.T) {
	f := newFixture(t)
	ctx := context.Background()
	gw := f.token(catalog.RoleMemberAdmin, mps) // the MPS gateway's token
	l := indextest.New(t, gwMPS)
	for i := 0; i < 6; i++ {
		l.Record(indextest.Outcome(fmt.Sprintf("x-%d", i), insurance, population, "", time.Now()))
	}
	cp := l.Checkpoint()

	// Another member's gateway may not act for this one, nor may an auditor.
	for name, c := range map[string]*client.Client{"other gateway": f.token(catalog.RoleMemberAdmin, vss), "auditor": f.token(catalog.RoleAuditor, mps)} {
		if err := c.EnrolAuditKey(ctx, gwMPS, l.Public()); err == nil {
			t.Fatalf("%s enrolled a key for %s", name, gwMPS)
		} else {
			wantProblem(t, err, http.StatusForbidden, "forbidden")
		}
		_, err := c.ShipAudit(ctx, gwMPS, l.Lines)
		wantProblem(t, err, http.StatusForbidden, "forbidden")
	}

	if err := gw.EnrolAuditKey(ctx, gwMPS, l.Public()); err != nil {
		t.Fatal(err)
	}
	if pos, err := gw.AuditPosition(ctx, gwMPS); err != nil || pos.Next != 1 {
		t.Fatalf("position before shipping: %+v %v", pos, err)
	}
	if next, err := gw.ShipAudit(ctx, gwMPS, l.Lines[:4]); err != nil || next != 5 {
		t.Fatalf("first batch: next %d, %v", next, err)
	}
	// A resend overlapping what is held, then the rest.
	if next, err := gw.ShipAudit(ctx, gwMPS, l.Lines[2:]); err != nil || next != uint64(len(l.Lines))+1 {
		t.Fatalf("second batch: next %d, %v", next, err)
	}
	if err := gw.SendCheckpoint(ctx, gwMPS, cp); err != nil {
		t.Fatalf("the checkpoint already in the log, posted again: %v", err)
	}
	pos, err := gw.AuditPosition(ctx, gwMPS)
	if err != nil || pos.Next != uint64(len(l.Lines))+1 || pos.Head != audit.EntryHash(l.Lines[len(l.Lines)-1]) {
		t.Fatalf("position %+v %v", pos, err)
	}

	// A gap and a fork are refused with their problem types and raise alerts.
	r := indextest.Outcome("x-20", insurance, population, "", time.Now())
	skipped, _ := json.Marshal(audit.Entry{Seq: 20, Prev: audit.EntryHash([]byte("entry 19")), Kind: audit.KindRecord, Record: &r})
	_, err = gw.ShipAudit(ctx, gwMPS, [][]byte{skipped})
	wantProblem(t, err, http.StatusConflict, "audit-gap")
	_, err = gw.ShipAudit(ctx, gwMPS, [][]byte{append(append([]byte(nil), l.Lines[1]...), ' ')})
	wantProblem(t, err, http.StatusConflict, "audit-fork")
	bad := l.SignedCheckpoint()
	bad.Signature[3] ^= 1
	wantProblem(t, gw.SendCheckpoint(ctx, gwMPS, bad), http.StatusConflict, "audit-checkpoint")

	// The MPS auditor and the operator see the alerts; Social Security's do not.
	for name, c := range map[string]*client.Client{"operator": f.admin, "mps auditor": f.token(catalog.RoleAuditor, mps)} {
		as, err := c.AuditAlerts(ctx, 0)
		if err != nil || len(as) != 3 || as[0].Kind != index.AlertGap || as[1].Kind != index.AlertFork || as[2].Kind != index.AlertCheckpoint {
			t.Fatalf("%s sees alerts %+v (%v)", name, as, err)
		}
	}
	if as, err := f.token(catalog.RoleAuditor, vss).AuditAlerts(ctx, 0); err != nil || len(as) != 0 {
		t.Fatalf("vss auditor sees alerts %+v (%v)", as, err)
	}
	if _, err := gw.AuditAlerts(ctx, 0); err == nil {
		t.Fatal("a gateway token reads alerts")
	}

	// A new checkpoint key: the gateway cannot swap it in; the operator can.
	rotated := indextest.New(t, gwMPS)
	wantProblem(t, gw.EnrolAuditKey(ctx, gwMPS, rotated.Public()), http.StatusConflict, "audit-key")
	if err := f.admin.EnrolAuditKey(ctx, gwMPS, rotated.Public()); err != nil {
		t.Fatalf("the operator's rotation: %v", err)
	}
}

// federation ships two gateways' logs: MPS (provider side) answered Social
// Security and the city portal; Social Security's gateway (consumer side)
// logged its own view of its exchanges.
func (f *fixture) federation() {
	f.t.Helper()
	ctx := context.Background()
	base := time.Date(2026, 11, 20, 8, 0, 0, 0, time.UTC)
	prov := indextest.New(f.t, gwMPS)
	cons := indextest.New(f.t, gwVSS)
	for i := 0; i < 30; i++ {
		consumer := insurance
		if i%3 == 2 {
			consumer = portal
		}
		subject := f.key.Subject(fmt.Sprintf("0012010%05d", i))
		if i%10 == 0 {
			subject = f.key.Subject(alice)
		}
		r := indextest.Outcome(fmt.Sprintf("x-%02d", i), consumer, population, subject, base.Add(time.Duration(i)*time.Minute))
		if i%5 == 4 {
			r.Status, r.Fields, r.Bytes, r.Reasons = 403, nil, 120, []string{"no-grant"}
		}
		prov.Record(r)
		if consumer == insurance {
			c := r
			c.Side = "consumer"
			cons.Record(c)
		}
	}
	prov.Checkpoint()
	cons.Checkpoint()
	for _, l := range []*indextest.Log{prov, cons} {
		gw := f.token(catalog.RoleMemberAdmin, index.GatewayMember(l.Gateway))
		if err := gw.EnrolAuditKey(ctx, l.Gateway, l.Public()); err != nil {
			f.t.Fatal(err)
		}
		if _, err := gw.ShipAudit(ctx, l.Gateway, l.Lines); err != nil {
			f.t.Fatal(err)
		}
	}
}

// all pages through a query and returns every item.
func all(t *testing.T, c *client.Client, q auditapi.ExchangeQuery) []index.Exchange {
	t.Helper()
	var out []index.Exchange
	for round := 0; round < 100; round++ {
		p, err := c.AuditExchanges(context.Background(), q)
		if err != nil {
			t.Fatal(err)
		}
		out = append(out, p.Items...)
		if p.Next == "" {
			return out
		}
		q.Cursor = p.Next
	}
	t.Fatal("paging did not end")
	return nil
}

func TestAuditorsSeeTheirMembersExchangesOnly(t *testing.T) {
	f := newFixture(t)
	f.federation()
	ctx := context.Background()

	cases := []struct {
		who     *client.Client
		name    string
		records int // outcome records visible (both sides' records of VSS exchanges)
		member  string
	}{
		{f.admin, "operator", 30 + 20, ""},
		{f.token(catalog.RoleAuditor, mps), "mps auditor", 30 + 20, mps},
		{f.token(catalog.RoleAuditor, vss), "vss auditor", 20 + 20, vss},
		{f.token(catalog.RoleAuditor, hcm), "hcm auditor", 10, hcm},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			items := all(t, c.who, auditapi.ExchangeQuery{Limit: 7})
			if len(items) != c.records {
				t.Fatalf("%d records, want %d", len(items), c.records)
			}
			seen := map[string]bool{}
			for i, x := range items {
				key := fmt.Sprintf("%s/%d", x.Gateway, x.Seq)
				if seen[key] {
					t.Fatalf("record %s served twice across pages", key)
				}
				seen[key] = true
				if c.member != "" && !strings.Contains(x.Consumer, c.member) && !strings.Contains(x.Provider, c.member) {
					t.Fatalf("%s sees exchange %s between %s and %s", c.name, x.ExchangeID, x.Consumer, x.Provider)
				}
				if i > 0 && x.Time.After(items[i-1].Time) {
					t.Fatal("not newest first")
				}
			}
			// Asking for another member's exchanges by name yields nothing more.
			if c.member == hcm {
				if got := all(t, c.who, auditapi.ExchangeQuery{Consumer: insurance}); len(got) != 0 {
					t.Fatalf("hcm auditor reads %d of Social Security's exchanges", len(got))
				}
			}
		})
	}

	t.Run("filters", func(t *testing.T) {
		vssAud := f.token(catalog.RoleAuditor, vss)
		if got := all(t, vssAud, auditapi.ExchangeQuery{Status: 403}); len(got) != 2*4 {
			t.Fatalf("vss denials: %d records", len(got))
		}
		byID := all(t, f.admin, auditapi.ExchangeQuery{PersonalID: alice})
		if len(byID) != 3+2 { // x-00, x-10, x-20 at MPS; x-00, x-10 at VSS
			t.Fatalf("records about alice: %d", len(byID))
		}
		// The search is on record, under the subject's HMAC only.
		trail, err := f.store.ListTrail(ctx, catalog.TrailFilter{})
		if err != nil {
			t.Fatal(err)
		}
		searched := false
		for _, e := range trail {
			b, _ := json.Marshal(e)
			if strings.Contains(string(b), alice) {
				t.Fatalf("the trail holds the personal ID: %s", b)
			}
			searched = searched || (e.Action == "audit.subject-search" && e.Object == "subject:"+f.key.Subject(alice))
		}
		if !searched {
			t.Fatal("the search for a citizen is not in the trail")
		}
		from := time.Date(2026, 11, 20, 8, 10, 0, 0, time.UTC)
		ranged := all(t, f.admin, auditapi.ExchangeQuery{Provider: population, From: from, Until: from.Add(5 * time.Minute)})
		for _, x := range ranged {
			if x.Time.Before(from) || !x.Time.Before(from.Add(5*time.Minute)) {
				t.Fatalf("record at %s outside the range", x.Time)
			}
		}
		if len(ranged) == 0 {
			t.Fatal("nothing in range")
		}
		// A personal ID never travels in a URL.
		var out json.RawMessage
		err = f.admin.Do(ctx, http.MethodGet, "/v1/audit/exchanges?personalId="+alice, nil, &out)
		wantProblem(t, err, http.StatusBadRequest, "invalid-input")
		err = f.admin.Do(ctx, http.MethodGet, "/v1/audit/exchanges?cursor=bm9wZQ", nil, &out)
		wantProblem(t, err, http.StatusBadRequest, "invalid-input")
	})

	t.Run("roles without audit rights", func(t *testing.T) {
		for _, role := range []catalog.Role{catalog.RoleIntegrator, catalog.RoleApprover, catalog.RoleMemberAdmin} {
			_, err := f.token(role, vss).AuditExchanges(ctx, auditapi.ExchangeQuery{})
			wantProblem(t, err, http.StatusForbidden, "forbidden")
		}
	})
}

func TestFlowMatrixCountsEachExchangeOnce(t *testing.T) {
	f := newFixture(t)
	f.federation()
	ctx := context.Background()
	m, err := f.admin.AuditFlows(ctx, time.Time{}, time.Time{})
	if err != nil {
		t.Fatal(err)
	}
	// 30 exchanges: 20 from Social Security (4 denied), 10 from the city (2 denied).
	want := []index.Flow{
		{Consumer: vss, Provider: mps, Exchanges: 20, Records: 16, Bytes: 16*512 + 4*120, Denials: 4},
		{Consumer: hcm, Provider: mps, Exchanges: 10, Records: 8, Bytes: 8*512 + 2*120, Denials: 2},
	}
	got := map[string]index.Flow{}
	for _, c := range m.Items {
		got[c.Consumer] = c
	}
	if len(m.Items) != 2 {
		t.Fatalf("matrix %+v", m.Items)
	}
	for _, w := range want {
		if got[w.Consumer] != w {
			t.Errorf("flow %s → %s = %+v, want %+v", w.Provider, w.Consumer, got[w.Consumer], w)
		}
	}
	// The city's auditor sees only its own row; a period narrows it.
	hcmAud := f.token(catalog.RoleAuditor, hcm)
	m, err = hcmAud.AuditFlows(ctx, time.Date(2026, 11, 20, 8, 0, 0, 0, time.UTC), time.Date(2026, 11, 20, 8, 15, 0, 0, time.UTC))
	if err != nil || len(m.Items) != 1 || m.Items[0].Consumer != hcm || m.Items[0].Exchanges != 5 {
		t.Fatalf("hcm matrix %+v %v", m.Items, err)
	}
}

func TestExportWritesJSONLines(t *testing.T) {
	f := newFixture(t)
	f.federation()
	var buf bytes.Buffer
	n, err := f.token(catalog.RoleAuditor, hcm).ExportAudit(context.Background(), auditapi.ExchangeQuery{}, &buf)
	if err != nil || n != 10 {
		t.Fatalf("exported %d lines, %v", n, err)
	}
	for _, line := range bytes.Split(bytes.TrimSpace(buf.Bytes()), []byte("\n")) {
		var x index.Exchange
		if err := json.Unmarshal(line, &x); err != nil || x.Consumer != portal {
			t.Fatalf("line %s: %+v %v", line, x, err)
		}
	}
	if _, err := f.token(catalog.RoleIntegrator, hcm).ExportAudit(context.Background(), auditapi.ExchangeQuery{}, &buf); err == nil {
		t.Fatal("an integrator exported the audit index")
	}
}

// The feed gives a follower every record it may see once, page by page,
// and a cursor to resume from; a role without audit rights is refused, and
// so is a cursor the index did not issue.
func TestFeedFollowsEveryRecordOnce(t *testing.T) {
	f := newFixture(t)
	f.federation()
	ctx := context.Background()
	follow := func(c *client.Client) map[string]index.Exchange {
		got := map[string]index.Exchange{}
		cursor := ""
		for round := 0; ; round++ {
			if round > 100 {
				t.Fatal("the feed does not end")
			}
			var page index.FeedPage
			if err := c.Do(ctx, http.MethodGet, "/v1/audit/feed?limit=7&cursor="+cursor, nil, &page); err != nil {
				t.Fatal(err)
			}
			if len(page.Items) == 0 {
				return got
			}
			for _, x := range page.Items {
				key := fmt.Sprintf("%s/%d", x.Gateway, x.Seq)
				if _, twice := got[key]; twice {
					t.Fatalf("record %s given twice", key)
				}
				got[key] = x
			}
			cursor = page.Cursor
		}
	}
	if all := follow(f.admin); len(all) != 30+20 {
		t.Fatalf("the operator followed %d records, want 50", len(all))
	}
	city := follow(f.token(catalog.RoleAuditor, hcm))
	if len(city) != 10 {
		t.Fatalf("the city's auditor followed %d records, want 10", len(city))
	}
	for _, x := range city {
		if x.Consumer != portal {
			t.Fatalf("the city's auditor was given %+v", x)
		}
	}
	var out json.RawMessage
	wantProblem(t, f.token(catalog.RoleIntegrator, hcm).Do(ctx, http.MethodGet, "/v1/audit/feed", nil, &out), http.StatusForbidden, "forbidden")
	wantProblem(t, f.admin.Do(ctx, http.MethodGet, "/v1/audit/feed?cursor=bm9wZQ", nil, &out), http.StatusBadRequest, "invalid-input")
}
