package api_test

import (
	"bytes"
	"context"
	"io"
	"net/http"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/lienthong/lienthong/catalog"
	"github.com/lienthong/lienthong/controlplane/client"
	"github.com/lienthong/lienthong/controlplane/service"
	"github.com/lienthong/lienthong/policies"
)

// grantPopulation files and approves a request, returning the grant id.
func (f *accessFixture) grantPopulation(t *testing.T) string {
	t.Helper()
	req := f.file(f.validRequest())
	g, err := f.approver.Approve(context.Background(), req.ID, service.Approval{Fields: []catalog.GrantedField{
		{Path: "personalId", Mask: catalog.MaskHash}, {Path: "fullName"}, {Path: "dateOfBirth"}, {Path: "ethnicity"},
	}})
	if err != nil {
		t.Fatal(err)
	}
	return g.ID
}

func (f *accessFixture) explain(t *testing.T, c *client.Client, fields ...string) policies.Decision {
	t.Helper()
	var d policies.Decision
	in := service.ExplainInput{Consumer: insurance, Provider: population, Dataset: "population", Purpose: "1.001234", Fields: fields}
	if err := c.Do(context.Background(), http.MethodPost, "/v1/policy/explain", in, &d); err != nil {
		t.Fatalf("explain: %v", err)
	}
	return d
}

func reasonCodes(d policies.Decision) []string {
	var out []string
	for _, r := range d.Reasons {
		out = append(out, r.Code)
	}
	return out
}

func TestPolicyFollowsTheCatalog(t *testing.T) {
	f := newAccessFixture(t)
	ctx := context.Background()

	if d := f.explain(t, f.integrator, "fullName"); d.Allow || !slices.Contains(reasonCodes(d), "no_grant") {
		t.Fatalf("before any grant: %+v", d)
	}
	grantID := f.grantPopulation(t)
	d := f.explain(t, f.integrator, "fullName", "personalId", "religion")
	if !d.Allow || d.GrantID != grantID {
		t.Fatalf("after the grant: %+v", d)
	}
	if !slices.Contains(d.Fields, "fullName") || slices.Contains(d.Fields, "religion") {
		t.Errorf("fields = %v: want fullName, never the ungranted religion", d.Fields)
	}
	if d.Masks["personalId"] != catalog.MaskHash {
		t.Errorf("masks = %v, want personalId hashed", d.Masks)
	}
	if d.RowScope == nil || d.RowScope.Field != "permanentResidence.provinceCode" {
		t.Errorf("row scope = %+v", d.RowScope)
	}
	// The explanation is for the parties: a third agency is refused.
	in := service.ExplainInput{Consumer: insurance, Provider: population, Dataset: "population", Purpose: "1.001234"}
	if err := f.outsider.Do(ctx, http.MethodPost, "/v1/policy/explain", in, nil); asProblem(t, err).Status != http.StatusForbidden {
		t.Fatal("third party got an explanation")
	}

	// A revoked grant stops allowing at the next revision.
	if _, err := f.approver.RevokeGrant(ctx, grantID, "case closed"); err != nil {
		t.Fatal(err)
	}
	if d := f.explain(t, f.integrator, "fullName"); d.Allow {
		t.Fatalf("revoked grant still allows: %+v", d)
	}
}

func TestLapsedAssessmentDeniesEverywhere(t *testing.T) {
	f := newAccessFixture(t)
	f.grantPopulation(t)
	if d := f.explain(t, f.integrator, "fullName"); !d.Allow {
		t.Fatalf("granted read denied: %+v", d)
	}
	// The consumer's assessment runs for a year; a day past it, every
	// dataset is denied at once, with no catalog change needed.
	f.offset.Store(int64(366 * 24 * time.Hour))
	for _, fields := range [][]string{{"fullName"}, {"dateOfBirth"}, nil} {
		d := f.explain(t, f.integrator, fields...)
		if d.Allow || !slices.Contains(reasonCodes(d), "assessment_expired") {
			t.Errorf("fields %v after the assessment lapsed: %+v", fields, d)
		}
	}
}

