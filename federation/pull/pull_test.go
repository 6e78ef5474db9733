package pull_test

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"errors"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/lienthong/lienthong/federation"
	"github.com/lienthong/lienthong/federation/pull"
	"github.com/lienthong/lienthong/internal/problem"
)

// The control plane here is a stand-in that answers what a compromised or
// impersonated one could: the real one is exercised by the gateway's and the
// management API's tests. Each answer must be refused before the caller sees
// it.
func TestConfigRefusesWhatDoesNotVerify(t *testing.T) {
	key, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	forger, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	cfg := &federation.Config{Revision: 7, Member: "000.00.00.G01", Content: "c0ffee", Datasets: []federation.Dataset{}}
	good, err := federation.Issue(cfg, "", time.Now(), "k1", key)
	if err != nil {
		t.Fatal(err)
	}
	forged, _ := federation.Issue(cfg, "", time.Now(), "k1", forger)
	fresh, _ := federation.Issue(cfg, cfg.ETag(), time.Now(), "k1", key)

	type answer struct {
		status  int
		body    []byte
		headers map[string]string
	}
	signed := func(s *federation.Signed, h map[string]string) answer {
		hs := map[string]string{"ETag": s.ETag, "X-LT-Signature": s.Signature}
		for k, v := range h {
			hs[k] = v
		}
		return answer{http.StatusOK, s.Body, hs}
	}
	notModified := func(etag, freshAt string) answer {
		return answer{http.StatusNotModified, nil, map[string]string{"ETag": etag, "X-LT-Signature": fresh.Signature, "X-LT-Fresh-At": freshAt}}
	}
	freshAt := fresh.FreshAt.Format(time.RFC3339Nano)
	for _, tc := range []struct {
		name    string
		answer  answer
		askETag string
		ok      bool
	}{
		{"genuine configuration", signed(good, nil), "", true},
		{"header ETag differs from the signed one: the signed one counts", signed(good, map[string]string{"ETag": `"other"`}), "", true},
		{"signed by another key", signed(forged, nil), "", false},
		{"body changed after signing", answer{200, []byte(strings.Replace(string(good.Body), `"revision":7`, `"revision":8`, 1)), map[string]string{"X-LT-Signature": good.Signature}}, "", false},
		{"genuine statement", notModified(cfg.ETag(), freshAt), cfg.ETag(), true},
		{"statement moved in time", notModified(cfg.ETag(), fresh.FreshAt.Add(time.Hour).Format(time.RFC3339Nano)), cfg.ETag(), false},
		{"statement for an ETag not asked for", notModified(cfg.ETag(), freshAt), `"mine"`, false},
		{"not modified when nothing was asked", notModified(cfg.ETag(), freshAt), "", false},
		{"statement without a time", notModified(cfg.ETag(), ""), cfg.ETag(), false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			srv := httptest.NewTLSServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
				for k, v := range tc.answer.headers {
					w.Header().Set(k, v)
				}
				w.WriteHeader(tc.answer.status)
				_, _ = w.Write(tc.answer.body)
			}))
			defer srv.Close()
			got, err := pull.New(srv.URL, srv.Client()).Config(context.Background(), "k1", &key.PublicKey, tc.askETag)
			if tc.ok != (err == nil) {
				t.Fatalf("err = %v, want ok %v", err, tc.ok)
			}
			if err == nil && got.ETag != cfg.ETag() {
				t.Errorf("ETag %s, want the signed %s", got.ETag, cfg.ETag())
			}
		})
	}
}

func TestRefusalsAreProblems(t *testing.T) {
	srv := httptest.NewTLSServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.Header.Get("Authorization") != "" {
			t.Errorf("a node sent a token: %s", r.Header.Get("Authorization"))
		}
		problem.Write(w, r, problem.New(http.StatusForbidden, "forbidden", "not your member"))
	}))
	defer srv.Close()
	c := pull.New(srv.URL, srv.Client())
	ctx := context.Background()
	_, _, _, berr := c.Bundle(ctx, "")
	_, derr := c.Document(ctx, "VN:GOV:000.00.00.G01:CSDLDC", "population", 0)
	_, rerr := c.Renew(ctx, "VN:GOV:000.00.00.G14:GW", []byte("csr"))
	for name, err := range map[string]error{"bundle": berr, "document": derr, "renew": rerr} {
		var p *problem.Problem
		if !errors.As(err, &p) || p.Status != http.StatusForbidden || p.Detail != "not your member" {
			t.Errorf("%s: %v, want the 403 problem", name, err)
		}
	}
}
