package api_test

import (
	"context"
	"crypto/tls"
	"encoding/json"
	"errors"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/lienthong/lienthong/catalog"
	"github.com/lienthong/lienthong/catalog/sqlstore"
	"github.com/lienthong/lienthong/certs/embedded"
	"github.com/lienthong/lienthong/controlplane/api"
	"github.com/lienthong/lienthong/controlplane/bundles"
	"github.com/lienthong/lienthong/controlplane/client"
	"github.com/lienthong/lienthong/controlplane/service"
	"github.com/lienthong/lienthong/internal/problem"
)

const (
	mps        = "000.00.00.G01" // Ministry of Public Security
	vss        = "000.00.00.G14" // Vietnam Social Security
	population = "VN:GOV:000.00.00.G01:CSDLDC"
	insurance  = "VN:GOV:000.00.00.G14:BHXH"
)

// fixture is a running management API over a real SQLite store and real TLS,
// with a platform-admin client whose traffic is checked against the document.
type fixture struct {
	t     *testing.T
	store catalog.Store
	srv   *httptest.Server
	vt    *validatingTransport
	admin *client.Client
	// offset moves the service's clock (nanoseconds), so tests can let an
	// assessment or a grant lapse as time would.
	offset atomic.Int64
}

func newFixture(t *testing.T) *fixture { return newFixtureWith(t, true) }

// newFixtureWith builds the fixture with or without a certificate authority.
func newFixtureWith(t *testing.T, withAuthority bool) *fixture {
	t.Helper()
	ctx := context.Background()
	store, err := sqlstore.OpenSQLite(ctx, filepath.Join(t.TempDir(), "catalog.db"))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { store.Close() })
	key, err := bundles.LoadOrCreateKey(filepath.Join(t.TempDir(), "bundle-key.pem"))
	if err != nil {
		t.Fatal(err)
	}
	f := &fixture{t: t, store: store}
	clock := func() time.Time { return time.Now().Add(time.Duration(f.offset.Load())) }
	opts := []service.Option{service.WithPolicySigningKey(key), service.WithClock(clock)}
	if withAuthority {
		ca, err := embedded.Open(filepath.Join(t.TempDir(), "ca"), embedded.WithPassphrase(nil))
		if err != nil {
			t.Fatal(err)
		}
		opts = append(opts, service.WithAuthority(ca))
	}
	svc := service.New(store, opts...)
	log := slog.New(slog.NewTextHandler(io.Discard, nil))
	srv := newServer(api.New(svc, log))
	t.Cleanup(srv.Close)
	f.srv = srv
	f.vt = newValidatingTransport(t, srv.URL, srv.Client().Transport)
	secret, err := svc.Bootstrap(ctx)
	if err != nil || secret == "" {
		t.Fatalf("bootstrap: %q %v", secret, err)
	}
	f.admin = f.client(secret)
	return f
}

// newServer serves h over TLS asking for client certificates, as the
// control plane's listener does.
func newServer(h http.Handler) *httptest.Server {
	srv := httptest.NewUnstartedServer(h)
	srv.TLS = api.RequestClientCertificates(&tls.Config{})
	srv.StartTLS()
	return srv
}

func (f *fixture) client(token string) *client.Client {
	return client.NewWithHTTP(f.srv.URL, token, &http.Client{Transport: f.vt, Timeout: 30 * time.Second})
}

// token mints a token of role for member and returns a client using it.
func (f *fixture) token(role catalog.Role, member string) *client.Client {
	f.t.Helper()
	out, err := f.admin.CreateToken(context.Background(), client.NewToken{Name: string(role) + " " + member, Role: role, Member: member})
	if err != nil {
		f.t.Fatalf("create %s token: %v", role, err)
	}
	return f.client(out.Token)
}