func TestSignedBundleServedWithETag(t *testing.T) {
	f := newAccessFixture(t)
	ctx := context.Background()
	f.grantPopulation(t)

	// The provider's gateway decides, with its member's share of the bundle.
	gatewayToken, err := f.admin.CreateToken(ctx, client.NewToken{Name: "gateway", Role: catalog.RoleMemberAdmin, Member: mps})
	if err != nil {
		t.Fatal(err)
	}
	// The bundle carries every grant; an integrator reads grants through
	// its scoped listing, not here.
	if _, err := f.integrator.PolicyBundle(ctx); asProblem(t, err).Status != http.StatusForbidden {
		t.Fatal("an integrator downloaded the policy bundle")
	}
	get := func(etag string) *http.Response {
		req, _ := http.NewRequestWithContext(ctx, http.MethodGet, f.srv.URL+"/v1/policy/bundle", nil)
		req.Header.Set("Authorization", "Bearer "+gatewayToken.Token)
		if etag != "" {
			req.Header.Set("If-None-Match", etag)
		}
		resp, err := (&http.Client{Transport: f.vt}).Do(req)
		if err != nil {
			t.Fatal(err)
		}
		return resp
	}
	resp := get("")
	archive, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	etag := resp.Header.Get("ETag")
	if resp.StatusCode != http.StatusOK || etag == "" || len(archive) == 0 {
		t.Fatalf("bundle: %d etag %q, %d bytes", resp.StatusCode, etag, len(archive))
	}
	if again := get(etag); again.StatusCode != http.StatusNotModified {
		t.Fatalf("unchanged bundle with If-None-Match: %d", again.StatusCode)
	}

	var vk struct{ KeyID, PublicKeyPem string }
	if err := f.client("").Do(ctx, http.MethodGet, "/v1/policy/verification-key", nil, &vk); err != nil {
		t.Fatal(err)
	}
	key, err := policies.VerificationKeyFromPEM(vk.KeyID, []byte(vk.PublicKeyPem))
	if err != nil {
		t.Fatal(err)
	}
	snap, err := policies.LoadBundle(bytes.NewReader(archive), key)
	if err != nil {
		t.Fatalf("served bundle does not verify: %v", err)
	}
	if `"`+snap.Revision+`"` != etag {
		t.Errorf("bundle revision %q, ETag %s", snap.Revision, etag)
	}
	// A gateway deciding with the verified bundle agrees with the control plane.
	engine := policies.NewEngine()
	if err := engine.Load(ctx, snap); err != nil {
		t.Fatal(err)
	}
	local, err := engine.Decide(ctx, policies.Input{Consumer: policies.Consumer{ID: insurance}, Provider: population, Dataset: "population", Mode: catalog.ModeQuery, Purpose: "1.001234", Fields: []string{"fullName", "religion"}})
	if err != nil {
		t.Fatal(err)
	}
	remote := f.explain(t, f.integrator, "fullName", "religion")
	if local.Allow != remote.Allow || !slices.Equal(local.Fields, remote.Fields) {
		t.Errorf("gateway decision %+v differs from the control plane's %+v", local, remote)
	}
	// Each gateway learns only the grants on its own member's datasets: the
	// consumer's gateway (which decides nothing for this exchange) gets no
	// grant of the population dataset, and may not ask for another member's
	// share; the operator may.
	share := func(c *client.Client, member string) (*policies.Snapshot, error) {
		path := "/v1/policy/bundle"
		if member != "" {
			path += "?member=" + member
		}
		var raw []byte
		if err := c.Do(ctx, http.MethodGet, path, nil, &raw); err != nil {
			return nil, err
		}
		return policies.LoadBundle(bytes.NewReader(raw), key)
	}
	vssGateway := f.token(catalog.RoleMemberAdmin, vss)
	consumerShare, err := share(vssGateway, "")
	if err != nil {
		t.Fatal(err)
	}
	if len(consumerShare.Data.Grants) != 0 || len(consumerShare.Data.Datasets) != 0 || consumerShare.Data.Systems[insurance].Level == 0 {
		t.Errorf("the consumer's share holds %d consumers' grants and %d datasets (want none), system %s level %d",
			len(consumerShare.Data.Grants), len(consumerShare.Data.Datasets), insurance, consumerShare.Data.Systems[insurance].Level)
	}
	if len(snap.Data.Grants[insurance]) == 0 {
		t.Error("the provider's share lacks the grant on its dataset")
	}
	if _, err := share(vssGateway, mps); asProblem(t, err).Status != http.StatusForbidden {
		t.Error("a member's token pulled another member's share")
	}
	if whole, err := share(f.admin, ""); err != nil || len(whole.Data.Grants[insurance]) == 0 {
		t.Errorf("the operator's whole bundle: %v", err)
	}
	if of, err := share(f.admin, vss); err != nil || len(of.Data.Grants) != 0 {
		t.Errorf("the operator's view of the consumer's share: %v", err)
	}
	// Tampering with one byte is caught.
	bad := bytes.Clone(archive)
	bad[len(bad)/2] ^= 0xff
	if _, err := policies.LoadBundle(bytes.NewReader(bad), key); err == nil {
		t.Error("tampered bundle accepted")
	}
	// Any change to the catalog moves the revision.
	if _, err := f.admin.AddMember(ctx, client.NewMember{Code: "000.00.00.H29", Name: "UBND tỉnh Ninh Bình"}); err != nil {
		t.Fatal(err)
	}
	if changed := get(etag); changed.StatusCode != http.StatusOK || changed.Header.Get("ETag") == etag {
		t.Errorf("after a change: %d, etag %s", changed.StatusCode, changed.Header.Get("ETag"))
	}
}

