package citizen_test

import (
	"context"
	"encoding/json"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"path/filepath"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/lienthong/lienthong/audit"
	"github.com/lienthong/lienthong/audit/index"
	"github.com/lienthong/lienthong/audit/index/indextest"
	"github.com/lienthong/lienthong/catalog"
	"github.com/lienthong/lienthong/catalog/sqlstore"
	"github.com/lienthong/lienthong/controlplane/api"
	"github.com/lienthong/lienthong/controlplane/citizen"
	"github.com/lienthong/lienthong/controlplane/service"
	"github.com/lienthong/lienthong/internal/oidctest"
	"github.com/lienthong/lienthong/internal/problem"
)

const (
	mps        = "000.00.00.G01"
	vss        = "000.00.00.G14"
	police     = "000.00.00.G02"
	population = "VN:GOV:000.00.00.G01:CSDLDC"
	insurance  = "VN:GOV:000.00.00.G14:BHXH"
	investig   = "VN:GOV:000.00.00.G02:CSDT"
	gateway    = "VN:GOV:000.00.00.G01:GW"
	consumerGW = "VN:GOV:000.00.00.G14:GW"
	policeGW   = "VN:GOV:000.00.00.G02:GW"

	alice = "001201012345" // born in Hà Nội in 2001, female
	bob   = "079099054321" // born in Hồ Chí Minh City in 1999, male
	carol = "048305000111" // nothing was read about her
)

// trackerFixture is the tracker over HTTPS, a real SQLite catalog and index
// holding a shipped, chained log, and a local OIDC issuer over HTTPS.
type trackerFixture struct {
	t      *testing.T
	iss    *oidctest.Issuer
	srv    *httptest.Server
	store  catalog.Store
	offset atomic.Int64
	// discloseAfter is the date of the investigation grant.
	discloseAfter time.Time
}

func newTrackerFixture(t *testing.T) *trackerFixture {
	t.Helper()
	ctx := context.Background()
	f := &trackerFixture{t: t, iss: oidctest.New(t)}
	now := func() time.Time { return time.Now().Add(time.Duration(f.offset.Load())) }
	st, err := sqlstore.OpenSQLite(ctx, filepath.Join(t.TempDir(), "catalog.db"))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { st.Close() })
	f.store = st
	f.discloseAfter = time.Now().Add(90 * 24 * time.Hour).UTC().Truncate(time.Second)
	f.catalog(ctx)

	ix, err := index.New(st.DB(), st.Dialect())
	if err != nil {
		t.Fatal(err)
	}
	key, err := index.LoadOrCreateSubjectKey(filepath.Join(t.TempDir(), index.SubjectKeyFile))
	if err != nil {
		t.Fatal(err)
	}
	f.ship(ctx, ix, key)

	v, err := citizen.NewVerifier(citizen.Config{Issuer: f.iss.URL, ClientID: f.iss.ClientID, HTTPClient: f.iss.Client, Now: now})
	if err != nil {
		t.Fatal(err)
	}
	log := slog.New(slog.NewTextHandler(io.Discard, nil))
	tr := citizen.NewTracker(v, key, ix, st, now, log)
	f.srv = httptest.NewTLSServer(api.New(service.New(st), log, tr.Route()))
	t.Cleanup(f.srv.Close)
	return f
}

