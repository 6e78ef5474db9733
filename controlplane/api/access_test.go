package api_test

import (
	"context"
	"errors"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/lienthong/lienthong/catalog"
	"github.com/lienthong/lienthong/controlplane/auth"
	"github.com/lienthong/lienthong/controlplane/client"
	"github.com/lienthong/lienthong/controlplane/service"
)

// accessFixture adds an assessed consumer system and the three roles the
// workflow needs to the seeded fixture.
type accessFixture struct {
	*fixture
	integrator      *client.Client // Social Security, consumer side
	integratorToken string
	approver        *client.Client // Public Security, provider side
	outsider        *client.Client // Ministry of Justice approver, a third party
}

func newAccessFixture(t *testing.T) *accessFixture {
	f := newFixture(t)
	f.seed()
	ctx := context.Background()
	if _, err := f.admin.Assess(ctx, insurance, client.NewAssessment{Level: 3, AssessedBy: "Cục A05", Reference: "QĐ 13/QĐ-A05", ValidUntil: time.Now().Add(365 * 24 * time.Hour)}); err != nil {
		t.Fatal(err)
	}
	if _, err := f.admin.AddMember(ctx, client.NewMember{Code: "000.00.00.G05", Name: "Bộ Tư pháp"}); err != nil {
		t.Fatal(err)
	}
	tok, err := f.admin.CreateToken(ctx, client.NewToken{Name: "BHXH integrator", Role: catalog.RoleIntegrator, Member: vss})
	if err != nil {
		t.Fatal(err)
	}
	return &accessFixture{
		fixture:         f,
		integrator:      f.client(tok.Token),
		integratorToken: tok.Token,
		approver:        f.token(catalog.RoleApprover, mps),
		outsider:        f.token(catalog.RoleApprover, "000.00.00.G05"),
	}
}

func (f *accessFixture) validRequest() service.AccessRequestInput {
	return service.AccessRequestInput{
		Consumer: insurance, Provider: population, Dataset: "population",
		Fields:     []string{"personalId", "fullName", "dateOfBirth", "ethnicity", "permanentResidence"},
		Purpose:    catalog.Purpose{Code: "1.001234", Text: "cấp thẻ BHYT cho trẻ em dưới 6 tuổi"},
		LegalBasis: catalog.LegalBasis{Reference: "Nghị định 13/2023/NĐ-CP, Điều 17"},
		ValidUntil: time.Now().Add(180 * 24 * time.Hour),
		Modes:      []catalog.Mode{catalog.ModeQuery, catalog.ModeVerify},
		RowScope:   &catalog.RowScope{Field: "permanentResidence.provinceCode", Values: []string{"01"}},
	}
}

func (f *accessFixture) file(in service.AccessRequestInput) *catalog.AccessRequest {
	f.t.Helper()
	var out catalog.AccessRequest
	if err := f.integrator.Do(context.Background(), http.MethodPost, "/v1/access-requests", in, &out); err != nil {
		f.t.Fatalf("request access: %v", err)
	}
	return &out
}