func readExample(t *testing.T, name string) string {
	t.Helper()
	b, err := os.ReadFile(filepath.Join("..", "..", "examples", name))
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

// seed admits two members with one assessed system each and publishes the
// population dataset.
func (f *fixture) seed() {
	f.t.Helper()
	ctx := context.Background()
	must := func(err error) {
		f.t.Helper()
		if err != nil {
			f.t.Fatal(err)
		}
	}
	_, err := f.admin.AddMember(ctx, client.NewMember{Code: mps, Name: "Bộ Công an", Contacts: []catalog.Contact{{Name: "Cục C06", Email: "c06@example.gov.vn"}}})
	must(err)
	_, err = f.admin.AddMember(ctx, client.NewMember{Code: vss, Name: "Bảo hiểm xã hội Việt Nam"})
	must(err)
	_, err = f.admin.AddSystem(ctx, client.NewSystem{ID: population, Name: "CSDL quốc gia về dân cư", SecurityLevel: 4})
	must(err)
	_, err = f.admin.AddSystem(ctx, client.NewSystem{ID: insurance, Name: "Hệ thống BHXH", SecurityLevel: 3})
	must(err)
	_, err = f.admin.Assess(ctx, population, client.NewAssessment{Level: 4, AssessedBy: "Cục A05", Reference: "QĐ 12/QĐ-A05", ValidUntil: time.Now().Add(365 * 24 * time.Hour)})
	must(err)
	res, err := f.admin.Publish(ctx, client.PublishRequest{System: population, Document: readExample(f.t, "population.yaml")})
	must(err)
	if !res.Created || res.Dataset.Version != 1 {
		f.t.Fatalf("first publication: %+v", res)
	}
}

func asProblem(t *testing.T, err error) *problem.Problem {
	t.Helper()
	var p *problem.Problem
	if !errors.As(err, &p) {
		t.Fatalf("want a problem, got %v", err)
	}
	return p
}

func TestCatalogWalkthrough(t *testing.T) {
	f := newFixture(t)
	f.seed()
	ctx := context.Background()

	sys, err := f.admin.System(ctx, population)
	if err != nil {
		t.Fatal(err)
	}
	if !sys.Connectivity.Connectable {
		t.Errorf("assessed system not connectable: %+v", sys.Connectivity)
	}
	other, err := f.admin.System(ctx, insurance)
	if err != nil {
		t.Fatal(err)
	}
	if other.Connectivity.Connectable || other.Connectivity.Reason != "not assessed" {
		t.Errorf("unassessed system shown as %+v", other.Connectivity)
	}

	fields, err := f.admin.Fields(ctx, population, "population", 0)
	if err != nil {
		t.Fatal(err)
	}
	byPath := map[string]catalog.Field{}
	for _, fl := range fields {
		byPath[fl.Path] = fl
	}
	for path, want := range map[string]catalog.Classification{"ethnicity": catalog.Sensitive, "religion": catalog.Sensitive, "fullName": catalog.Personal} {
		if got := byPath[path].Classification; got != want {
			t.Errorf("field %s classified %q, want %q", path, got, want)
		}
	}
	if _, ok := byPath["permanentResidence.provinceCode"]; !ok {
		t.Errorf("nested field permanentResidence.provinceCode missing from %d fields", len(fields))
	}

	// Republishing the same document is a no-op; a changed one is version 2
	// and lists its changes.
	doc := readExample(t, "population.yaml")
	res, err := f.admin.Publish(ctx, client.PublishRequest{System: population, Document: doc})
	if err != nil || res.Created || res.Dataset.Version != 1 {
		t.Fatalf("identical republish: %+v %v", res, err)
	}
	changed := strings.Replace(doc, "x-classification: sensitive", "x-classification: personal", 1)
	if changed == doc {
		t.Fatal("example has no sensitive field to reclassify")
	}
	res, err = f.admin.Publish(ctx, client.PublishRequest{System: population, Document: changed})
	if err != nil || !res.Created || res.Dataset.Version != 2 {
		t.Fatalf("changed republish: %+v %v", res, err)
	}
	if len(res.Changes) != 1 || res.Changes[0].Kind != "reclassified" {
		t.Errorf("changes = %+v, want one reclassification", res.Changes)
	}
	versions, err := f.admin.Versions(ctx, population, "population")
	if err != nil || len(versions) != 2 {
		t.Fatalf("versions = %d, %v", len(versions), err)
	}
	old, err := f.admin.Dataset(ctx, population, "population", 1)
	if err != nil || old.Version != 1 {
		t.Fatalf("version 1: %+v %v", old, err)
	}
	var raw []byte
	if err := f.admin.Do(ctx, http.MethodGet, "/v1/datasets/"+population+"/population/document", nil, &raw); err != nil {
		t.Fatal(err)
	}
	if string(raw) != changed {
		t.Error("document not returned byte for byte")
	}

	// Every write is in the trail, readable by the member's auditor.
	auditor := f.token(catalog.RoleAuditor, mps)
	entries, err := auditor.Trail(ctx, catalog.TrailFilter{})
	if err != nil {
		t.Fatal(err)
	}
	actions := map[string]int{}
	for _, e := range entries {
		if e.Member != mps {
			t.Errorf("auditor of %s sees entry of %q: %+v", mps, e.Member, e)
		}
		actions[e.Action]++
	}
	for _, a := range []string{"member.create", "system.create", "system.assess", "dataset.publish"} {
		if actions[a] == 0 {
			t.Errorf("trail lacks %s: %v", a, actions)
		}
	}
	if actions["dataset.publish"] != 2 {
		t.Errorf("trail has %d publications, want 2", actions["dataset.publish"])
	}
	for _, e := range entries {
		if e.Action == "system.assess" && len(e.After) == 0 {
			t.Error("assessment entry has no after snapshot")
		}
		if strings.Contains(string(e.After), "secretHash") || strings.Contains(string(e.After), "lt_") {
			t.Errorf("trail entry leaks a secret: %s", e.After)
		}
	}
}

func TestBadInputNamesThePlaceAndStoresNothing(t *testing.T) {
	f := newFixture(t)
	f.seed()
	ctx := context.Background()
	doc := readExample(t, "population.yaml")
	unclassified := strings.Replace(doc, "x-classification: sensitive", "description: no classification", 1)

	cases := []struct {
		name    string
		method  string
		path    string
		body    any
		status  int
		pointer string
	}{
		{"malformed agency code", "POST", "/v1/members", map[string]any{"code": "G01", "name": "x"}, 400, "/code"},
		{"duplicate member", "POST", "/v1/members", map[string]any{"code": mps, "name": "again"}, 409, ""},
		{"unknown member field", "POST", "/v1/members", map[string]any{"code": "000.00.00.G02", "name": "x", "colour": "red"}, 400, "/colour"},
		{"wrong type", "POST", "/v1/members", map[string]any{"code": 12, "name": "x"}, 400, "/code"},
		{"malformed system id", "POST", "/v1/systems", map[string]any{"id": "VN-GOV-CSDL", "name": "x", "securityLevel": 3}, 400, "/id"},
		{"unknown member of system", "POST", "/v1/systems", map[string]any{"id": "VN:GOV:000.00.00.G09:HTTT", "name": "x", "securityLevel": 3}, 400, "/member"},
		{"duplicate system", "POST", "/v1/systems", map[string]any{"id": population, "name": "x", "securityLevel": 3}, 409, ""},
		{"level out of range", "POST", "/v1/systems", map[string]any{"id": "VN:GOV:000.00.00.G01:NEW", "name": "x", "securityLevel": 7}, 400, "/securityLevel"},
		{"assessment in the past", "POST", "/v1/systems/" + insurance + "/assessments", map[string]any{"level": 3, "assessedBy": "A05", "reference": "r", "validUntil": "2020-01-01T00:00:00Z"}, 400, "/validUntil"},
		{"assessment of unknown system", "POST", "/v1/systems/VN:GOV:000.00.00.G01:NOPE/assessments", map[string]any{"level": 3, "assessedBy": "A05", "reference": "r", "validUntil": "2099-01-01T00:00:00Z"}, 404, ""},
		{"unclassified property", "POST", "/v1/datasets", map[string]any{"system": population, "document": unclassified}, 400, "/components/schemas/"},
		{"not an OpenAPI document", "POST", "/v1/datasets", map[string]any{"system": population, "document": "just text"}, 400, ""},
		{"dataset of unknown system", "POST", "/v1/datasets", map[string]any{"system": "VN:GOV:000.00.00.G01:NOPE", "document": doc}, 400, "/system"},
		{"bad dataset code", "POST", "/v1/datasets", map[string]any{"system": population, "code": "Population!", "document": doc}, 400, "/code"},
		{"oversized document", "POST", "/v1/datasets", map[string]any{"system": population, "document": strings.Repeat("a", catalog.MaxDocumentSize+1)}, 413, ""},
		{"unknown role", "POST", "/v1/tokens", map[string]any{"name": "x", "role": "root", "member": mps}, 400, "/role"},
		{"unknown dataset", "GET", "/v1/datasets/" + population + "/nothing", nil, 404, ""},
		{"bad version", "GET", "/v1/datasets/" + population + "/population?version=zero", nil, 400, "version"},
		{"unknown route", "GET", "/v1/nothing", nil, 404, ""},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			before, _ := f.store.Revision(ctx)
			err := f.admin.Do(withUnvalidated(ctx), c.method, c.path, c.body, nil)
			p := asProblem(t, err)
			if p.Status != c.status {
				t.Fatalf("status = %d, want %d: %+v", p.Status, c.status, p)
			}
			if p.Detail == "" || !strings.HasPrefix(p.Type, problem.TypePrefix) {
				t.Errorf("problem lacks detail or type: %+v", p)
			}
			if c.pointer != "" {
				found := false
				for _, e := range p.Errors {
					if strings.HasPrefix(e.Pointer, c.pointer) && e.Message != "" {
						found = true
					}
				}
				if !found {
					t.Errorf("no error at %s: %+v", c.pointer, p)
				}
			}
			if after, _ := f.store.Revision(ctx); after != before {
				t.Errorf("a refused request changed the catalog: revision %d -> %d", before, after)
			}
		})
	}
	if d, err := f.admin.Dataset(ctx, population, "population", 0); err != nil || d.Version != 1 {
		t.Errorf("stored dataset changed: %+v %v", d, err)
	}
}

