package gateway_test

import (
	"context"
	"encoding/json"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/lienthong/lienthong/adapters/synthetic"
	"github.com/lienthong/lienthong/catalog"
	"github.com/lienthong/lienthong/catalog/storetest"
	"github.com/lienthong/lienthong/controlplane/service"
	"github.com/lienthong/lienthong/gateway"
)

func TestPostgresBackendWithRowScope(t *testing.T) {
	dsn := storetest.FreshPostgresDatabase(t)
	ctx := context.Background()
	pool, err := pgxpool.New(ctx, dsn)
	if err != nil {
		t.Fatal(err)
	}
	defer pool.Close()
	people := synthetic.Citizens(200, 7)
	if err := synthetic.LoadPostgres(ctx, pool, "citizens", people); err != nil {
		t.Fatal(err)
	}
	mapping := synthetic.CitizenMapping("citizens")
	f := newFederationWith(t, func(c *gateway.Config) {
		var b gateway.Backend
		raw, _ := json.Marshal(map[string]any{"recordPath": "citizens/{id}", "postgres": map[string]any{
			"dsn": dsn, "table": mapping.Table, "key": mapping.Key, "listPath": mapping.ListPath, "columns": mapping.Columns,
		}})
		if err := json.Unmarshal(raw, &b); err != nil {
			t.Fatal(err)
		}
		c.Backends = map[string]gateway.Backend{population + "/population": b}
	})

	// A second grant scoped to the province of the first citizen.
	inScope := people[0]
	var outScope synthetic.Citizen
	for _, p := range people[1:] {
		if p.PermanentResidence.ProvinceCode != inScope.PermanentResidence.ProvinceCode {
			outScope = p
			break
		}
	}
	const scopedPurpose = "1.000777"
	req, err := f.svc.RequestAccess(ctx, f.admin, service.AccessRequestInput{
		Consumer: insurance, Provider: population, Dataset: "population", Fields: []string{"fullName", "permanentResidence.provinceCode"},
		Purpose: catalog.Purpose{Code: scopedPurpose}, ValidUntil: time.Now().Add(24 * time.Hour), Modes: []catalog.Mode{catalog.ModeQuery},
		RowScope: &catalog.RowScope{Field: "permanentResidence.provinceCode", Values: []string{inScope.PermanentResidence.ProvinceCode}},
	})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := f.svc.Approve(ctx, f.admin, req.ID, service.Approval{}); err != nil {
		t.Fatal(err)
	}
	if err := f.provider.Sync(ctx); err != nil {
		t.Fatal(err)
	}
	c := f.systemClient(insurance)

	a := f.get(c, recordPath+inScope.PersonalID, purposeHeader())
	if a.status != http.StatusOK || a.body["fullName"] != inScope.FullName || len(a.body) != 4 {
		t.Fatalf("granted read from PostgreSQL: %d %s", a.status, a.raw)
	}
	if strings.Contains(a.raw, inScope.PersonalID) {
		t.Errorf("personalId not masked: %s", a.raw)
	}
	scoped := map[string]string{gateway.HeaderPurpose: scopedPurpose}
	if a := f.get(c, recordPath+inScope.PersonalID, scoped); a.status != http.StatusOK || len(a.body) != 2 {
		t.Errorf("in-scope read: %d %s", a.status, a.raw)
	}
	if a := f.get(c, recordPath+outScope.PersonalID, scoped); a.status != http.StatusNotFound || strings.Contains(a.raw, outScope.FullName) {
		t.Errorf("out-of-scope read: %d %s", a.status, a.raw)
	}
	if a := f.get(c, recordPath+"1' OR '1'='1", purposeHeader()); a.status == http.StatusOK {
		t.Errorf("injection-shaped id answered: %s", a.raw)
	}
}
