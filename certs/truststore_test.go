package certs_test

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/lienthong/lienthong/catalog"
	"github.com/lienthong/lienthong/certs"
)

func staticRotator(t *testing.T, ca certs.Authority, sys catalog.SystemID) *certs.Rotator {
	t.Helper()
	r, err := certs.NewRotator(context.Background(), certs.RotatorConfig{Renew: renewer(ca, sys, time.Hour)})
	if err != nil {
		t.Fatal(err)
	}
	return r
}

// A gateway refuses a revoked peer from its next handshake after the
// revocation list arrives, resumed TLS sessions included.
func TestTrustStoreRevocation(t *testing.T) {
	ca := newCA(t)
	serverStore, clientStore := trustStore(t, ca), trustStore(t, ca)
	server, client := staticRotator(t, ca, population), staticRotator(t, ca, insurance)
	url := serveTLS(t, serverStore.ServerConfig(server), nil)

	cfg := clientStore.ClientConfig(client, nil)
	cfg.ClientSessionCache = tls.NewLRUClientSessionCache(4)
	c := &http.Client{Timeout: 5 * time.Second, Transport: &http.Transport{TLSClientConfig: cfg, DisableKeepAlives: true}}
	if _, _, err := get(c, url); err != nil {
		t.Fatal(err)
	}
	resp, _, err := get(c, url)
	if err != nil {
		t.Fatal(err)
	}
	if !resp.TLS.DidResume {
		t.Fatal("second connection did not resume; the test would not cover resumption")
	}

	clientSerial := certs.SerialHex(client.Leaf().SerialNumber)
	if err := serverStore.Update(serverStore.Roots(), []string{clientSerial}); err != nil {
		t.Fatal(err)
	}
	if !serverStore.IsRevoked(client.Leaf().SerialNumber) {
		t.Fatal("IsRevoked false after update")
	}
	if _, _, err := get(c, url); err == nil {
		t.Error("revoked client accepted on a resumed session")
	}
	cfg.ClientSessionCache = nil
	if _, _, err := get(c, url); err == nil {
		t.Error("revoked client accepted on a full handshake")
	}
	// A renewed certificate has a new serial and gets through again.
	if err := client.RenewNow(context.Background()); err != nil {
		t.Fatal(err)
	}
	if _, _, err := get(c, url); err != nil {
		t.Errorf("renewed client refused: %v", err)
	}

	// The client side refuses a revoked server just the same.
	if err := clientStore.Update(clientStore.Roots(), []string{strings.ToUpper(certs.SerialHex(server.Leaf().SerialNumber))}); err != nil {
		t.Fatal(err)
	}
	if _, _, err := get(c, url); err == nil || !strings.Contains(err.Error(), "revoked") {
		t.Errorf("revoked server: %v", err)
	}
}

// Roots change without new tls.Configs: a CA rotation reaches running
// listeners through Update.
func TestTrustStoreRootUpdate(t *testing.T) {
	ca, other := newCA(t), newCA(t)
	store := trustStore(t, ca)
	server := staticRotator(t, ca, population)
	url := serveTLS(t, store.ServerConfig(server), nil)

	stranger := staticRotator(t, other, insurance)
	clientStore := trustStore(t, ca)
	c := &http.Client{Timeout: 5 * time.Second, Transport: &http.Transport{TLSClientConfig: clientStore.ClientConfig(stranger, nil), DisableKeepAlives: true}}
	if _, _, err := get(c, url); err == nil {
		t.Fatal("client under an untrusted root accepted")
	}
	otherRoots, _ := other.TrustBundle(context.Background())
	if err := store.Update(append(store.Roots(), otherRoots...), nil); err != nil {
		t.Fatal(err)
	}
	if _, body, err := get(c, url); err != nil || body != insurance.SPIFFE(td) {
		t.Errorf("after adding the root: %q, %v", body, err)
	}

	// Updates that would break the store are refused and change nothing.
	before := len(store.Roots())
	if err := store.Update(nil, nil); err == nil {
		t.Error("update without roots accepted")
	}
	if err := store.Update(store.Roots(), []string{"not-hex"}); err == nil {
		t.Error("bad serial accepted")
	}
	if err := store.Update([]*x509.Certificate{server.Leaf()}, nil); err == nil {
		t.Error("a leaf accepted as a root")
	}
	if len(store.Roots()) != before {
		t.Error("a refused update changed the store")
	}
	// The client checks the server's identity when asked to.
	picky := &http.Client{Timeout: 5 * time.Second, Transport: &http.Transport{DisableKeepAlives: true, TLSClientConfig: trustStore(t, ca).ClientConfig(staticRotator(t, ca, insurance), func(id string) error {
		if id != insurance.SPIFFE(td) {
			return errWrongPeer
		}
		return nil
	})}}
	if _, _, err := get(picky, url); err == nil || !strings.Contains(err.Error(), "wrong peer") {
		t.Errorf("server with an unexpected identity: %v", err)
	}
}

var errWrongPeer = errors.New("wrong peer")

func TestVerifyPeerCertificateHook(t *testing.T) {
	ca := newCA(t)
	store := trustStore(t, ca)
	r := staticRotator(t, ca, population)
	hook := store.VerifyPeerCertificate(x509.ExtKeyUsageServerAuth)
	if err := hook(r.Current().Certificate, nil); err != nil {
		t.Errorf("valid chain: %v", err)
	}
	if err := hook(r.Current().Certificate[:1], nil); err == nil {
		t.Error("chain without its intermediate accepted")
	}
	if err := hook([][]byte{[]byte("junk")}, nil); err == nil {
		t.Error("junk accepted")
	}
	if id, err := store.Verify([]*x509.Certificate{r.Leaf(), mustParse(t, r.Current().Certificate[1])}, x509.ExtKeyUsageClientAuth); err != nil || id != population.SPIFFE(td) {
		t.Errorf("Verify = %q, %v", id, err)
	}
}

func mustParse(t *testing.T, der []byte) *x509.Certificate {
	t.Helper()
	c, err := x509.ParseCertificate(der)
	if err != nil {
		t.Fatal(err)
	}
	return c
}
