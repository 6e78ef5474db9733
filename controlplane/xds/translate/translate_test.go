package translate_test

import (
	"bytes"
	"encoding/json"
	"flag"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	tlsv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/transport_sockets/tls/v3"
	"github.com/envoyproxy/go-control-plane/pkg/cache/types"
	"github.com/envoyproxy/go-control-plane/pkg/resource/v3"
	"google.golang.org/protobuf/encoding/protojson"

	"github.com/lienthong/lienthong/catalog"
	"github.com/lienthong/lienthong/controlplane/xds/ir"
	"github.com/lienthong/lienthong/controlplane/xds/translate"
)

var update = flag.Bool("update", false, "rewrite the golden files in testdata")

const (
	td         = "lienthong.test"
	population = "VN:GOV:000.00.00.G01:CSDLDC"
	insurance  = "VN:GOV:000.00.00.G14:CSDLBH"
	hanoi      = "VN:GOV:000.00.00.H26:DVCHN"
)

var now = time.Date(2026, 12, 1, 9, 0, 0, 0, time.UTC)

func roots(t *testing.T) string {
	t.Helper()
	b, err := os.ReadFile("testdata/roots.pem")
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

func grant(id, consumer, provider, dataset string, state catalog.GrantState) catalog.Grant {
	return catalog.Grant{
		ID: id, Consumer: consumer, Provider: provider, Dataset: dataset, State: state,
		Modes:     []catalog.Mode{catalog.ModeQuery},
		ValidFrom: now.Add(-time.Hour), ValidUntil: now.Add(24 * time.Hour),
	}
}

// baseInput is three agencies: the population database (G01), social
// insurance (G14) consuming it, and Hà Nội (H26), a gateway without grants.
func baseInput(t *testing.T) ir.Input {
	var systems []catalog.System
	for _, id := range []string{population, insurance, hanoi, "VN:GOV:000.00.00.G14:KCB", "VN:GOV:000.00.00.G01:GW", "VN:GOV:000.00.00.G14:GW", "VN:GOV:000.00.00.H26:GW"} {
		systems = append(systems, catalog.System{ID: id, Name: id, Member: id[7:20], SecurityLevel: 3,
			Assessment: &catalog.Assessment{Level: 3, AssessedBy: "A05", Reference: "QĐ 1", ValidUntil: now.Add(365 * 24 * time.Hour)}})
	}
	return ir.Input{
		Systems:     systems,
		TrustDomain: td,
		TrustPEM:    roots(t),
		Now:         now,
		Gateways: []catalog.Gateway{
			{Member: "000.00.00.G01", System: "VN:GOV:000.00.00.G01:GW", Address: "gw.bocongan.example:8443"},
			{Member: "000.00.00.G14", System: "VN:GOV:000.00.00.G14:GW", Address: "10.14.0.10:8443"},
			{Member: "000.00.00.H26", System: "VN:GOV:000.00.00.H26:GW", Address: "gw.hanoi.example:9443"},
		},
		Datasets: []catalog.Dataset{
			{System: population, Code: "population", Version: 2},
			{System: population, Code: "residence", Version: 1},
			{System: insurance, Code: "social-insurance", Version: 1},
		},
		Grants: []catalog.Grant{
			grant("grant-1", insurance, population, "population", catalog.GrantActive),
			grant("grant-2", "VN:GOV:000.00.00.G14:KCB", population, "residence", catalog.GrantActive),
		},
	}
}

// scenarios each name a golden file; a reviewer reads what Envoy gets.
func scenarios(t *testing.T) map[string]ir.Input {
	granted := baseInput(t)

	revoked := baseInput(t)
	revoked.Grants[0].State = catalog.GrantRevoked

	sites := baseInput(t)
	sites.Sites = map[string]ir.Site{"000.00.00.G01": {
		GatewayAddress: "127.0.0.1:7001",
		Backends:       map[string]string{population + "/residence": "residence.internal:8080"},
		CertDir:        "/srv/envoy/certs",
	}}
	// A CA rotation: two roots in the bundle.
	sites.TrustPEM = roots(t) + roots(t)
	return map[string]ir.Input{"granted": granted, "revoked": revoked, "sites": sites}
}

func TestGolden(t *testing.T) {
	for name, in := range scenarios(t) {
		t.Run(name, func(t *testing.T) {
			got := render(t, in)
			file := filepath.Join("testdata", name+".golden.json")
			if *update {
				if err := os.WriteFile(file, got, 0o644); err != nil {
					t.Fatal(err)
				}
				return
			}
			want, err := os.ReadFile(file)
			if err != nil {
				t.Fatalf("%v (run go test -update to create it)", err)
			}
			if !bytes.Equal(got, want) {
				t.Errorf("%s differs from the generated configuration; review the change and run go test ./controlplane/xds/translate -update", file)
			}
		})
	}
}

// render builds every edge of in and writes its snapshot as indented JSON
// in a stable order (protojson's own spacing is deliberately unstable).
func render(t *testing.T, in ir.Input) []byte {
	t.Helper()
	m := ir.NewModel(in)
	tr := translate.New()
	var out bytes.Buffer
	out.WriteString("{\n")
	for i, member := range m.Members() {
		e, err := m.Edge(member)
		if err != nil {
			t.Fatal(err)
		}
		snap, err := tr.Snapshot(e)
		if err != nil {
			t.Fatal(err)
		}
		if i > 0 {
			out.WriteString(",\n")
		}
		node := map[string]any{}
		for _, typ := range []resource.Type{resource.ListenerType, resource.RouteType, resource.ClusterType, resource.SecretType} {
			node[typ[strings.LastIndex(typ, ".")+1:]] = map[string]any{"version": snap.GetVersion(typ), "resources": sortedJSON(t, snap.GetResources(typ))}
		}
		b, err := json.Marshal(node)
		if err != nil {
			t.Fatal(err)
		}
		key, _ := json.Marshal(member)
		out.Write(key)
		out.WriteString(": ")
		var ind bytes.Buffer
		if err := json.Indent(&ind, b, "", "  "); err != nil {
			t.Fatal(err)
		}
		out.Write(ind.Bytes())
	}
	out.WriteString("\n}\n")
	return out.Bytes()
}

func sortedJSON(t *testing.T, rs map[string]types.Resource) []json.RawMessage {
	t.Helper()
	names := make([]string, 0, len(rs))
	for n := range rs {
		names = append(names, n)
	}
	sortStrings(names)
	out := make([]json.RawMessage, 0, len(names))
	for _, n := range names {
		b, err := protojson.Marshal(rs[n])
		if err != nil {
			t.Fatal(err)
		}
		var c bytes.Buffer
		if err := json.Compact(&c, b); err != nil {
			t.Fatal(err)
		}
		out = append(out, c.Bytes())
	}
	return out
}

func sortStrings(s []string) {
	for i := 1; i < len(s); i++ {
		for j := i; j > 0 && s[j] < s[j-1]; j-- {
			s[j], s[j-1] = s[j-1], s[j]
		}
	}
}

// TestEveryEdgeConsistentAndValid checks what the golden files cannot say
// by themselves: each snapshot is Consistent, every listed resource
// validates, and every route points at a cluster of the same snapshot.
func TestEveryEdgeConsistentAndValid(t *testing.T) {
	for name, in := range scenarios(t) {
		m := ir.NewModel(in)
		tr := translate.New()
		for _, member := range m.Members() {
			e, err := m.Edge(member)
			if err != nil {
				t.Fatal(err)
			}
			snap, err := tr.Snapshot(e)
			if err != nil {
				t.Fatalf("%s/%s: %v", name, member, err)
			}
			if err := snap.Consistent(); err != nil {
				t.Fatalf("%s/%s: %v", name, member, err)
			}
			clusters := snap.GetResources(resource.ClusterType)
			for _, r := range snap.GetResources(resource.RouteType) {
				for _, ref := range routeClusters(r) {
					if _, ok := clusters[ref]; !ok {
						t.Errorf("%s/%s: a route names cluster %q the snapshot lacks", name, member, ref)
					}
				}
			}
			for typ, rs := range map[string]map[string]types.Resource{"secrets": snap.GetResources(resource.SecretType), "listeners": snap.GetResources(resource.ListenerType)} {
				for n, r := range rs {
					if err := r.(interface{ ValidateAll() error }).ValidateAll(); err != nil {
						t.Errorf("%s/%s: %s %s: %v", name, member, typ, n, err)
					}
				}
			}
		}
	}
}

func routeClusters(r types.Resource) []string {
	var out []string
	b, _ := protojson.Marshal(r)
	var rc struct {
		VirtualHosts []struct {
			Routes []struct {
				Route          *struct{ Cluster string } `json:"route"`
				DirectResponse *struct{ Status int }     `json:"directResponse"`
			} `json:"routes"`
		} `json:"virtualHosts"`
	}
	_ = json.Unmarshal(b, &rc)
	for _, vh := range rc.VirtualHosts {
		for _, rt := range vh.Routes {
			switch {
			case rt.Route != nil:
				out = append(out, rt.Route.Cluster)
			case rt.DirectResponse == nil:
				out = append(out, "") // neither: no cluster the snapshot holds
			}
		}
	}
	return out
}

// TestInvalidIRRefused: a message that breaks Envoy's constraints is
// refused before it is packed, even deep inside an Any (an empty ext_authz
// cluster name would otherwise pass the listener's own validation).
func TestInvalidIRRefused(t *testing.T) {
	m := ir.NewModel(baseInput(t))
	e, err := m.Edge("000.00.00.G01")
	if err != nil {
		t.Fatal(err)
	}
	cases := map[string]func(e *ir.Edge){
		"ext_authz without a cluster": func(e *ir.Edge) { e.Listeners[0].ExtAuthz.Cluster = "" },
		"ext_proc without a cluster":  func(e *ir.Edge) { e.Listeners[0].ExtProc.Cluster = "" },
		"route to no cluster":         func(e *ir.Edge) { e.Routes[0].Routes[0].Cluster = "" },
		"empty trust bundle":          func(e *ir.Edge) { e.Secrets[1].TrustPEM = "" },
		"cluster without a host":      func(e *ir.Edge) { e.Clusters[0].Host = "" },
		"listener without an address": func(e *ir.Edge) { e.Listeners[0].Address = "" },
	}
	for name, breakIt := range cases {
		t.Run(name, func(t *testing.T) {
			c := cloneEdge(e)
			breakIt(c)
			if _, err := translate.New().Snapshot(c); err == nil {
				t.Fatal("translated an invalid edge")
			}
		})
	}
}

func cloneEdge(e *ir.Edge) *ir.Edge {
	c := *e
	c.Listeners = append([]ir.Listener(nil), e.Listeners...)
	for i := range c.Listeners {
		if p := c.Listeners[i].ExtProc; p != nil {
			cp := *p
			c.Listeners[i].ExtProc = &cp
		}
	}
	c.Routes = append([]ir.RouteTable(nil), e.Routes...)
	for i := range c.Routes {
		c.Routes[i].Routes = append([]ir.Route(nil), e.Routes[i].Routes...)
	}
	c.Clusters = append([]ir.Cluster(nil), e.Clusters...)
	c.Secrets = append([]ir.Secret(nil), e.Secrets...)
	return &c
}

// TestTrustBundleRotationChangesOnlySecrets: a new root reaches Envoy as a
// new secrets version while listeners, routes and clusters keep theirs, so
// Envoy swaps the validation context without touching its listeners.
func TestTrustBundleRotationChangesOnlySecrets(t *testing.T) {
	in := baseInput(t)
	m := ir.NewModel(in)
	before, _ := m.Edge("000.00.00.G14")
	in.TrustPEM += in.TrustPEM
	after, _ := ir.NewModel(in).Edge("000.00.00.G14")
	vb, va := before.Versions(), after.Versions()
	if vb.Secrets == va.Secrets {
		t.Fatal("secrets version unchanged after a rotation")
	}
	if vb.Listeners != va.Listeners || vb.Routes != va.Routes || vb.Clusters != va.Clusters {
		t.Fatalf("a trust bundle change moved other types: %+v -> %+v", vb, va)
	}
	snap, err := translate.New().Snapshot(after)
	if err != nil {
		t.Fatal(err)
	}
	s := snap.GetResources(resource.SecretType)[ir.TrustBundle].(*tlsv3.Secret)
	if got := s.GetValidationContext().GetTrustedCa().GetInlineString(); got != in.TrustPEM {
		t.Fatal("the secret does not carry the rotated bundle")
	}
}
