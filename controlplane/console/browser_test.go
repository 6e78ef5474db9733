package console_test

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/chromedp/chromedp"
	"github.com/lienthong/lienthong/audit/index"
	"github.com/lienthong/lienthong/audit/index/indextest"
	"github.com/lienthong/lienthong/catalog"
	"github.com/lienthong/lienthong/controlplane"
	"github.com/lienthong/lienthong/controlplane/client"
	"github.com/lienthong/lienthong/internal/devoidc"
)

// The browser tests drive the console in real Chromium (headless), against
// a real control plane (TLS, SQLite, the seeded example federation) and the
// demo OIDC issuer. No gateway runs here: the exchange the flow view, audit
// search and citizen page must show is shipped to the audit index as a
// gateway ships it (a real hash-chained, signed log from indextest).

const (
	integratorSystem = "VN:GOV:000.00.00.G14:CSDLBH"
	populationSystem = "VN:GOV:000.00.00.G01:CSDLDC"
	citizenA         = "079203001234"
	citizenB         = "001190004321"
)

func chromium(t *testing.T) string {
	for _, p := range []string{os.Getenv("LIENTHONG_CHROMIUM"), "/usr/bin/chromium", "/usr/bin/chromium-browser"} {
		if p == "" {
			continue
		}
		if _, err := os.Stat(p); err == nil {
			return p
		}
	}
	if p, err := exec.LookPath("chromium"); err == nil {
		return p
	}
	if os.Getenv("LIENTHONG_REQUIRE_SERVICES") == "1" {
		t.Fatal("Chromium is required (LIENTHONG_REQUIRE_SERVICES=1) but none was found; install Debian's chromium")
	}
	t.Skip("no Chromium found (/usr/bin/chromium); the browser tests need it")
	return ""
}

// federation is a running control plane with the console.
type federation struct {
	ready controlplane.Ready
	dir   string
}

func startFederation(t *testing.T, ctx context.Context, issuer string) *federation {
	t.Helper()
	dir := t.TempDir()
	readyc := make(chan controlplane.Ready, 1)
	errc := make(chan error, 1)
	go func() {
		errc <- controlplane.Run(ctx, controlplane.Config{
			DataDir: dir, Listen: "127.0.0.1:0", MetricsListen: "127.0.0.1:0", Seed: "../../examples/federation.json",
			Citizen: controlplane.CitizenConfig{Issuer: issuer, ClientID: "lienthong-console"},
			Log:     slog.New(slog.NewTextHandler(io.Discard, nil)),
		}, func(r controlplane.Ready) { readyc <- r })
	}()
	select {
	case r := <-readyc:
		t.Cleanup(func() {
			if err := <-errc; err != nil {
				t.Errorf("control plane: %v", err)
			}
		})
		return &federation{ready: r, dir: dir}
	case err := <-errc:
		t.Fatalf("control plane: %v", err)
	case <-time.After(60 * time.Second):
		t.Fatal("control plane did not start")
	}
	return nil
}

// link mints a login link for role and member and returns its URL.
func (f *federation) link(t *testing.T, ctx context.Context, role catalog.Role, member string) string {
	t.Helper()
	l, err := f.ready.Console.MintLoginLink(ctx, f.ready.AdminToken, role, member, string(role)+" "+member, 0)
	if err != nil {
		t.Fatalf("mint login link for %s %s: %v", role, member, err)
	}
	return f.ready.URL + l.Path
}

// browser is one isolated browser context (its own cookies) in one tab.
type browser struct {
	t    *testing.T
	ctx  context.Context
	base string
	shot string
}

func (b *browser) do(steps ...chromedp.Action[chromedp.Void]) {
	b.t.Helper()
	cx, cancel := context.WithTimeout(b.ctx, 20*time.Second)
	defer cancel()
	if err := chromedp.Do(cx, steps...); err != nil {
		b.screenshot("failed")
		b.t.Fatalf("browser: %v (page %s)", err, b.location())
	}
}