func TestAuthentication(t *testing.T) {
	f := newFixture(t)
	ctx := context.Background()
	for name, token := range map[string]string{
		"no token":        "",
		"malformed token": "hello",
		"forged token":    "lt_aaaaaaaaaaaaaaaa_" + strings.Repeat("A", 43),
	} {
		t.Run(name, func(t *testing.T) {
			_, err := f.client(token).Members(ctx)
			if p := asProblem(t, err); p.Status != http.StatusUnauthorized {
				t.Fatalf("status = %d", p.Status)
			}
		})
	}
	t.Run("revoked token", func(t *testing.T) {
		out, err := f.admin.CreateToken(ctx, client.NewToken{Name: "temp", Role: catalog.RolePlatformAdmin})
		if err != nil {
			t.Fatal(err)
		}
		c := f.client(out.Token)
		if _, err := c.Members(ctx); err != nil {
			t.Fatalf("fresh token refused: %v", err)
		}
		if _, err := f.admin.RevokeToken(ctx, out.Record.ID); err != nil {
			t.Fatal(err)
		}
		if p := asProblem(t, func() error { _, err := c.Members(ctx); return err }()); p.Status != 401 {
			t.Fatalf("revoked token: status %d", p.Status)
		}
	})
	t.Run("public routes", func(t *testing.T) {
		if err := f.client("").Do(ctx, http.MethodGet, "/healthz", nil, nil); err != nil {
			t.Fatal(err)
		}
		var doc []byte
		if err := f.client("").Do(ctx, http.MethodGet, "/openapi.json", nil, &doc); err != nil || !strings.Contains(string(doc), `"openapi"`) {
			t.Fatalf("openapi.json: %v", err)
		}
	})
}