// catalog holds the members, systems and the two grants the exchanges ran
// under: an ordinary one, and an investigation's that defers disclosure.
func (f *trackerFixture) catalog(ctx context.Context) {
	now := time.Now().UTC()
	err := f.store.Update(ctx, func(tx catalog.Tx) error {
		for _, m := range []string{mps, vss, police} {
			if err := tx.CreateMember(ctx, &catalog.Member{Code: m, Name: m, CreatedAt: now}); err != nil {
				return err
			}
		}
		for _, s := range []string{population, insurance, investig} {
			if err := tx.CreateSystem(ctx, &catalog.System{ID: s, Member: strings.Split(s, ":")[2], Name: s, SecurityLevel: 3, CreatedAt: now}); err != nil {
				return err
			}
		}
		grant := func(id, consumer string, basis catalog.LegalBasis, purpose catalog.Purpose) *catalog.Grant {
			return &catalog.Grant{ID: id, RequestID: "req-" + id, Consumer: consumer, Provider: population, Dataset: "population",
				Fields: []catalog.GrantedField{{Path: "fullName"}}, Purposes: []catalog.Purpose{purpose}, LegalBasis: basis,
				Modes: []catalog.Mode{catalog.ModeQuery}, ValidFrom: now, ValidUntil: now.Add(30 * 24 * time.Hour),
				State: catalog.GrantActive, ApprovedBy: "test", CreatedAt: now}
		}
		if err := tx.CreateGrant(ctx, grant("grant-bhyt", insurance, catalog.LegalBasis{Reference: "Nghị định 13/2023/NĐ-CP, Điều 17"},
			catalog.Purpose{Code: "1.001234", Text: "cấp thẻ BHYT"})); err != nil {
			return err
		}
		return tx.CreateGrant(ctx, grant("grant-investigation", investig, catalog.LegalBasis{Reference: "Bộ luật Tố tụng hình sự, Điều 88", DiscloseAfter: &f.discloseAfter},
			catalog.Purpose{Code: "2.000001", Text: "điều tra vụ án"}))
	})
	if err != nil {
		f.t.Fatal(err)
	}
}

// ship writes three gateways' chained logs and ships them to the index: the
// provider's (MPS), and the consumer side's of Social Insurance and of the
// police, whose outcomes of the same exchanges the tracker must not repeat.
func (f *trackerFixture) ship(ctx context.Context, ix *index.SQLStore, key index.SubjectKey) {
	base := time.Now().Add(-time.Hour).UTC()
	type rec struct {
		id, side, consumer, grant, purpose, who string
		minute, status                          int
		reasons, fields                         []string
	}
	logs := map[string][]rec{
		gateway: {
			{"x-alice-1", "provider", insurance, "grant-bhyt", "1.001234", alice, 1, 200, []string{"granted"}, []string{"fullName", "dateOfBirth"}},
			{"x-bob-1", "provider", insurance, "grant-bhyt", "1.001234", bob, 2, 200, nil, []string{"fullName"}},
			{"x-alice-investigation", "provider", investig, "grant-investigation", "2.000001", alice, 3, 200, nil, []string{"fullName", "permanentResidence"}},
			{"x-alice-denied", "provider", insurance, "", "1.009999", alice, 4, 403, []string{"no_grant"}, nil},
			{"x-alice-2", "provider", insurance, "grant-bhyt", "1.001234", alice, 5, 200, nil, []string{"fullName"}},
			{"x-alice-partial", "provider", insurance, "grant-bhyt", "1.001234", alice, 6, 200, []string{"granted", "fields_withheld"}, []string{"fullName"}},
			{"x-alice-police-refused", "provider", investig, "", "2.000001", alice, 7, 403, []string{"field_not_granted"}, nil},
		},
		consumerGW: {
			// The consumer side's outcomes of exchanges the provider also
			// logged: the tracker shows the provider's.
			{"x-alice-1", "consumer", insurance, "", "1.001234", alice, 1, 200, nil, []string{"fullName", "dateOfBirth"}},
			{"x-alice-2", "consumer", insurance, "", "1.001234", alice, 5, 200, nil, []string{"fullName"}},
			{"x-alice-partial", "consumer", insurance, "", "1.001234", alice, 6, 200, []string{"fields_withheld"}, []string{"fullName"}},
			// Only the consumer side knows this one: the provider was
			// unreachable.
			{"x-alice-unreachable", "consumer", insurance, "", "1.001234", alice, 8, 502, nil, nil},
		},
		policeGW: {
			// The police gateway's record names no grant (a consumer
			// gateway does not decide), and the provider's record has not
			// arrived: it must stay hidden until the investigation's date.
			{"x-alice-investigation-2", "consumer", investig, "", "2.000001", alice, 10, 200, nil, []string{"fullName"}},
		},
	}
	for gw, recs := range logs {
		l := indextest.New(f.t, gw)
		for _, r := range recs {
			// An intent precedes each outcome, as in a gateway's log;
			// the tracker lists outcomes only.
			l.Record(audit.Record{Time: base.Add(time.Duration(r.minute) * time.Minute), ExchangeID: r.id, Side: r.side,
				Phase: audit.Intent, Consumer: r.consumer, Provider: population, Dataset: "population", Mode: "query",
				Purpose: r.purpose, Subject: key.Subject(r.who), Fields: r.fields, GrantID: r.grant})
			l.Record(audit.Record{Time: base.Add(time.Duration(r.minute) * time.Minute), ExchangeID: r.id, Side: r.side,
				Phase: audit.Outcome, Consumer: r.consumer, Provider: population, Dataset: "population", Mode: "query",
				Purpose: r.purpose, Subject: key.Subject(r.who), Fields: r.fields, GrantID: r.grant, Reasons: r.reasons,
				Status: r.status, Bytes: 300})
		}
		l.Checkpoint()
		if err := ix.EnrolKey(ctx, gw, l.Public(), false); err != nil {
			f.t.Fatal(err)
		}
		if _, err := ix.Ingest(ctx, gw, l.Lines); err != nil {
			f.t.Fatal(err)
		}
	}
}