func (b *browser) location() string {
	cx, cancel := context.WithTimeout(b.ctx, 5*time.Second)
	defer cancel()
	loc, _ := chromedp.Run(cx, chromedp.Location())
	return loc
}

func (b *browser) text(sel string) string {
	b.t.Helper()
	cx, cancel := context.WithTimeout(b.ctx, 20*time.Second)
	defer cancel()
	s, err := chromedp.Run(cx, chromedp.Text(chromedp.CSS(sel)))
	if err != nil {
		b.t.Fatalf("browser: text of %s: %v (page %s)", sel, err, b.location())
	}
	return s
}

// screenshot saves the page when LIENTHONG_SCREENSHOTS names a directory.
func (b *browser) screenshot(name string) {
	b.t.Helper()
	dir := os.Getenv("LIENTHONG_SCREENSHOTS")
	if dir == "" {
		return
	}
	cx, cancel := context.WithTimeout(b.ctx, 20*time.Second)
	defer cancel()
	png, err := chromedp.Run(cx, chromedp.CaptureScreenshot())
	if err != nil {
		b.t.Fatalf("screenshot %s: %v", name, err)
	}
	if err := os.MkdirAll(dir, 0o755); err != nil {
		b.t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dir, name+".png"), png, 0o644); err != nil {
		b.t.Fatal(err)
	}
}

func (b *browser) signIn(link string) {
	b.t.Helper()
	b.do(chromedp.Navigate(link), chromedp.Click(chromedp.CSS("#redeem")), chromedp.WaitVisible(chromedp.CSS(".tiles")))
}