func TestAgencyModuleNarrowsOnly(t *testing.T) {
	f := newAccessFixture(t)
	ctx := context.Background()
	f.grantPopulation(t)
	providerAdmin := f.token(catalog.RoleMemberAdmin, mps)
	put := func(c *client.Client, src string) error {
		return c.Do(withUnvalidated(ctx), http.MethodPut, "/v1/systems/"+population+"/policy", map[string]string{"source": src}, nil)
	}
	pkg := "package " + policies.AgencyPackage(population) + "\n\n"

	// A module that does not compile is refused with line and column.
	err := put(providerAdmin, pkg+"drop contains \"fullName\" if {\n\tinput.purpose ==\n}\n")
	p := asProblem(t, err)
	if p.Status != http.StatusBadRequest || len(p.Errors) == 0 || p.Errors[0].Pointer != "/source" || !strings.Contains(p.Errors[0].Message, "line 5, column 1") {
		t.Fatalf("broken module: %+v", p)
	}
	// Only the provider's admin may upload.
	if err := put(f.token(catalog.RoleMemberAdmin, vss), pkg+"drop contains \"fullName\"\n"); asProblem(t, err).Status != http.StatusForbidden {
		t.Fatal("consumer uploaded the provider's module")
	}

	// A module that tries to widen (allow religion, add fields) and also
	// drops dateOfBirth and masks fullName: only the narrowing takes effect.
	src := pkg + `drop contains "dateOfBirth"

masks["fullName"] := "partial"

allow := true

fields := ["religion", "ethnicity", "fullName"]
`
	if err := put(providerAdmin, src); err != nil {
		t.Fatalf("narrowing module refused: %v", err)
	}
	d := f.explain(t, f.integrator, "fullName", "dateOfBirth", "religion")
	if !d.Allow || slices.Contains(d.Fields, "dateOfBirth") || slices.Contains(d.Fields, "religion") || !slices.Contains(d.Fields, "fullName") {
		t.Errorf("fields with the module: %v", d.Fields)
	}
	if d.Masks["fullName"] != catalog.MaskPartial {
		t.Errorf("masks with the module: %v", d.Masks)
	}
	var stored struct{ Source, Digest string }
	if err := f.integrator.Do(ctx, http.MethodGet, "/v1/systems/"+population+"/policy", nil, &stored); err != nil || stored.Source != src {
		t.Fatalf("stored module: %v", err)
	}
	if err := providerAdmin.Do(ctx, http.MethodDelete, "/v1/systems/"+population+"/policy", nil, nil); err != nil {
		t.Fatal(err)
	}
	if d := f.explain(t, f.integrator, "dateOfBirth"); !d.Allow || !slices.Contains(d.Fields, "dateOfBirth") {
		t.Errorf("after removing the module: %+v", d)
	}
}