// get asks the tracker with token and decodes the page, or the problem.
func (f *trackerFixture) get(token, query string) (index.Page[citizen.Entry], *problem.Problem) {
	f.t.Helper()
	req, err := http.NewRequest(http.MethodGet, f.srv.URL+"/v1/citizen/disclosures"+query, nil)
	if err != nil {
		f.t.Fatal(err)
	}
	if token != "" {
		req.Header.Set("Authorization", "Bearer "+token)
	}
	resp, err := f.srv.Client().Do(req)
	if err != nil {
		f.t.Fatal(err)
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(resp.Body)
	if resp.StatusCode != http.StatusOK {
		if ct := resp.Header.Get("Content-Type"); ct != problem.ContentType {
			f.t.Fatalf("status %d with content type %q, want problem JSON: %s", resp.StatusCode, ct, body)
		}
		return index.Page[citizen.Entry]{}, problem.Read(resp, body)
	}
	var page index.Page[citizen.Entry]
	if err := json.Unmarshal(body, &page); err != nil {
		f.t.Fatal(err)
	}
	return page, nil
}

func exchanges(p index.Page[citizen.Entry]) []string {
	var ids []string
	for _, e := range p.Items {
		ids = append(ids, e.ExchangeID)
	}
	return ids
}

// outcomes lists a page's entries as "exchange:outcome".
func outcomes(p index.Page[citizen.Entry]) string {
	var out []string
	for _, e := range p.Items {
		out = append(out, e.ExchangeID+":"+string(e.Outcome))
	}
	return strings.Join(out, ",")
}

// aliceBefore is what alice sees before the investigation's disclosure
// date: every outcome about her, once per exchange, newest first, without
// the police's.
const aliceBefore = "x-alice-unreachable:failed,x-alice-partial:partial,x-alice-2:allowed,x-alice-denied:denied,x-alice-1:allowed"

func TestTrackerShowsOwnDisclosuresOnly(t *testing.T) {
	f := newTrackerFixture(t)

	page, p := f.get(f.iss.Token(t, alice), "")
	if p != nil {
		t.Fatalf("alice refused: %v", p)
	}
	if got := outcomes(page); got != aliceBefore {
		t.Fatalf("alice sees %s\nwant       %s", got, aliceBefore)
	}
	// The provider's record of an exchange both gateways logged.
	e := page.Items[4]
	if e.Consumer != insurance || e.Dataset != "population" || strings.Join(e.Fields, ",") != "fullName,dateOfBirth" || e.Status != 200 ||
		e.Purpose.Text != "cấp thẻ BHYT" || e.LegalBasis.Reference != "Nghị định 13/2023/NĐ-CP, Điều 17" || e.Gateway != gateway || e.Seq != 3 {
		t.Fatalf("alice's entry = %+v", e)
	}
	// A refusal discloses nothing; a failure known to the consumer side
	// only is shown from its gateway's record.
	if d := page.Items[3]; d.Status != 403 || len(d.Fields) != 0 || d.Gateway != gateway {
		t.Fatalf("denied entry = %+v", d)
	}
	if u := page.Items[0]; u.Status != 502 || len(u.Fields) != 0 || u.Gateway != consumerGW {
		t.Fatalf("unreachable entry = %+v", u)
	}
	if pt := page.Items[1]; strings.Join(pt.Fields, ",") != "fullName" || pt.Gateway != gateway {
		t.Fatalf("partial entry = %+v", pt)
	}

	page, p = f.get(f.iss.Token(t, bob), "")
	if p != nil || outcomes(page) != "x-bob-1:allowed" {
		t.Fatalf("bob sees %v (%v)", outcomes(page), p)
	}
	page, p = f.get(f.iss.Token(t, carol), "")
	if p != nil || len(page.Items) != 0 || page.Next != "" {
		t.Fatalf("carol sees %v (%v)", exchanges(page), p)
	}

	// Paging follows the cursor, never repeats or skips an exchange, and
	// a cursor never carries one citizen's view into another's: bob with
	// alice's cursor sees only bob's.
	var paged []string
	q := "?limit=2"
	for range 10 {
		pg, p := f.get(f.iss.Token(t, alice), q)
		if p != nil {
			t.Fatal(p)
		}
		if o := outcomes(pg); o != "" {
			paged = append(paged, o)
		}
		if pg.Next == "" {
			break
		}
		q = "?limit=2&cursor=" + pg.Next
		cross, _ := f.get(f.iss.Token(t, bob), "?cursor="+pg.Next)
		for _, e := range cross.Items {
			if e.ExchangeID != "x-bob-1" {
				t.Fatalf("bob's page from alice's cursor holds %s", e.ExchangeID)
			}
		}
	}
	if got := strings.Join(paged, ","); got != aliceBefore {
		t.Fatalf("alice's pages of two: %s", got)
	}
}

func TestTrackerRefusesBadTokens(t *testing.T) {
	f := newTrackerFixture(t)
	expired := f.iss.Claims(alice)
	expired["iat"] = time.Now().Add(-2 * time.Hour).Unix()
	expired["exp"] = time.Now().Add(-time.Hour).Unix()
	otherAudience := f.iss.Claims(alice)
	otherAudience["aud"] = "another-service"
	otherIssuer := f.iss.Claims(alice)
	otherIssuer["iss"] = "https://evil.example"
	notAnID := f.iss.Claims("alice@example.com")

	cases := map[string]string{
		"no token":          "",
		"expired":           f.iss.Sign(t, expired),
		"wrongly signed":    f.iss.Forge(t, f.iss.Claims(alice)),
		"other audience":    f.iss.Sign(t, otherAudience),
		"other issuer":      f.iss.Sign(t, otherIssuer),
		"not a personal id": f.iss.Sign(t, notAnID),
		"garbage":           "not.a.jwt",
		"api token":         "lt_abc_0123456789012345678901234567890123456789",
	}
	for name, tok := range cases {
		t.Run(name, func(t *testing.T) {
			page, p := f.get(tok, "")
			if p == nil {
				t.Fatalf("accepted, showing %v", exchanges(page))
			}
			if p.Status != http.StatusUnauthorized || p.Type != problem.TypePrefix+"unauthenticated" {
				t.Fatalf("got %+v, want a 401 unauthenticated problem", p)
			}
		})
	}
}

func TestDeferredDisclosureAppearsAfterItsDate(t *testing.T) {
	f := newTrackerFixture(t)
	tok := func() string { return f.iss.Token(t, alice) }
	// The investigation's exchange, the police's refused attempt and the
	// police gateway's own record (no grant named, provider's record not
	// arrived) are all hidden.
	if before, _ := f.get(tok(), ""); outcomes(before) != aliceBefore {
		t.Fatalf("before the date alice sees %s", outcomes(before))
	}
	// Neither a short page nor a dangling cursor betrays the hidden ones:
	// five visible entries on a page of five end the listing, on a page of
	// four they leave a cursor to exactly one more.
	if five, _ := f.get(tok(), "?limit=5"); len(five.Items) != 5 || five.Next != "" {
		t.Fatalf("page of five: %v next %q", exchanges(five), five.Next)
	}
	if four, _ := f.get(tok(), "?limit=4"); len(four.Items) != 4 || four.Next == "" {
		t.Fatalf("page of four: %v next %q", exchanges(four), four.Next)
	} else if rest, _ := f.get(tok(), "?limit=4&cursor="+four.Next); len(rest.Items) != 1 || rest.Next != "" {
		t.Fatalf("second page of four: %v next %q", exchanges(rest), rest.Next)
	}
	// One second before the date: still hidden. The token is minted for the
	// moved clock, since the verifier checks expiry against it too.
	f.offset.Store(int64(time.Until(f.discloseAfter) - time.Second))
	claims := f.iss.Claims(alice)
	claims["exp"] = time.Now().Add(time.Duration(f.offset.Load()) + time.Hour).Unix()
	almost, p := f.get(f.iss.Sign(t, claims), "")
	if p != nil || outcomes(almost) != aliceBefore {
		t.Fatalf("just before the date: %v %v", outcomes(almost), p)
	}
	f.offset.Store(int64(time.Until(f.discloseAfter) + time.Second))
	claims["exp"] = time.Now().Add(time.Duration(f.offset.Load()) + time.Hour).Unix()
	after, p := f.get(f.iss.Sign(t, claims), "")
	if p != nil {
		t.Fatal(p)
	}
	want := "x-alice-investigation-2:allowed,x-alice-unreachable:failed,x-alice-police-refused:denied,x-alice-partial:partial," +
		"x-alice-2:allowed,x-alice-denied:denied,x-alice-investigation:allowed,x-alice-1:allowed"
	if got := outcomes(after); got != want {
		t.Fatalf("after the date alice sees %s\nwant                     %s", got, want)
	}
	if lb := after.Items[6].LegalBasis; lb.Reference != "Bộ luật Tố tụng hình sự, Điều 88" {
		t.Fatalf("investigation entry legal basis %+v", lb)
	}
}

func TestLookupIsAuditedWithoutThePersonalID(t *testing.T) {
	f := newTrackerFixture(t)
	if _, p := f.get(f.iss.Token(t, alice), ""); p != nil {
		t.Fatal(p)
	}
	trail, err := f.store.ListTrail(context.Background(), catalog.TrailFilter{})
	if err != nil {
		t.Fatal(err)
	}
	var found bool
	for _, e := range trail {
		b, _ := json.Marshal(e)
		if strings.Contains(string(b), alice) {
			t.Fatalf("the trail holds the personal ID in clear: %s", b)
		}
		if e.Action == "citizen.lookup" && strings.HasPrefix(e.Object, "subject:") && len(e.Object) == len("subject:")+64 {
			found = true
		}
	}
	if !found {
		t.Fatalf("no citizen.lookup entry in the trail: %+v", trail)
	}
}