func TestConsoleInChromium(t *testing.T) {
	exe := chromium(t)
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	issuer, err := devoidc.Start(ctx, "127.0.0.1:0", "lienthong-console")
	if err != nil {
		t.Fatal(err)
	}
	fed := startFederation(t, ctx, issuer.URL)
	t.Cleanup(cancel)

	alloc, stopAlloc := chromedp.NewExecAllocator(ctx, chromedp.ExecPath(exe), chromedp.Headless, chromedp.NoSandbox,
		chromedp.DisableGPU, chromedp.Flag("ignore-certificate-errors", true), chromedp.WindowSize(1280, 800),
		chromedp.NoFirstRun, chromedp.NoDefaultBrowserCheck)
	defer stopAlloc()
	root, stopRoot := chromedp.NewContext(alloc)
	defer stopRoot()
	if err := chromedp.Do(root); err != nil {
		t.Fatalf("start Chromium: %v", err)
	}
	// Every role uses the one tab in turn, signing out before the next:
	// screenshots of tabs in other browser contexts hang in headless mode.
	tab := &browser{t: t, ctx: root, base: fed.ready.URL}
	open := func() *browser {
		tab.do(chromedp.Navigate(fed.ready.URL+"/console/login"), chromedp.WaitVisible(chromedp.CSS("#token")))
		cx, cc := context.WithTimeout(root, 10*time.Second)
		defer cc()
		out, err := chromedp.Run(cx, chromedp.Evaluate[bool](`(function(){var f=document.querySelector('form[action="/console/logout"]');if(f){f.submit();return true}return false})()`))
		if err != nil {
			t.Fatalf("sign out: %v", err)
		}
		if out {
			tab.do(chromedp.WaitVisible(chromedp.CSS("#token")))
		}
		return tab
	}
	base := fed.ready.URL + "/console"

	// The integrator of Social Insurance (G14) asks for three fields of the
	// population dataset. First with no purpose: the service's problem
	// appears at the purpose field, in the service's words.
	integ := open()
	integ.signIn(fed.link(t, ctx, catalog.RoleIntegrator, "000.00.00.G14"))
	integ.screenshot("home")
	integ.do(chromedp.Navigate(base + "/catalog"))
	integ.screenshot("catalog")
	dataset := base + "/catalog/dataset?system=" + populationSystem + "&code=population"
	until := time.Now().AddDate(0, 2, 0).Format("2006-01-02")
	integ.do(chromedp.Navigate(dataset), chromedp.WaitVisible(chromedp.CSS("#request-submit")),
		chromedp.Click(chromedp.CSS(`input[name=fields][value=fullName]`)),
		chromedp.Click(chromedp.CSS(`input[name=fields][value=dateOfBirth]`)),
		chromedp.Click(chromedp.CSS(`input[name=fields][value=permanentResidence]`)),
		chromedp.SetValue(chromedp.CSS("#valid_until"), until),
		chromedp.Click(chromedp.CSS("#request-submit")),
		chromedp.WaitVisible(chromedp.CSS("#purpose_code-error")))
	if got := integ.text("#purpose_code-error"); !strings.Contains(got, "public-service procedure code") {
		t.Fatalf("purpose error = %q, want the service's problem message", got)
	}
	if focused, err := chromedp.Run(integ.ctx, chromedp.Evaluate[string](`document.activeElement.id`)); err != nil || focused != "purpose_code" {
		t.Fatalf("keyboard focus after the refused form is on %q (%v), want the purpose field", focused, err)
	}
	integ.screenshot("dataset-bad-input")
	integ.do(chromedp.SendKeys(chromedp.CSS("#purpose_code"), "1.001234"),
		chromedp.SendKeys(chromedp.CSS("#purpose_text"), "Cấp thẻ BHYT cho trẻ em dưới 6 tuổi"),
		chromedp.Click(chromedp.CSS("#request-submit")), chromedp.WaitVisible(chromedp.CSS("#created")))
	requestID := strings.TrimSpace(integ.text("#created code"))
	if !strings.HasPrefix(requestID, "req-") {
		t.Fatalf("created request id = %q", requestID)
	}
	integ.screenshot("dataset")

	// A member admin of another member (the Ministry of Justice) does not
	// see the pending request, and cannot open it by id.
	justice := open()
	justice.signIn(fed.link(t, ctx, catalog.RoleMemberAdmin, "000.00.00.G05"))
	justice.do(chromedp.Navigate(base + "/access"))
	if got := justice.text("#pending-table"); strings.Contains(got, requestID) {
		t.Fatalf("a member admin of G05 sees G01/G14's pending request %s", requestID)
	}
	justice.do(chromedp.Navigate(base + "/access/review?id=" + requestID))
	if got := justice.text("main"); strings.Contains(got, "fullName") || !strings.Contains(got, "not found") {
		t.Fatalf("G05 opening the request by id got %q, want not found", got)
	}

	// The approver of the Ministry of Public Security grants two of the
	// three fields, fullName masked partially.
	approver := open()
	approver.signIn(fed.link(t, ctx, catalog.RoleApprover, "000.00.00.G01"))
	approver.do(chromedp.Navigate(base+"/access"), chromedp.WaitVisible(chromedp.CSS(`a[href$="`+requestID+`"]`)))
	approver.screenshot("access")
	approver.do(chromedp.Click(chromedp.CSS(`a[href$="`+requestID+`"]`)), chromedp.WaitVisible(chromedp.CSS("#approve-submit")))
	approver.screenshot("review")
	// A mask on an object is refused by the service; its problem, located
	// at /fields/2/mask, shows at that field's row.
	approver.do(chromedp.SetValue(chromedp.CSS(`select[name="mask:permanentResidence"]`), "hash"),
		chromedp.Click(chromedp.CSS("#approve-submit")), chromedp.WaitVisible(chromedp.CSS(`[id="field:permanentResidence-error"]`)))
	if got := approver.text(`[id="field:permanentResidence-error"]`); !strings.Contains(got, "masks apply to single values") {
		t.Fatalf("mask problem = %q, want the service's message at permanentResidence", got)
	}
	approver.screenshot("review-bad-mask")
	approver.do(chromedp.SetValue(chromedp.CSS(`select[name="mask:permanentResidence"]`), ""),
		chromedp.Click(chromedp.CSS(`input[name=grant][value=permanentResidence]`)),
		chromedp.SetValue(chromedp.CSS(`select[name="mask:fullName"]`), "partial"),
		chromedp.Click(chromedp.CSS("#approve-submit")), chromedp.WaitVisible(chromedp.CSS("#done")))
	grants := approver.text("#grants-table")
	if !strings.Contains(grants, "fullName partial") || !strings.Contains(grants, "dateOfBirth") || strings.Contains(grants, "permanentResidence") {
		t.Fatalf("grants after approval = %q, want fullName (partial) and dateOfBirth only", grants)
	}
	grant := grantOf(t, ctx, fed, requestID)

	// An auditor of G01 watches the flow view while the query's audit
	// records arrive; the polling script puts it in the matrix.
	auditor := open()
	auditor.signIn(fed.link(t, ctx, catalog.RoleAuditor, "000.00.00.G01"))
	auditor.do(chromedp.Navigate(base+"/flows"), chromedp.WaitVisible(chromedp.CSS("#flow-matrix")))
	if got := auditor.text("#flows-total"); got != "0" {
		t.Fatalf("flow total before any exchange = %q", got)
	}
	exchangeID := shipQuery(t, ctx, fed, grant)
	auditor.do(chromedp.WaitVisible(chromedp.CSS(`#flows[data-polled]`)))
	pcx, pcancel := context.WithTimeout(auditor.ctx, 20*time.Second)
	_, err = chromedp.Run(pcx, chromedp.Poll[bool](`document.getElementById("flows-total").textContent === "2"`, chromedp.WithPollingTimeout(15*time.Second)))
	pcancel()
	if err != nil {
		t.Fatalf("the flow view did not show the two exchanges: %v (total %q)", err, auditor.text("#flows-total"))
	}
	if got := auditor.text("#flow-matrix"); !strings.Contains(got, "000.00.00.G14") {
		t.Fatalf("flow matrix = %q, want the G01 → G14 flow", got)
	}
	auditor.screenshot("flows")

	// Audit search finds the exchange by dataset, and by the citizen's
	// personal ID (sent by POST, never in a URL).
	auditor.do(chromedp.Navigate(base+"/audit"), chromedp.SendKeys(chromedp.CSS("#personal_id"), citizenA),
		chromedp.Click(chromedp.CSS("#audit-submit")), chromedp.WaitVisible(chromedp.CSS("#audit-results")))
	if got := auditor.text("#audit-results"); !strings.Contains(got, exchangeID) {
		t.Fatalf("audit search by personal ID = %q, want exchange %s", got, exchangeID)
	}
	if got := auditor.location(); strings.Contains(got, citizenA) {
		t.Fatalf("the personal ID stands in the URL %s", got)
	}
	auditor.screenshot("audit")

	// Bad input in the audit form: the message sits at its field.
	auditor.do(chromedp.Navigate(base+"/audit"), chromedp.SendKeys(chromedp.CSS("#personal_id"), "12345"),
		chromedp.Click(chromedp.CSS("#audit-submit")), chromedp.WaitVisible(chromedp.CSS("#personal_id-error")))

	// The citizen signs in at the (demo) identity provider and sees the
	// disclosure of their record, and not the other citizen's.
	cit := open()
	cit.do(chromedp.Navigate(base+"/citizen"), chromedp.Click(chromedp.CSS("#citizen-login")),
		chromedp.WaitVisible(chromedp.CSS("#pid")), chromedp.SendKeys(chromedp.CSS("#pid"), citizenA),
		chromedp.Click(chromedp.CSS("#demo-signin")), chromedp.WaitVisible(chromedp.CSS("#disclosures")))
	got := cit.text("#disclosures")
	if !strings.Contains(got, integratorSystem) || !strings.Contains(got, "fullName") || strings.Contains(got, "HTTTHT") {
		t.Fatalf("citizen A's page = %q, want only the G14 disclosure", got)
	}
	cit.screenshot("citizen")

	// The other pages render for the platform operator, and the gateways
	// page names every registered gateway.
	op := open()
	op.signIn(fed.link(t, ctx, catalog.RolePlatformAdmin, ""))
	for _, p := range []string{"security", "gateways"} {
		op.do(chromedp.Navigate(base+"/"+p), chromedp.WaitVisible(chromedp.CSS("main h1")))
		op.screenshot(p)
	}
	// English on request, and at phone width the catalog still fits.
	op.do(chromedp.Navigate(base+"/lang?to=en&back=/console/catalog"), chromedp.WaitVisible(chromedp.CSS("table")))
	if h := op.text("main h1"); h != "Data catalog" {
		t.Fatalf("English catalog heading = %q", h)
	}
	op.do(chromedp.EmulateViewport(390, 844), chromedp.Navigate(base+"/catalog"), chromedp.WaitVisible(chromedp.CSS("table")))
	width, err := chromedp.Run(op.ctx, chromedp.Evaluate[int](`document.documentElement.scrollWidth`))
	if err != nil || width > 390 {
		t.Fatalf("catalog at phone width scrolls sideways: page width %d (%v)", width, err)
	}
	op.screenshot("catalog-phone")

	// The approver revokes the grant: without a reason the service's
	// problem shows at that grant's reason field; with one, it is revoked.
	approver = open()
	approver.signIn(fed.link(t, ctx, catalog.RoleApprover, "000.00.00.G01"))
	revoke := `#grant-` + grant + ` button`
	approver.do(chromedp.Navigate(base+"/access"), chromedp.Click(chromedp.CSS(revoke)), chromedp.WaitVisible(chromedp.CSS("#reason-error")))
	if got := approver.text("#reason-error"); !strings.Contains(got, "written reason") {
		t.Fatalf("revoke without reason: %q", got)
	}
	approver.do(chromedp.SendKeys(chromedp.CSS("#reason-"+grant), "Hết nhu cầu sử dụng"), chromedp.Click(chromedp.CSS(revoke)),
		chromedp.WaitVisible(chromedp.CSS("#done")))
	if got := approver.text("#grant-" + grant); !strings.Contains(got, "revoked") {
		t.Fatalf("grant after revocation: %q", got)
	}
}