func TestAccessWorkflow(t *testing.T) {
	f := newAccessFixture(t)
	ctx := context.Background()
	req := f.file(f.validRequest())
	if req.State != catalog.RequestPending || len(req.History) != 1 {
		t.Fatalf("new request: %+v", req)
	}

	// A third agency neither sees nor decides it.
	var seen catalog.AccessRequest
	if err := f.outsider.Do(ctx, http.MethodGet, "/v1/access-requests/"+req.ID, nil, &seen); asProblem(t, err).Status != http.StatusNotFound {
		t.Fatal("third party can read the request")
	}
	approval := service.Approval{Fields: []catalog.GrantedField{
		{Path: "personalId", Mask: catalog.MaskHash},
		{Path: "fullName"},
		{Path: "dateOfBirth"},
		{Path: "permanentResidence.provinceCode"},
	}, Note: "ethnicity refused: not needed for the card"}
	if err := f.outsider.Do(withUnvalidated(ctx), http.MethodPost, "/v1/access-requests/"+req.ID+"/approve", approval, nil); asProblem(t, err).Status != http.StatusForbidden {
		t.Fatal("third party approved")
	}
	if err := f.integrator.Do(ctx, http.MethodPost, "/v1/access-requests/"+req.ID+"/approve", approval, nil); asProblem(t, err).Status != http.StatusForbidden {
		t.Fatal("consumer approved its own request")
	}

	// The provider's approver grants fewer fields than asked, one masked.
	var grant service.GrantView
	if err := f.approver.Do(ctx, http.MethodPost, "/v1/access-requests/"+req.ID+"/approve", approval, &grant); err != nil {
		t.Fatal(err)
	}
	if grant.EffectiveState != catalog.GrantActive || len(grant.Fields) != 4 || grant.Fields[0].Mask != catalog.MaskHash {
		t.Fatalf("grant = %+v", grant)
	}
	if grant.RowScope == nil || grant.RowScope.Field != "permanentResidence.provinceCode" || grant.Purposes[0].Code != "1.001234" {
		t.Fatalf("grant lost scope or purpose: %+v", grant)
	}
	var after catalog.AccessRequest
	if err := f.integrator.Do(ctx, http.MethodGet, "/v1/access-requests/"+req.ID, nil, &after); err != nil {
		t.Fatal(err)
	}
	if after.State != catalog.RequestApproved || after.GrantID != grant.ID || len(after.History) != 2 {
		t.Fatalf("approved request = %+v", after)
	}
	// Deciding twice is a conflict.
	if err := f.approver.Do(withUnvalidated(ctx), http.MethodPost, "/v1/access-requests/"+req.ID+"/refuse", map[string]string{"reason": "late"}, nil); asProblem(t, err).Status != http.StatusConflict {
		t.Fatal("refused an approved request")
	}

	// Both parties list the grant; the third party does not.
	var mine struct{ Items []service.GrantView }
	if err := f.integrator.Do(ctx, http.MethodGet, "/v1/grants", nil, &mine); err != nil || len(mine.Items) != 1 {
		t.Fatalf("consumer grants: %+v %v", mine, err)
	}
	var theirs struct{ Items []service.GrantView }
	if err := f.outsider.Do(ctx, http.MethodGet, "/v1/grants", nil, &theirs); err != nil || len(theirs.Items) != 0 {
		t.Fatalf("third party sees grants: %+v %v", theirs, err)
	}

	// Revocation needs a reason and then shows in the effective state.
	if err := f.approver.Do(withUnvalidated(ctx), http.MethodPost, "/v1/grants/"+grant.ID+"/revoke", map[string]string{"reason": " "}, nil); asProblem(t, err).Status != http.StatusBadRequest {
		t.Fatal("revoked without a reason")
	}
	var revoked service.GrantView
	if err := f.approver.Do(ctx, http.MethodPost, "/v1/grants/"+grant.ID+"/revoke", map[string]string{"reason": "purpose fulfilled"}, &revoked); err != nil {
		t.Fatal(err)
	}
	if revoked.EffectiveState != catalog.GrantRevoked || revoked.RevokeReason != "purpose fulfilled" || len(revoked.History) != 2 {
		t.Fatalf("revoked grant = %+v", revoked)
	}
}

