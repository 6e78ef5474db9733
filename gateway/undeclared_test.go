package gateway_test

import (
	"context"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/lienthong/lienthong/catalog"
	"github.com/lienthong/lienthong/controlplane/service"
)

// smuggler is a citizen whose record, as a malicious or careless backend
// answers it, carries keys the dataset does not declare inside objects a
// grant allows whole: religion and Ethnicity in permanentResidence, health
// in an item of relatives.
const smuggler = "001090000006"

func init() {
	citizens[smuggler] = `{"personalId":"001090000006","fullName":"Đỗ Văn E","dateOfBirth":"1990-01-01","sex":"male",` +
		`"permanentResidence":{"provinceCode":"01","wardCode":"00001","addressLine":"1 Hàng Bạc","religion":"Phật giáo","Ethnicity":"02"},` +
		`"relatives":[{"relationship":"Con","fullName":"Đỗ Thị F","health":"HIV"}]}`
}

// A field granted whole passes the members its schema declares and no
// other: the provider drops what the backend adds inside it.
func TestGrantedObjectCarriesOnlyDeclaredMembers(t *testing.T) {
	f := newFederation(t)
	ctx := context.Background()
	const wholePurpose = "1.009999"
	req, err := f.svc.RequestAccess(ctx, f.admin, service.AccessRequestInput{
		Consumer: insurance, Provider: population, Dataset: "population",
		Fields: []string{"permanentResidence", "relatives"}, Purpose: catalog.Purpose{Code: wholePurpose},
		LegalBasis: catalog.LegalBasis{Reference: "Nghị định 13/2023/NĐ-CP"}, ValidUntil: time.Now().Add(24 * time.Hour),
		Modes: []catalog.Mode{catalog.ModeQuery},
	})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := f.svc.Approve(ctx, f.admin, req.ID, service.Approval{Fields: []catalog.GrantedField{
		{Path: "permanentResidence"}, {Path: "relatives"},
	}}); err != nil {
		t.Fatal(err)
	}
	for _, g := range []interface{ Sync(context.Context) error }{f.provider, f.consumer} {
		if err := g.Sync(ctx); err != nil {
			t.Fatal(err)
		}
	}
	a := f.get(f.systemClient(insurance), recordPath+smuggler, map[string]string{"X-LT-Purpose": wholePurpose})
	if a.status != http.StatusOK {
		t.Fatalf("%d %s", a.status, a.raw)
	}
	want := `{"permanentResidence":{"provinceCode":"01","wardCode":"00001","addressLine":"1 Hàng Bạc"},` +
		`"relatives":[{"relationship":"Con","fullName":"Đỗ Thị F"}]}`
	if strings.TrimSpace(a.raw) != want {
		t.Fatalf("\n got  %s\n want %s", a.raw, want)
	}
}