// grantOf finds the grant the approval made.
func grantOf(t *testing.T, ctx context.Context, fed *federation, requestID string) string {
	t.Helper()
	c, err := client.New(fed.ready.URL, fed.ready.AdminToken, fed.ready.CAFile)
	if err != nil {
		t.Fatal(err)
	}
	r, err := c.AccessRequest(ctx, requestID)
	if err != nil {
		t.Fatal(err)
	}
	if r.GrantID == "" {
		t.Fatalf("request %s has no grant after approval", requestID)
	}
	return r.GrantID
}

// shipQuery ships the provider gateway's audit log of two queries under
// the grant: one about citizen A (to G14) and one about citizen B (to
// the civil registry), as the gateway's shipper would.
func shipQuery(t *testing.T, ctx context.Context, fed *federation, grant string) string {
	t.Helper()
	key, err := index.LoadOrCreateSubjectKey(filepath.Join(fed.dir, index.SubjectKeyFile))
	if err != nil {
		t.Fatal(err)
	}
	gw := "VN:GOV:000.00.00.G01:GW"
	log := indextest.New(t, gw)
	now := time.Now()
	id := fmt.Sprintf("ex-%d", now.UnixNano())
	a := indextest.Outcome(id, integratorSystem, populationSystem, key.Subject(citizenA), now)
	a.GrantID = grant
	log.Record(a)
	b := indextest.Outcome(id+"-b", "VN:GOV:000.00.00.G05:HTTTHT", populationSystem, key.Subject(citizenB), now)
	b.GrantID = ""
	log.Record(b)
	log.Checkpoint()
	c, err := client.New(fed.ready.URL, fed.ready.AdminToken, fed.ready.CAFile)
	if err != nil {
		t.Fatal(err)
	}
	if err := c.EnrolAuditKey(ctx, gw, log.Public()); err != nil {
		t.Fatal(err)
	}
	if _, err := c.ShipAudit(ctx, gw, log.Lines); err != nil {
		t.Fatal(err)
	}
	return id
}
