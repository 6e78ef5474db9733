package console_test

import (
	"bytes"
	"context"
	"crypto/ed25519"
	"crypto/tls"
	"crypto/x509"
	"fmt"
	"html"
	"io"
	"log/slog"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/lienthong/lienthong/audit"
	"github.com/lienthong/lienthong/audit/ship"
	"github.com/lienthong/lienthong/catalog"
	"github.com/lienthong/lienthong/certs"
	"github.com/lienthong/lienthong/controlplane/auditapi"
	"github.com/lienthong/lienthong/controlplane/client"
	"github.com/lienthong/lienthong/controlplane/service"
)

// The shipping lag, end to end with real components: a real control plane
// (TLS, SQLite, the console, the metrics listener), a gateway enrolled with
// a certificate of its own, its real hash-chained log (audit.OpenFile) and
// its real shipper over mTLS, reporting the log head with each shipment
// and in heartbeats. Once shipping has caught up, the gateways page, the
// API and the metric say "lag 0"; when the log grows while its entries do
// not get through (the shipper stopped; the gateway still reports its
// head), all three show the lag in records.
func TestShippingLagOnTheGatewaysPage(t *testing.T) {
	ctx, cancel := context.WithCancel(context.Background())
	fed := startFederation(t, ctx, "")
	t.Cleanup(cancel)
	admin, err := client.New(fed.ready.URL, fed.ready.AdminToken, fed.ready.CAFile)
	if err != nil {
		t.Fatal(err)
	}
	const member, gw = "000.00.00.G01", "VN:GOV:000.00.00.G01:GW"
	if _, err := admin.AddSystem(ctx, client.NewSystem{ID: gw, Name: "gateway", SecurityLevel: 3}); err != nil {
		t.Fatal(err)
	}
	if _, err := admin.Assess(ctx, gw, client.NewAssessment{Level: 3, AssessedBy: "Cục A05", Reference: "QĐ 14", ValidUntil: time.Now().Add(365 * 24 * time.Hour)}); err != nil {
		t.Fatal(err)
	}
	if _, err := admin.RegisterGateway(ctx, member, gw, "127.0.0.1:9444"); err != nil {
		t.Fatal(err)
	}
	hc := gatewayClient(t, fed.ready.CAFile, admin, gw)

	// The gateway's log and its shipper, as gateway.New wires them.
	path := filepath.Join(t.TempDir(), "audit.jsonl")
	key := ed25519.NewKeyFromSeed(bytes.Repeat([]byte{3}, ed25519.SeedSize))
	sink, err := audit.OpenFile(path, audit.Options{Gateway: gw, Key: key, CheckpointEvery: 16})
	if err != nil {
		t.Fatal(err)
	}
	defer sink.Close()
	quiet := slog.New(slog.NewTextHandler(io.Discard, nil))
	shipCtx, stopShipping := context.WithCancel(ctx)
	shipped := make(chan struct{})
	shipper := ship.New(ship.NewClient(hc, fed.ready.URL, gw, ""), path, ship.Options{Key: key.Public().(ed25519.PublicKey),
		Batch: 10, Poll: 10 * time.Millisecond, Heartbeat: 20 * time.Millisecond, Durable: sink.Durable, Log: quiet})
	go func() { shipper.Run(shipCtx); close(shipped) }()
	defer func() { stopShipping(); <-shipped }()
	write := func(n int) {
		for i := 0; i < n; i++ {
			r := audit.Record{Time: time.Now().UTC(), ExchangeID: catalog.NewID("exc"), Side: "provider", Phase: audit.Outcome,
				Consumer: "VN:GOV:000.00.00.G14:CSDLBH", Provider: "VN:GOV:000.00.00.G01:CSDLDC", Dataset: "population", Status: 200}
			if err := audit.Write(ctx, sink, &r); err != nil {
				t.Fatal(err)
			}
		}
	}
	write(50)
	head := sink.Durable()

	// Shipping catches up: what the index holds is the head the gateway
	// reported, and heartbeats keep coming while it is idle.
	row := waitShipping(t, admin, gw, func(r auditapi.ShippingRow) bool { return r.Shipped == head && r.Head == head })
	if row.Lag != 0 || row.Behind || row.ShippedAt.IsZero() {
		t.Fatalf("caught up: %+v", row)
	}
	firstReport := row.HeadAt
	waitShipping(t, admin, gw, func(r auditapi.ShippingRow) bool { return r.HeadAt.After(firstReport) })

	v := newVisitor(t, fed)
	u, _ := url.Parse(fed.ready.URL)
	v.hc.Jar.SetCookies(u, []*http.Cookie{{Name: "lt_lang", Value: "en", Path: "/"}})
	if resp := v.signInWithToken(fed.ready.AdminToken); resp.StatusCode != http.StatusOK {
		t.Fatalf("sign in: %d", resp.StatusCode)
	}
	cell := shippingCell(t, v, gw)
	if want := fmt.Sprintf("shipped up to %d of %d (lag 0 records, last shipment ", head, head); !strings.Contains(cell, want) {
		t.Fatalf("gateways page says %q, want %q", cell, want)
	}

	// The shipper stops; the gateway's log grows by 30 records and the
	// gateway reports its head (as its shipper's heartbeat does) over the
	// same mTLS identity.
	stopShipping()
	<-shipped
	write(30)
	newHead := sink.Durable()
	if err := ship.NewClient(hc, fed.ready.URL, gw, "").PutHead(ctx, newHead); err != nil {
		t.Fatal(err)
	}
	row = waitShipping(t, admin, gw, func(r auditapi.ShippingRow) bool { return r.Head == newHead })
	if row.Shipped != head || row.Lag != newHead-head {
		t.Fatalf("after the log grew unshipped: %+v", row)
	}
	cell = shippingCell(t, v, gw)
	if want := fmt.Sprintf("shipped up to %d of %d (lag %d records, last shipment ", head, newHead, newHead-head); !strings.Contains(cell, want) {
		t.Fatalf("gateways page says %q, want %q", cell, want)
	}
	// The first scrape reads the index (later ones reuse it for 10 s).
	if got := lagMetric(t, fed.ready.MetricsAddress, gw); got != float64(newHead-head) {
		t.Fatalf("lienthong_audit_shipping_lag_records{gateway=%q} = %v, want %d", gw, got, newHead-head)
	}

	// Another member's auditor does not see this gateway's shipping.
	tok, err := admin.CreateToken(ctx, client.NewToken{Name: "vss auditor", Role: catalog.RoleAuditor, Member: "000.00.00.G14"})
	if err != nil {
		t.Fatal(err)
	}
	other, err := client.New(fed.ready.URL, tok.Token, fed.ready.CAFile)
	if err != nil {
		t.Fatal(err)
	}
	if rows := shippingRows(t, other); len(rows) != 0 {
		t.Fatalf("another member's auditor sees %+v", rows)
	}
}

