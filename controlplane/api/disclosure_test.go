package api_test

import (
	"context"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/lienthong/lienthong/catalog"
	"github.com/lienthong/lienthong/controlplane/service"
)

// A disclosure date requested under a legal basis travels to the grant, and
// only a plausible one is accepted.
func TestDiscloseAfterTravelsToTheGrant(t *testing.T) {
	f := newAccessFixture(t)
	ctx := context.Background()
	in := f.validRequest()
	after := in.ValidUntil.Add(30 * 24 * time.Hour).UTC().Truncate(time.Second)
	in.LegalBasis.DiscloseAfter = &after
	req := f.file(in)
	if req.LegalBasis.DiscloseAfter == nil || !req.LegalBasis.DiscloseAfter.Equal(after) {
		t.Fatalf("request legal basis = %+v", req.LegalBasis)
	}
	g, err := f.approver.Approve(ctx, req.ID, service.Approval{Fields: []catalog.GrantedField{{Path: "fullName"}}})
	if err != nil {
		t.Fatal(err)
	}
	if g.LegalBasis.DiscloseAfter == nil || !g.LegalBasis.DiscloseAfter.Equal(after) {
		t.Fatalf("grant legal basis = %+v, want discloseAfter %s", g.LegalBasis, after)
	}
	if g.LegalBasis.DisclosedAt(after.Add(-time.Second)) || !g.LegalBasis.DisclosedAt(after) {
		t.Fatal("DisclosedAt does not turn at the disclosure date")
	}
	if !(catalog.LegalBasis{}).DisclosedAt(time.Time{}) {
		t.Fatal("a basis without a date is not disclosed")
	}

	cases := []struct {
		name    string
		change  func(*service.AccessRequestInput)
		pointer string
		detail  string
	}{
		{"in the past", func(in *service.AccessRequestInput) {
			d := time.Now().Add(-time.Hour)
			in.LegalBasis.DiscloseAfter = &d
		}, "/legalBasis/discloseAfter", "in the future"},
		{"beyond the maximum deferral", func(in *service.AccessRequestInput) {
			d := in.ValidUntil.Add(catalog.MaxDisclosureDeferral + 24*time.Hour)
			in.LegalBasis.DiscloseAfter = &d
		}, "/legalBasis/discloseAfter", "at most"},
		{"without a legal reference", func(in *service.AccessRequestInput) {
			d := in.ValidUntil
			in.LegalBasis = catalog.LegalBasis{DiscloseAfter: &d}
			in.Fields = []string{"fullName"}
		}, "/legalBasis/reference", "deferring disclosure"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			in := f.validRequest()
			c.change(&in)
			err := f.integrator.Do(withUnvalidated(ctx), http.MethodPost, "/v1/access-requests", in, nil)
			p := asProblem(t, err)
			if p.Status != http.StatusBadRequest || len(p.Errors) == 0 || p.Errors[0].Pointer != c.pointer || !strings.Contains(p.Errors[0].Message, c.detail) {
				t.Fatalf("got %d %+v, want 400 at %s mentioning %q", p.Status, p.Errors, c.pointer, c.detail)
			}
		})
	}
}