// The platform's maximum grant period is configurable, and the configured
// value is the one enforced.
func TestMaxGrantPeriodIsConfigurable(t *testing.T) {
	f := newAccessFixture(t)
	ctx := context.Background()
	svc := service.New(f.store, service.WithMaxGrantPeriod(30*24*time.Hour))
	p := auth.Principal{TokenID: "t", Role: catalog.RolePlatformAdmin}
	in := f.validRequest()
	in.ValidUntil = time.Now().Add(60 * 24 * time.Hour) // within the default year
	_, err := svc.RequestAccess(ctx, p, in)
	var v *catalog.ValidationError
	if !errors.As(err, &v) || v.Problems[0].Pointer != "/validUntil" || !strings.Contains(v.Problems[0].Message, "30 days") {
		t.Fatalf("60 days under a 30-day maximum: %v", err)
	}
	in.ValidUntil = time.Now().Add(20 * 24 * time.Hour)
	if _, err := svc.RequestAccess(ctx, p, in); err != nil {
		t.Fatalf("20 days under a 30-day maximum: %v", err)
	}
}

func TestRefuseAndWithdraw(t *testing.T) {
	f := newAccessFixture(t)
	ctx := context.Background()
	a := f.file(f.validRequest())
	if err := f.approver.Do(withUnvalidated(ctx), http.MethodPost, "/v1/access-requests/"+a.ID+"/refuse", map[string]string{"reason": ""}, nil); asProblem(t, err).Status != http.StatusBadRequest {
		t.Fatal("refusal without a reason accepted")
	}
	var refused catalog.AccessRequest
	if err := f.approver.Do(ctx, http.MethodPost, "/v1/access-requests/"+a.ID+"/refuse", map[string]string{"reason": "Điều 9 Nghị định 47/2020: dữ liệu không thuộc danh mục chia sẻ"}, &refused); err != nil {
		t.Fatal(err)
	}
	if refused.State != catalog.RequestRefused || !strings.Contains(refused.Reason, "Điều 9") {
		t.Fatalf("refused = %+v", refused)
	}

	b := f.file(f.validRequest())
	if err := f.approver.Do(withUnvalidated(ctx), http.MethodPost, "/v1/access-requests/"+b.ID+"/withdraw", map[string]string{"reason": "x"}, nil); asProblem(t, err).Status != http.StatusForbidden {
		t.Fatal("provider withdrew the consumer's request")
	}
	var withdrawn catalog.AccessRequest
	if err := f.integrator.Do(ctx, http.MethodPost, "/v1/access-requests/"+b.ID+"/withdraw", map[string]string{"reason": "filed twice"}, &withdrawn); err != nil || withdrawn.State != catalog.RequestWithdrawn {
		t.Fatalf("withdraw: %+v %v", withdrawn, err)
	}
	var pending struct{ Items []catalog.AccessRequest }
	if err := f.approver.Do(ctx, http.MethodGet, "/v1/access-requests?state=pending", nil, &pending); err != nil || len(pending.Items) != 0 {
		t.Fatalf("pending after refuse and withdraw: %+v %v", pending, err)
	}
}