// gatewayClient enrols a certificate for the gateway system and returns an
// HTTP client that presents it (mTLS), as a gateway calls the control plane.
func gatewayClient(t *testing.T, caFile string, admin *client.Client, system string) *http.Client {
	t.Helper()
	id, err := catalog.ParseSystemID(system)
	if err != nil {
		t.Fatal(err)
	}
	keyPEM, csrPEM, err := certs.GenerateKeyAndCSR(id, service.DefaultTrustDomain)
	if err != nil {
		t.Fatal(err)
	}
	enr, err := admin.Enroll(context.Background(), system, csrPEM)
	if err != nil {
		t.Fatal(err)
	}
	pair, err := tls.X509KeyPair([]byte(enr.ChainPEM), keyPEM)
	if err != nil {
		t.Fatal(err)
	}
	pem, err := os.ReadFile(caFile)
	if err != nil {
		t.Fatal(err)
	}
	pool := x509.NewCertPool()
	pool.AppendCertsFromPEM(pem)
	return &http.Client{Timeout: 10 * time.Second, Transport: &http.Transport{TLSClientConfig: &tls.Config{
		RootCAs: pool, Certificates: []tls.Certificate{pair}, MinVersion: tls.VersionTLS12}}}
}

func shippingRows(t *testing.T, c *client.Client) []auditapi.ShippingRow {
	t.Helper()
	var out struct{ Items []auditapi.ShippingRow }
	if err := c.Do(context.Background(), http.MethodGet, "/v1/audit/shipping", nil, &out); err != nil {
		t.Fatal(err)
	}
	return out.Items
}

// waitShipping polls GET /v1/audit/shipping until the gateway's row
// satisfies ok, bounded in time.
func waitShipping(t *testing.T, c *client.Client, gw string, ok func(auditapi.ShippingRow) bool) auditapi.ShippingRow {
	t.Helper()
	deadline := time.Now().Add(30 * time.Second)
	var last auditapi.ShippingRow
	for {
		for _, r := range shippingRows(t, c) {
			if r.Gateway == gw {
				last = r
				if ok(r) {
					return r
				}
			}
		}
		if time.Now().After(deadline) {
			t.Fatalf("shipping of %s never got there; last %+v", gw, last)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

var shippingCellRE = regexp.MustCompile(`(?s)<td class="audit-shipping">(.*?)</td>`)

// shippingCell reads the gateway's audit shipping cell on the gateways page.
func shippingCell(t *testing.T, v *visitor, gw string) string {
	t.Helper()
	resp, body := v.get("/console/gateways")
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("gateways page: %d", resp.StatusCode)
	}
	i := strings.Index(body, gw)
	if i < 0 {
		t.Fatalf("gateway %s is not on the gateways page", gw)
	}
	m := shippingCellRE.FindStringSubmatch(body[i:])
	if m == nil {
		t.Fatalf("no audit shipping cell for %s", gw)
	}
	return html.UnescapeString(m[1])
}

// lagMetric reads lienthong_audit_shipping_lag_records{gateway} from the
// control plane's metrics listener (-1 when absent).
func lagMetric(t *testing.T, addr, gw string) float64 {
	t.Helper()
	resp, err := http.Get("http://" + addr + "/metrics")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	prefix := `lienthong_audit_shipping_lag_records{gateway="` + gw + `"} `
	for _, line := range strings.Split(string(b), "\n") {
		if v, ok := strings.CutPrefix(line, prefix); ok {
			f, err := strconv.ParseFloat(v, 64)
			if err != nil {
				t.Fatal(err)
			}
			return f
		}
	}
	return -1
}
