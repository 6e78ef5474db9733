package citizen_test

import (
	"context"
	"crypto/ed25519"
	"crypto/rand"
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

// ship writes the provider gateway's chained log and ships it to the index.
func (f *trackerFixture) ship(ctx context.Context, ix *index.SQLStore, key index.SubjectKey) {
	pub, priv, err := ed25519.GenerateKey(rand.Reader)
	if err != nil {
		f.t.Fatal(err)
	}
	var lines [][]byte
	add := func(e *audit.Entry) {
		e.Seq = uint64(len(lines) + 1)
		if len(lines) > 0 {
			e.Prev = audit.EntryHash(lines[len(lines)-1])
		}
		b, err := json.Marshal(e)
		if err != nil {
			f.t.Fatal(err)
		}
		lines = append(lines, b)
	}
	add(&audit.Entry{Kind: audit.KindGenesis, Genesis: &audit.Genesis{Gateway: gateway, PublicKey: pub, Time: time.Now().UTC()}})
	base := time.Now().Add(-time.Hour).UTC()
	rec := func(id, consumer, grant, purpose, who string, minute int, status int, fields ...string) {
		add(&audit.Entry{Kind: audit.KindRecord, Record: &audit.Record{Time: base.Add(time.Duration(minute) * time.Minute),
			ExchangeID: id, Side: "provider", Phase: audit.Outcome, Consumer: consumer, Provider: population, Dataset: "population",
			Mode: "query", Purpose: purpose, Subject: key.Subject(who), Fields: fields, GrantID: grant, Status: status, Bytes: 300}})
	}
	rec("x-alice-1", insurance, "grant-bhyt", "1.001234", alice, 1, 200, "fullName", "dateOfBirth")
	rec("x-bob-1", insurance, "grant-bhyt", "1.001234", bob, 2, 200, "fullName")
	rec("x-alice-investigation", investig, "grant-investigation", "2.000001", alice, 3, 200, "fullName", "permanentResidence")
	rec("x-alice-denied", insurance, "grant-bhyt", "1.001234", alice, 4, 403)
	rec("x-alice-2", insurance, "grant-bhyt", "1.001234", alice, 5, 200, "fullName")
	c := &audit.Checkpoint{Gateway: gateway, From: 1, Seq: uint64(len(lines)), Head: audit.EntryHash(lines[len(lines)-1]), Time: time.Now().UTC()}
	var leaves []audit.Hash
	for _, l := range lines {
		leaves = append(leaves, audit.LeafHash(l))
	}
	c.Root = audit.HexHash(audit.MerkleRoot(leaves))
	c.Sign(priv)
	add(&audit.Entry{Kind: audit.KindCheckpoint, Checkpoint: c})
	if err := ix.EnrolKey(ctx, gateway, pub, false); err != nil {
		f.t.Fatal(err)
	}
	if _, err := ix.Ingest(ctx, gateway, lines); err != nil {
		f.t.Fatal(err)
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

func TestTrackerShowsOwnDisclosuresOnly(t *testing.T) {
	f := newTrackerFixture(t)

	page, p := f.get(f.iss.Token(t, alice), "")
	if p != nil {
		t.Fatalf("alice refused: %v", p)
	}
	// Newest first; the refused exchange disclosed nothing; the
	// investigation's exchange is deferred.
	if got := strings.Join(exchanges(page), ","); got != "x-alice-2,x-alice-1" {
		t.Fatalf("alice sees %s", got)
	}
	e := page.Items[1]
	if e.Consumer != insurance || e.Dataset != "population" || strings.Join(e.Fields, ",") != "fullName,dateOfBirth" ||
		e.Purpose.Text != "cấp thẻ BHYT" || e.LegalBasis.Reference != "Nghị định 13/2023/NĐ-CP, Điều 17" || e.Gateway != gateway || e.Seq != 2 {
		t.Fatalf("alice's entry = %+v", e)
	}

	page, p = f.get(f.iss.Token(t, bob), "")
	if p != nil || strings.Join(exchanges(page), ",") != "x-bob-1" {
		t.Fatalf("bob sees %v (%v)", exchanges(page), p)
	}
	page, p = f.get(f.iss.Token(t, carol), "")
	if p != nil || len(page.Items) != 0 || page.Next != "" {
		t.Fatalf("carol sees %v (%v)", exchanges(page), p)
	}

	// Paging follows the cursor, and a cursor never carries one citizen's
	// view into another's: bob with alice's cursor sees only bob's.
	first, _ := f.get(f.iss.Token(t, alice), "?limit=1")
	if len(first.Items) != 1 || first.Next == "" {
		t.Fatalf("first page %+v", first)
	}
	second, _ := f.get(f.iss.Token(t, alice), "?limit=1&cursor="+first.Next)
	if len(second.Items) != 1 || second.Items[0].ExchangeID == first.Items[0].ExchangeID {
		t.Fatalf("second page %+v", second)
	}
	cross, _ := f.get(f.iss.Token(t, bob), "?cursor="+first.Next)
	for _, e := range cross.Items {
		if e.ExchangeID != "x-bob-1" {
			t.Fatalf("bob's page from alice's cursor holds %s", e.ExchangeID)
		}
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
	before, _ := f.get(tok(), "")
	for _, id := range exchanges(before) {
		if id == "x-alice-investigation" {
			t.Fatal("the investigation's exchange shown before its disclosure date")
		}
	}
	// Neither a short page nor a dangling cursor betrays the hidden one:
	// two visible entries on a page of two end the listing.
	if two, _ := f.get(tok(), "?limit=2"); len(two.Items) != 2 || two.Next != "" {
		t.Fatalf("page of two: %v next %q", exchanges(two), two.Next)
	}
	if one, _ := f.get(tok(), "?limit=1"); len(one.Items) != 1 || one.Next == "" {
		t.Fatalf("page of one: %v next %q", exchanges(one), one.Next)
	} else if rest, _ := f.get(tok(), "?limit=1&cursor="+one.Next); len(rest.Items) != 1 || rest.Next != "" {
		t.Fatalf("second page of one: %v next %q", exchanges(rest), rest.Next)
	}
	// One second before the date: still hidden. The token is minted for the
	// moved clock, since the verifier checks expiry against it too.
	f.offset.Store(int64(time.Until(f.discloseAfter) - time.Second))
	claims := f.iss.Claims(alice)
	claims["exp"] = time.Now().Add(time.Duration(f.offset.Load()) + time.Hour).Unix()
	almost, p := f.get(f.iss.Sign(t, claims), "")
	if p != nil || len(almost.Items) != 2 {
		t.Fatalf("just before the date: %v %v", exchanges(almost), p)
	}
	f.offset.Store(int64(time.Until(f.discloseAfter) + time.Second))
	claims["exp"] = time.Now().Add(time.Duration(f.offset.Load()) + time.Hour).Unix()
	after, p := f.get(f.iss.Sign(t, claims), "")
	if p != nil {
		t.Fatal(p)
	}
	if got := strings.Join(exchanges(after), ","); got != "x-alice-2,x-alice-investigation,x-alice-1" {
		t.Fatalf("after the date alice sees %s", got)
	}
	if lb := after.Items[1].LegalBasis; lb.Reference != "Bộ luật Tố tụng hình sự, Điều 88" {
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
