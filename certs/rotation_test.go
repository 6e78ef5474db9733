package certs_test

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"io"
	"log"
	"net"
	"net/http"
	"net/http/httptrace"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/lienthong/lienthong/catalog"
	"github.com/lienthong/lienthong/certs"
	"github.com/lienthong/lienthong/certs/embedded"
)

const td = "lienthong.test"

var (
	population = catalog.SystemID{Instance: "VN", Class: "GOV", Member: "000.00.00.G01", Code: "CSDLDC"}
	insurance  = catalog.SystemID{Instance: "VN", Class: "GOV", Member: "000.00.00.G13", Code: "BHXH-PORTAL"}
)

func newCA(t *testing.T) *embedded.CA {
	t.Helper()
	ca, err := embedded.Open(t.TempDir(), embedded.WithPassphrase(nil))
	if err != nil {
		t.Fatal(err)
	}
	return ca
}

// renewer is what a gateway passes to its Rotator: a new key made here, a
// CSR to the authority, the answer paired with the key.
func renewer(ca certs.Authority, id catalog.SystemID, ttl time.Duration) func(context.Context) (tls.Certificate, error) {
	return func(ctx context.Context) (tls.Certificate, error) {
		keyPEM, csrPEM, err := certs.GenerateKeyAndCSR(id, td)
		if err != nil {
			return tls.Certificate{}, err
		}
		iss, err := ca.Sign(ctx, certs.SignRequest{CSR: csrPEM, System: id, TrustDomain: td, TTL: ttl})
		if err != nil {
			return tls.Certificate{}, err
		}
		return tls.X509KeyPair(iss.CertificatePEM(), keyPEM)
	}
}

func trustStore(t *testing.T, ca certs.Authority, revoked ...string) *certs.TrustStore {
	t.Helper()
	roots, err := ca.TrustBundle(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	s, err := certs.NewTrustStore(roots, revoked)
	if err != nil {
		t.Fatal(err)
	}
	return s
}

// serveTLS runs an HTTPS server on loopback that answers with the caller's
// SPIFFE id, and records the client serials it sees.
func serveTLS(t *testing.T, cfg *tls.Config, seen func(serial string)) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	srv := &http.Server{
		Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			leaf := r.TLS.PeerCertificates[0]
			if seen != nil {
				seen(certs.SerialHex(leaf.SerialNumber))
			}
			id, err := certs.SPIFFEID(leaf)
			if err != nil {
				http.Error(w, err.Error(), http.StatusForbidden)
				return
			}
			io.WriteString(w, id)
		}),
		ReadHeaderTimeout: 5 * time.Second,
		// Refused handshakes are expected in these tests; keep them quiet.
		ErrorLog: log.New(io.Discard, "", 0),
	}
	go srv.Serve(tls.NewListener(ln, cfg))
	t.Cleanup(func() { srv.Close() })
	return "https://" + ln.Addr().String() + "/"
}