func TestMemberIsolation(t *testing.T) {
	f := newFixture(t)
	f.seed()
	ctx := context.Background()
	mpsAdmin := f.token(catalog.RoleMemberAdmin, mps)
	vssAdmin := f.token(catalog.RoleMemberAdmin, vss)
	doc := readExample(t, "population.yaml")

	// The second agency's admin may not publish on, or add systems to, the first's.
	_, err := vssAdmin.Publish(ctx, client.PublishRequest{System: population, Document: doc})
	if p := asProblem(t, err); p.Status != http.StatusForbidden {
		t.Fatalf("foreign publish: %d", p.Status)
	}
	_, err = vssAdmin.AddSystem(ctx, client.NewSystem{ID: "VN:GOV:000.00.00.G01:EVIL", Name: "x", SecurityLevel: 3})
	if p := asProblem(t, err); p.Status != http.StatusForbidden {
		t.Fatalf("foreign system: %d", p.Status)
	}
	_, err = vssAdmin.CreateToken(ctx, client.NewToken{Name: "x", Role: catalog.RoleApprover, Member: mps})
	if p := asProblem(t, err); p.Status != http.StatusForbidden {
		t.Fatalf("foreign token: %d", p.Status)
	}
	_, err = vssAdmin.CreateToken(ctx, client.NewToken{Name: "x", Role: catalog.RolePlatformAdmin})
	if p := asProblem(t, err); p.Status != http.StatusForbidden {
		t.Fatalf("platform-admin token by member-admin: %d", p.Status)
	}
	// Only the platform operator records assessments and admits members.
	_, err = mpsAdmin.Assess(ctx, population, client.NewAssessment{Level: 5, AssessedBy: "self", Reference: "self", ValidUntil: time.Now().Add(time.Hour)})
	if p := asProblem(t, err); p.Status != http.StatusForbidden {
		t.Fatalf("self-assessment: %d", p.Status)
	}
	// The owner's admin may publish and register.
	if _, err := mpsAdmin.Publish(ctx, client.PublishRequest{System: population, Document: doc + "\n"}); err != nil {
		t.Fatalf("own publish: %v", err)
	}
	if _, err := mpsAdmin.AddSystem(ctx, client.NewSystem{ID: "VN:GOV:000.00.00.G01:HTTTCC", Name: "Căn cước", SecurityLevel: 4}); err != nil {
		t.Fatalf("own system: %v", err)
	}
	// Token listings are scoped to the member.
	toks, err := vssAdmin.Tokens(ctx)
	if err != nil {
		t.Fatal(err)
	}
	for _, tk := range toks {
		if tk.Member != vss {
			t.Errorf("member-admin of %s lists token of %q", vss, tk.Member)
		}
	}
	// An integrator cannot read the trail.
	if _, err := f.token(catalog.RoleIntegrator, vss).Trail(ctx, catalog.TrailFilter{}); asProblem(t, err).Status != http.StatusForbidden {
		t.Fatal("integrator read the trail")
	}
}

