package ir_test

import (
	"slices"
	"testing"
	"time"

	"github.com/lienthong/lienthong/catalog"
	"github.com/lienthong/lienthong/controlplane/xds/ir"
)

var now = time.Date(2026, 12, 1, 9, 0, 0, 0, time.UTC)

const (
	population = "VN:GOV:000.00.00.G01:CSDLDC"
	insurance  = "VN:GOV:000.00.00.G14:CSDLBH"
	justice    = "VN:GOV:000.00.00.G05:HTTTHT"
)

func grant(id, consumer, dataset string) catalog.Grant {
	return catalog.Grant{
		ID: id, Consumer: consumer, Provider: population, Dataset: dataset, State: catalog.GrantActive,
		Modes: []catalog.Mode{catalog.ModeQuery}, ValidFrom: now.Add(-time.Hour), ValidUntil: now.Add(time.Hour),
	}
}

func assessed(id string) catalog.System {
	return catalog.System{ID: id, Name: id, Member: id[7:20], SecurityLevel: 3,
		Assessment: &catalog.Assessment{Level: 3, AssessedBy: "A05", Reference: "QĐ 1", ValidUntil: now.Add(365 * 24 * time.Hour)}}
}

func systems(ids ...string) []catalog.System {
	var out []catalog.System
	for _, id := range ids {
		out = append(out, assessed(id))
	}
	return out
}

func input() ir.Input {
	return ir.Input{
		Systems:     systems(population, insurance, justice, "VN:GOV:000.00.00.G01:GW", "VN:GOV:000.00.00.G05:GW", "VN:GOV:000.00.00.G14:GW"),
		TrustDomain: "lienthong.test", TrustPEM: "roots", Now: now,
		Gateways: []catalog.Gateway{
			{Member: "000.00.00.G01", System: "VN:GOV:000.00.00.G01:GW", Address: "gw1.example:8443"},
			{Member: "000.00.00.G05", System: "VN:GOV:000.00.00.G05:GW", Address: "gw5.example:8443"},
			{Member: "000.00.00.G14", System: "VN:GOV:000.00.00.G14:GW", Address: "gw14.example:8443"},
		},
		Datasets: []catalog.Dataset{{System: population, Code: "population"}, {System: population, Code: "residence"}},
		Grants:   []catalog.Grant{grant("g1", insurance, "population"), grant("g2", insurance, "population")},
	}
}

func routeNames(t *testing.T, m *ir.Model, member, table string) []string {
	t.Helper()
	e, err := m.Edge(member)
	if err != nil {
		t.Fatal(err)
	}
	var out []string
	for _, rt := range e.Routes {
		if rt.Name == table {
			for _, r := range rt.Routes {
				out = append(out, r.Name)
			}
		}
	}
	return out
}

// TestGrantBecomesRoute follows a grant into the consumer's outbound routes
// and out again, and checks that only the consumer's edge is named as
// affected, and only when its set of routes moves.
func TestGrantBecomesRoute(t *testing.T) {
	m := ir.NewModel(input())
	want := []string{"query/" + population + "/population", "verify/" + population + "/population"}
	if got := routeNames(t, m, "000.00.00.G14", ir.OutboundRoutes); !slices.Equal(got, want) {
		t.Fatalf("outbound routes %v, want %v", got, want)
	}
	if got := routeNames(t, m, "000.00.00.G05", ir.OutboundRoutes); len(got) != 0 {
		t.Fatalf("a member without grants routes to %v", got)
	}
	before := versions(t, m)

	// Revoking one of two grants for the same dataset changes no edge.
	g1 := grant("g1", insurance, "population")
	g1.State = catalog.GrantRevoked
	if aff := m.PutGrant(&g1); len(aff) != 0 {
		t.Fatalf("revoking a duplicate grant affected %v", aff)
	}
	// Revoking the last one affects the consumer only.
	g2 := grant("g2", insurance, "population")
	g2.State = catalog.GrantRevoked
	if aff := m.PutGrant(&g2); !slices.Equal(aff, []string{"000.00.00.G14"}) {
		t.Fatalf("affected %v, want the consumer only", aff)
	}
	if got := routeNames(t, m, "000.00.00.G14", ir.OutboundRoutes); len(got) != 0 {
		t.Fatalf("revoked grant still routed: %v", got)
	}
	after := versions(t, m)
	for member, v := range before {
		if changed := v != after[member]; changed != (member == "000.00.00.G14") {
			t.Errorf("member %s: changed=%v", member, changed)
		}
	}
	// A grant of another member's system: justice now routes, nobody else moves.
	g3 := grant("g3", justice, "residence")
	if aff := m.PutGrant(&g3); !slices.Equal(aff, []string{"000.00.00.G05"}) {
		t.Fatalf("affected %v", aff)
	}
}