func TestAccessBadInput(t *testing.T) {
	f := newAccessFixture(t)
	ctx := context.Background()
	type mutate func(*service.AccessRequestInput)
	cases := []struct {
		name    string
		change  mutate
		status  int
		pointer string
		detail  string
	}{
		{"unknown fields are named", func(in *service.AccessRequestInput) { in.Fields = append(in.Fields, "favouriteColour", "shoeSize") }, 400, "/fields", `"favouriteColour", "shoeSize"`},
		{"sensitive field without legal basis", func(in *service.AccessRequestInput) { in.LegalBasis = catalog.LegalBasis{} }, 400, "/legalBasis/reference", "sensitive"},
		{"period in the past", func(in *service.AccessRequestInput) { in.ValidUntil = time.Now().Add(-time.Hour) }, 400, "/validUntil", "in the past"},
		{"period beyond the maximum", func(in *service.AccessRequestInput) { in.ValidUntil = time.Now().Add(400 * 24 * time.Hour) }, 400, "/validUntil", "maximum"},
		{"row scope on a missing field", func(in *service.AccessRequestInput) { in.RowScope.Field = "province" }, 400, "/rowScope/field", `"province"`},
		{"row scope on an object", func(in *service.AccessRequestInput) { in.RowScope.Field = "permanentResidence" }, 400, "/rowScope/field", "single-valued"},
		{"no purpose code", func(in *service.AccessRequestInput) { in.Purpose.Code = "" }, 400, "/purpose/code", "procedure code"},
		{"unknown mode", func(in *service.AccessRequestInput) { in.Modes = []catalog.Mode{"delete"} }, 400, "/modes/0", "query, verify or feed"},
		{"unknown dataset", func(in *service.AccessRequestInput) { in.Dataset = "taxes" }, 400, "/dataset", "taxes"},
		{"consumer of another member", func(in *service.AccessRequestInput) { in.Consumer = population }, 403, "", "000.00.00.G14"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			in := f.validRequest()
			c.change(&in)
			before, _ := f.store.Revision(ctx)
			err := f.integrator.Do(withUnvalidated(ctx), http.MethodPost, "/v1/access-requests", in, nil)
			p := asProblem(t, err)
			if p.Status != c.status || !strings.Contains(p.Detail, c.detail) {
				t.Fatalf("got %d %q, want %d mentioning %s", p.Status, p.Detail, c.status, c.detail)
			}
			if c.pointer != "" && (len(p.Errors) == 0 || p.Errors[0].Pointer != c.pointer) {
				t.Errorf("errors = %+v, want pointer %s", p.Errors, c.pointer)
			}
			if after, _ := f.store.Revision(ctx); after != before {
				t.Error("a refused request changed the catalog")
			}
		})
	}

	t.Run("unassessed consumer is not connected", func(t *testing.T) {
		err := f.store.Update(ctx, func(tx catalog.Tx) error {
			return tx.SetAssessment(ctx, insurance, catalog.Assessment{Level: 2, AssessedBy: "A05", Reference: "r", ValidUntil: time.Now().Add(time.Hour), RecordedAt: time.Now()})
		})
		if err != nil {
			t.Fatal(err)
		}
		defer func() {
			_ = f.store.Update(ctx, func(tx catalog.Tx) error {
				return tx.SetAssessment(ctx, insurance, catalog.Assessment{Level: 3, AssessedBy: "A05", Reference: "r", ValidUntil: time.Now().Add(time.Hour), RecordedAt: time.Now()})
			})
		}()
		err = f.integrator.Do(withUnvalidated(ctx), http.MethodPost, "/v1/access-requests", f.validRequest(), nil)
		if p := asProblem(t, err); p.Status != http.StatusForbidden || !strings.Contains(p.Detail, "level 2 below required 3") {
			t.Fatalf("got %d %q", p.Status, p.Detail)
		}
	})

	t.Run("approval that widens or is malformed leaves the request pending", func(t *testing.T) {
		req := f.file(f.validRequest())
		for _, a := range []service.Approval{
			{Fields: []catalog.GrantedField{{Path: "religion"}}},                            // not requested
			{Fields: []catalog.GrantedField{{Path: "fullName", Mask: "encrypt"}}},           // unknown mask
			{Fields: []catalog.GrantedField{{Path: "permanentResidence", Mask: "nullify"}}}, // mask on an object
			{Fields: []catalog.GrantedField{{Path: "nothing"}}},                             // no such field
		} {
			err := f.approver.Do(withUnvalidated(ctx), http.MethodPost, "/v1/access-requests/"+req.ID+"/approve", a, nil)
			if p := asProblem(t, err); p.Status != http.StatusBadRequest || len(p.Errors) == 0 {
				t.Errorf("approval %+v: got %d %+v", a, p.Status, p)
			}
		}
		var now catalog.AccessRequest
		if err := f.approver.Do(ctx, http.MethodGet, "/v1/access-requests/"+req.ID, nil, &now); err != nil || now.State != catalog.RequestPending || len(now.History) != 1 {
			t.Fatalf("request after refused approvals: %+v %v", now, err)
		}
	})
}