func get(c *http.Client, url string) (*http.Response, string, error) {
	resp, err := c.Get(url)
	if err != nil {
		return nil, "", err
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	if err != nil {
		return nil, "", err
	}
	if resp.StatusCode != http.StatusOK {
		return nil, "", fmt.Errorf("status %d: %s", resp.StatusCode, body)
	}
	return resp, string(body), nil
}

// TestRotationUnderLoad runs real mutual TLS on loopback with 3-second
// certificates on both sides, renewed at 2 seconds, while two clients (one
// reusing its connection, one dialling anew each time) keep calling. No
// request may fail, the swap must reach new connections, and a connection
// opened before a swap must keep working after it.
func TestRotationUnderLoad(t *testing.T) {
	ca := newCA(t)
	store := trustStore(t, ca)
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()

	var renewals atomic.Int32
	newRot := func(id catalog.SystemID) *certs.Rotator {
		r, err := certs.NewRotator(ctx, certs.RotatorConfig{
			Renew:      renewer(ca, id, 3*time.Second),
			MinBackoff: 50 * time.Millisecond,
			OnRenew:    func(*x509.Certificate) { renewals.Add(1) },
			OnError:    func(err error, _ time.Duration) { t.Errorf("renewal of %s failed: %v", id, err) },
		})
		if err != nil {
			t.Fatal(err)
		}
		return r
	}
	serverRot, clientRot := newRot(population), newRot(insurance)
	// Renewal comes when a third of the lifetime is left: about 1s of 3s
	// (less when NotAfter was rounded down to the second, as X.509 does).
	if d := serverRot.Leaf().NotAfter.Sub(serverRot.NextRenewal()); d < 600*time.Millisecond || d > 1050*time.Millisecond {
		t.Errorf("renewal %v before expiry, want about a third of 3s", d)
	}
	var wg sync.WaitGroup
	for _, r := range []*certs.Rotator{serverRot, clientRot} {
		wg.Add(1)
		go func(r *certs.Rotator) { defer wg.Done(); r.Run(ctx) }(r)
	}
	defer wg.Wait()
	defer cancel()

	var clientSerialsMu sync.Mutex
	clientSerials := map[string]bool{}
	url := serveTLS(t, store.ServerConfig(serverRot), func(s string) {
		clientSerialsMu.Lock()
		clientSerials[s] = true
		clientSerialsMu.Unlock()
	})
	allowServer := func(id string) error {
		if id != population.SPIFFE(td) {
			return errors.New("not the population database")
		}
		return nil
	}
	keepAlive := &http.Client{Timeout: 5 * time.Second, Transport: &http.Transport{TLSClientConfig: store.ClientConfig(clientRot, allowServer)}}
	fresh := &http.Client{Timeout: 5 * time.Second, Transport: &http.Transport{TLSClientConfig: store.ClientConfig(clientRot, allowServer), DisableKeepAlives: true}}
	defer keepAlive.CloseIdleConnections()

	firstServerSerial := certs.SerialHex(serverRot.Leaf().SerialNumber)
	serverSerials := map[string]bool{}
	var requests, failures, reusedAfterSwap int
	extra := 0
	deadline := time.Now().Add(8 * time.Second)
	for requests < 300 && time.Now().Before(deadline) && extra < 5 {
		// Keep-alive client, noting whether its connection was reused.
		var reused bool
		trace := &httptrace.ClientTrace{GotConn: func(i httptrace.GotConnInfo) { reused = i.Reused }}
		req, _ := http.NewRequestWithContext(httptrace.WithClientTrace(ctx, trace), http.MethodGet, url, nil)
		requests++
		if resp, err := keepAlive.Do(req); err != nil {
			failures++
			t.Errorf("keep-alive request %d: %v", requests, err)
		} else {
			io.Copy(io.Discard, resp.Body)
			resp.Body.Close()
			if reused && certs.SerialHex(serverRot.Leaf().SerialNumber) != firstServerSerial {
				reusedAfterSwap++
			}
		}
		// New connection every time: must see the current certificate.
		requests++
		resp, body, err := get(fresh, url)
		if err != nil {
			failures++
			t.Errorf("new-connection request %d: %v", requests, err)
		} else {
			if body != insurance.SPIFFE(td) {
				t.Errorf("server saw caller %q", body)
			}
			serverSerials[certs.SerialHex(resp.TLS.PeerCertificates[0].SerialNumber)] = true
		}
		if len(serverSerials) >= 3 {
			extra++
		}
		time.Sleep(40 * time.Millisecond)
	}
	cancel()
	t.Logf("%d requests, %d failures, %d renewals, %d server and %d client certificates seen, %d reused connections after a swap",
		requests, failures, renewals.Load(), len(serverSerials), len(clientSerials), reusedAfterSwap)
	if failures > 0 {
		t.Errorf("%d of %d requests failed during rotation", failures, requests)
	}
	if len(serverSerials) < 3 {
		t.Errorf("new connections saw %d server certificates; want the first and at least two renewals", len(serverSerials))
	}
	clientSerialsMu.Lock()
	if len(clientSerials) < 2 {
		t.Errorf("server saw %d client certificates; the client's renewal did not reach new connections", len(clientSerials))
	}
	clientSerialsMu.Unlock()
	if reusedAfterSwap == 0 {
		t.Error("no connection opened before a swap was reused after it")
	}
}

// TestRotatorBacksOff renews an initial certificate that is already past
// 2/3 of its life at once, retries failures with growing waits, and swaps
// when renewal succeeds.
func TestRotatorBacksOff(t *testing.T) {
	ca := newCA(t)
	good := renewer(ca, population, time.Hour)
	initial, err := renewer(ca, population, 2*time.Second)(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	var calls atomic.Int32
	var waits []time.Duration
	var mu sync.Mutex
	renewed := make(chan *x509.Certificate, 1)
	r, err := certs.NewRotator(context.Background(), certs.RotatorConfig{
		Initial: &initial,
		Renew: func(ctx context.Context) (tls.Certificate, error) {
			if calls.Add(1) <= 3 {
				return tls.Certificate{}, errors.New("control plane unreachable")
			}
			return good(ctx)
		},
		MinBackoff: 20 * time.Millisecond,
		MaxBackoff: 60 * time.Millisecond,
		OnError: func(_ error, retryIn time.Duration) {
			mu.Lock()
			waits = append(waits, retryIn)
			mu.Unlock()
		},
		OnRenew: func(leaf *x509.Certificate) { renewed <- leaf },
	})
	if err != nil {
		t.Fatal(err)
	}
	// The initial certificate's NotBefore is backdated a minute, so its
	// 2/3 point has passed: renewal starts at once.
	if !r.NextRenewal().Before(time.Now()) {
		t.Fatalf("next renewal %v is not due", r.NextRenewal())
	}
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	done := make(chan struct{})
	go func() { r.Run(ctx); close(done) }()
	select {
	case leaf := <-renewed:
		if leaf.NotAfter.Sub(leaf.NotBefore) < 59*time.Minute {
			t.Errorf("renewed certificate lives %v", leaf.NotAfter.Sub(leaf.NotBefore))
		}
	case <-ctx.Done():
		t.Fatal("no renewal within 5s")
	}
	cancel()
	<-done
	mu.Lock()
	defer mu.Unlock()
	if len(waits) != 3 {
		t.Fatalf("%d failures reported, want 3", len(waits))
	}
	for i, w := range waits {
		lo := []time.Duration{20, 40, 60}[i] * time.Millisecond
		if w < lo || w > lo*6/5+time.Millisecond {
			t.Errorf("wait %d = %v, want %v plus at most 20%% jitter", i, w, lo)
		}
	}
	if got := r.Current().Leaf; got.NotAfter.Sub(time.Now()) < 50*time.Minute {
		t.Error("current certificate is not the renewed one")
	}
}

func TestRotatorRefusesBadCertificates(t *testing.T) {
	ca := newCA(t)
	a, _ := renewer(ca, population, time.Hour)(context.Background())
	b, _ := renewer(ca, population, time.Hour)(context.Background())
	mismatched := tls.Certificate{Certificate: a.Certificate, PrivateKey: b.PrivateKey}
	if _, err := certs.NewRotator(context.Background(), certs.RotatorConfig{Renew: renewer(ca, population, time.Hour), Initial: &mismatched}); err == nil {
		t.Error("key not matching the certificate accepted")
	}
	r, err := certs.NewRotator(context.Background(), certs.RotatorConfig{Initial: &a, Renew: func(context.Context) (tls.Certificate, error) { return mismatched, nil }})
	if err != nil {
		t.Fatal(err)
	}
	if err := r.RenewNow(context.Background()); err == nil {
		t.Error("renewal with a mismatched key accepted")
	}
	if !r.Leaf().Equal(a.Leaf) {
		t.Error("a refused renewal replaced the certificate")
	}
	if _, err := certs.NewRotator(context.Background(), certs.RotatorConfig{}); err == nil {
		t.Error("rotator without Renew accepted")
	}
}
