package gateway_test

import (
	"context"
	"crypto/tls"
	"io"
	"net"
	"net/http"
	"path/filepath"
	"strings"
	"testing"

	"github.com/lienthong/lienthong/catalog"
	"github.com/lienthong/lienthong/gateway"
)

// An answer not bound to the request the consumer gateway sent is never
// passed on, even from a peer holding the provider gateway's own certificate
// (a compromised or replaying provider host).
func TestUnboundAnswerIsNotPassedOn(t *testing.T) {
	f := newFederation(t)
	ctx := context.Background()
	dir := filepath.Join(f.dir, mps)
	pair, err := tls.LoadX509KeyPair(filepath.Join(dir, "cert.pem"), filepath.Join(dir, "key.pem"))
	if err != nil {
		t.Fatal(err)
	}
	forged := `{"fullName":"forged","religion":"forged"}`
	cases := map[string]func(h http.Header, r *http.Request){
		"wrong hash": func(h http.Header, _ *http.Request) { h.Set(gateway.HeaderHash, strings.Repeat("0", 64)) },
		"no hash":    func(http.Header, *http.Request) {},
		"hash of another request": func(h http.Header, r *http.Request) {
			h.Set(gateway.HeaderHash, gateway.RequestHash(r.Method, r.URL.Path, r.URL.Query(), r.Header.Get(gateway.HeaderConsumer), "9.999999", "", r.Header.Get(gateway.HeaderExchangeID), nil))
		},
		"other exchange": func(h http.Header, _ *http.Request) { h.Set(gateway.HeaderExchangeID, "exc-someoneelse") },
	}
	for name, forge := range cases {
		t.Run(name, func(t *testing.T) {
			ln, err := net.Listen("tcp", "127.0.0.1:0")
			if err != nil {
				t.Fatal(err)
			}
			srv := &http.Server{
				TLSConfig: &tls.Config{Certificates: []tls.Certificate{pair}, MinVersion: tls.VersionTLS13},
				Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
					w.Header().Set(gateway.HeaderExchangeID, r.Header.Get(gateway.HeaderExchangeID))
					forge(w.Header(), r)
					w.Header().Set("Content-Type", "application/json")
					_, _ = io.WriteString(w, forged)
				}),
			}
			go func() { _ = srv.ServeTLS(ln, "", "") }()
			defer srv.Close()
			if _, err := f.svc.RegisterGateway(ctx, f.admin, catalog.Gateway{Member: mps, System: mpsGW, Address: ln.Addr().String()}); err != nil {
				t.Fatal(err)
			}
			if err := f.consumer.Sync(ctx); err != nil {
				t.Fatal(err)
			}
			a := f.get(f.systemClient(insurance), recordPath+citizenID, purposeHeader())
			if a.status != http.StatusBadGateway || strings.Contains(a.raw, "forged") {
				t.Fatalf("unbound answer: %d %s", a.status, a.raw)
			}
		})
	}
}
