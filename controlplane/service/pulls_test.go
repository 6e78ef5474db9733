package service

import (
	"testing"
	"time"

	"github.com/lienthong/lienthong/catalog"
	"github.com/lienthong/lienthong/controlplane/auth"
)

// Only a gateway's own pulls count as its acknowledgement, and each member
// sees only its own gateway's.
func TestGatewayPullsAreTheGatewaysOwnAndScoped(t *testing.T) {
	at := time.Date(2026, 12, 5, 0, 0, 0, 0, time.UTC)
	s := New(nil, WithClock(func() time.Time { return at }))
	g01 := auth.Principal{Role: catalog.RoleGateway, System: "VN:GOV:000.00.00.G01:GW", Member: "000.00.00.G01", Certificate: "aa"}
	g14 := auth.Principal{Role: catalog.RoleGateway, System: "VN:GOV:000.00.00.G14:GW", Member: "000.00.00.G14", Certificate: "bb"}
	admin := auth.Principal{TokenID: "t1", Role: catalog.RolePlatformAdmin}

	s.notePull(g01, "000.00.00.G01", `"v1"`, "")
	s.notePull(g01, "000.00.00.G01", `"v2"`, `"v1"`)
	s.notePull(g14, "000.00.00.G14", `"w1"`, `"w1"`)
	// An operator pulling a member's share is not that gateway holding it.
	s.notePull(admin, "000.00.00.G14", `"w2"`, "")

	all := s.GatewayPulls(admin)
	if len(all) != 2 {
		t.Fatalf("operator sees %d gateways, want 2: %+v", len(all), all)
	}
	if p := all[0]; p.Member != "000.00.00.G01" || p.Sent != `"v2"` || p.Held != `"v1"` || !p.At.Equal(at) || p.Certificate != "aa" {
		t.Errorf("G01 = %+v, want sent v2, held v1", p)
	}
	if p := all[1]; p.Sent != `"w1"` || p.Held != `"w1"` {
		t.Errorf("G14 = %+v: the operator's pull was taken for the gateway's", p)
	}
	auditor := auth.Principal{TokenID: "t2", Role: catalog.RoleAuditor, Member: "000.00.00.G14"}
	if got := s.GatewayPulls(auditor); len(got) != 1 || got[0].Member != "000.00.00.G14" {
		t.Errorf("a G14 auditor sees %+v, want G14's only", got)
	}
}