func versions(t *testing.T, m *ir.Model) map[string]ir.Versions {
	out := map[string]ir.Versions{}
	for _, mem := range m.Members() {
		e, err := m.Edge(mem)
		if err != nil {
			t.Fatal(err)
		}
		out[mem] = e.Versions()
	}
	return out
}

// TestGrantsNotInForceRouteNothing: expired, future, feed-only grants and
// grants to a provider without a gateway give no route.
func TestGrantsNotInForceRouteNothing(t *testing.T) {
	cases := map[string]func(g *catalog.Grant){
		"expired":   func(g *catalog.Grant) { g.ValidUntil = now },
		"future":    func(g *catalog.Grant) { g.ValidFrom = now.Add(time.Minute) },
		"feed only": func(g *catalog.Grant) { g.Modes = []catalog.Mode{catalog.ModeFeed} },
		"revoked":   func(g *catalog.Grant) { g.State = catalog.GrantRevoked },
		"provider without gateway": func(g *catalog.Grant) {
			g.Provider = "VN:GOV:000.00.00.H26:DVCHN"
		},
	}
	for name, edit := range cases {
		t.Run(name, func(t *testing.T) {
			in := input()
			in.Grants = []catalog.Grant{grant("g", insurance, "population")}
			edit(&in.Grants[0])
			if got := routeNames(t, ir.NewModel(in), "000.00.00.G14", ir.OutboundRoutes); len(got) != 0 {
				t.Fatalf("routes %v", got)
			}
		})
	}
}

// TestInboundAdmitsRegisteredPeersOnly: the provider's inbound door names
// every other registered gateway and not its own.
func TestInboundAdmitsRegisteredPeersOnly(t *testing.T) {
	e, err := ir.NewModel(input()).Edge("000.00.00.G01")
	if err != nil {
		t.Fatal(err)
	}
	var in ir.Listener
	for _, l := range e.Listeners {
		if l.Name == ir.InboundListener {
			in = l
		}
	}
	want := []string{"spiffe://lienthong.test/GOV/000.00.00.G05/GW", "spiffe://lienthong.test/GOV/000.00.00.G14/GW"}
	if !slices.Equal(in.TLS.PeerSPIFFE, want) || in.Port != 8443 || in.ExtProc == nil || !in.ExtAuthz.IncludePeerCertificate {
		t.Fatalf("inbound listener %+v", in)
	}
}

// TestNotSecureNotConnected: a system without a current assessment at the
// required level gets no edge, no route and no peer cluster.
func TestNotSecureNotConnected(t *testing.T) {
	expire := func(id string) func(in *ir.Input) {
		return func(in *ir.Input) {
			for i := range in.Systems {
				if in.Systems[i].ID == id {
					in.Systems[i].Assessment.ValidUntil = now.Add(-time.Minute)
				}
			}
		}
	}
	revoke := func(id string) func(in *ir.Input) {
		return func(in *ir.Input) {
			for i := range in.Systems {
				if in.Systems[i].ID == id {
					at := now.Add(-time.Minute)
					in.Systems[i].RevokedAt = &at
				}
			}
		}
	}
	cases := map[string]struct {
		edit            func(in *ir.Input)
		providerEdge    bool
		consumerRoutes  int
		providerInbound int
	}{
		"all assessed":                {func(*ir.Input) {}, true, 2, 4},
		"consumer assessment expired": {expire(insurance), true, 0, 4},
		"consumer below the dataset's level": {func(in *ir.Input) {
			in.Datasets[0].MinConsumerLevel = 4
		}, true, 0, 4},
		"provider system revoked":       {revoke(population), true, 0, 0},
		"provider gateway expired":      {expire("VN:GOV:000.00.00.G01:GW"), false, 0, 0},
		"declared above assessed level": {func(in *ir.Input) { in.Systems[3].SecurityLevel = 4 }, false, 0, 0},
		"system unknown":                {func(in *ir.Input) { in.Systems = in.Systems[1:] }, true, 0, 0},
	}
	for name, c := range cases {
		t.Run(name, func(t *testing.T) {
			in := input()
			c.edit(&in)
			m := ir.NewModel(in)
			if got := slices.Contains(m.Members(), "000.00.00.G01"); got != c.providerEdge {
				t.Fatalf("provider edge present=%v", got)
			}
			if got := len(routeNames(t, m, "000.00.00.G14", ir.OutboundRoutes)); got != c.consumerRoutes {
				t.Fatalf("consumer routes %d, want %d", got, c.consumerRoutes)
			}
			if c.providerEdge {
				if got := len(routeNames(t, m, "000.00.00.G01", ir.InboundRoutes)); got != c.providerInbound {
					t.Fatalf("provider inbound routes %d, want %d", got, c.providerInbound)
				}
			}
		})
	}
}