func TestLapsedAssessmentShownEverywhere(t *testing.T) {
	f := newFixture(t)
	f.seed()
	ctx := context.Background()
	// Backdate the stored assessment directly: the API refuses past dates.
	err := f.store.Update(ctx, func(tx catalog.Tx) error {
		return tx.SetAssessment(ctx, population, catalog.Assessment{Level: 4, AssessedBy: "A05", Reference: "old", ValidUntil: time.Now().Add(-time.Hour), RecordedAt: time.Now().Add(-48 * time.Hour)})
	})
	if err != nil {
		t.Fatal(err)
	}
	list, err := f.admin.Systems(ctx, mps)
	if err != nil || len(list) != 1 {
		t.Fatalf("systems: %v %v", list, err)
	}
	one, err := f.admin.System(ctx, population)
	if err != nil {
		t.Fatal(err)
	}
	for _, s := range []service.SystemView{list[0], *one} {
		if s.Connectivity.Connectable || !strings.HasPrefix(s.Connectivity.Reason, "assessment expired on ") {
			t.Errorf("lapsed system shown as %+v", s.Connectivity)
		}
	}
}

func TestEveryRouteIsDocumented(t *testing.T) {
	f := newFixture(t)
	srv := api.New(service.New(f.store), slog.New(slog.NewTextHandler(io.Discard, nil)))
	for _, pattern := range srv.Routes() {
		method, path, _ := strings.Cut(pattern, " ")
		req := httptest.NewRequest(method, f.srv.URL+strings.NewReplacer("{code}", "x", "{id}", "x", "{system}", "x").Replace(path), nil)
		if _, _, err := f.vt.router.FindRoute(req); err != nil {
			t.Errorf("route %s is not in openapi.yaml", pattern)
		}
	}
}

type unvalidatedKey struct{}

// withUnvalidated marks the context so the client's requests skip request
// validation; the test transport reads it.
func withUnvalidated(ctx context.Context) context.Context {
	return context.WithValue(ctx, unvalidatedKey{}, true)
}

// The management API refuses a key written twice in one object, whichever
// handler reads it: encoding/json would keep the last one, so
// {"role":"auditor","role":"platform-admin"} would mint what no reviewer
// of the request saw.
func TestDuplicateKeysAreRefused(t *testing.T) {
	f := newFixture(t)
	f.seed()
	ctx := withUnvalidated(context.Background()) // the validator would read the last key too
	mpsAdmin := f.token(catalog.RoleMemberAdmin, mps)
	before, err := f.admin.Tokens(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		name, method, path, body, pointer string
	}{
		{"role twice", http.MethodPost, "/v1/tokens", `{"name":"x","role":"auditor","member":"` + mps + `","role":"platform-admin"}`, "/role"},
		{"role escaped", http.MethodPost, "/v1/tokens", `{"name":"x","role":"auditor","member":"` + mps + `","r\u006fle":"member-admin"}`, "/role"},
		{"member in another case", http.MethodPost, "/v1/tokens", `{"name":"x","role":"auditor","member":"` + mps + `","Member":"` + vss + `"}`, "/Member"},
		{"nested", http.MethodPost, "/v1/access-requests", `{"consumer":"` + insurance + `","provider":"` + population + `","dataset":"population","fields":["fullName"],"purpose":{"code":"1.001234","code":"9.999999"},"legalBasis":{"reference":"x"},"validUntil":"2030-01-01T00:00:00Z"}`, "/purpose/code"},
		{"gateway address", http.MethodPut, "/v1/gateways/" + mps, `{"system":"` + population + `","address":"127.0.0.1:1","address":"10.6.6.6:443"}`, "/address"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var out json.RawMessage
			err := mpsAdmin.Do(ctx, tc.method, tc.path, json.RawMessage(tc.body), &out)
			p := asProblem(t, err)
			if p.Status != http.StatusBadRequest || len(p.Errors) != 1 || p.Errors[0].Pointer != tc.pointer || !strings.Contains(p.Errors[0].Message, "duplicate member") {
				t.Fatalf("%s: %d %+v, want 400 naming %s", tc.body, p.Status, p.Errors, tc.pointer)
			}
		})
	}
	after, err := f.admin.Tokens(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	if len(after) != len(before) {
		t.Errorf("%d tokens before, %d after refused requests", len(before), len(after))
	}
	if gs, _ := f.admin.Gateways(context.Background()); len(gs) != 0 {
		t.Errorf("a refused registration was stored: %+v", gs)
	}
}
