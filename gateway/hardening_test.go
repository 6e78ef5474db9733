package gateway_test

import (
	"context"
	"errors"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/lienthong/lienthong/audit"
	"github.com/lienthong/lienthong/catalog"
	"github.com/lienthong/lienthong/controlplane/service"
	"github.com/lienthong/lienthong/gateway"
)

// A revoked certificate is refused on the next request, also on a
// keep-alive connection opened before the revocation.
func TestRevokedCertificateOnAnOpenConnection(t *testing.T) {
	f := newFederation(t)
	ctx := context.Background()
	pair, serial := f.enrolledPair(insurance)
	c := f.clientWith(pair)
	if a := f.get(c, recordPath+citizenID, purposeHeader()); a.status != http.StatusOK {
		t.Fatalf("before revocation: %d", a.status)
	}
	if _, err := f.svc.RevokeCertificate(ctx, f.admin, serial, "key compromised"); err != nil {
		t.Fatal(err)
	}
	if err := f.consumer.Sync(ctx); err != nil {
		t.Fatal(err)
	}
	a := f.get(c, recordPath+citizenID, purposeHeader()) // same pooled connection
	if a.status != http.StatusForbidden || !strings.Contains(a.raw, "revoked") || strings.Contains(a.raw, "Nguyễn") {
		t.Fatalf("revoked certificate on an open connection: %d %s", a.status, a.raw)
	}
	// A whole system revoked is refused the same way.
	pair2, _ := f.enrolledPair(insurance)
	c2 := f.clientWith(pair2)
	if a := f.get(c2, recordPath+citizenID, purposeHeader()); a.status != http.StatusOK {
		t.Fatalf("fresh certificate: %d", a.status)
	}
	if _, err := f.svc.RevokeSystem(ctx, f.admin, insurance, "decommissioned"); err != nil {
		t.Fatal(err)
	}
	if err := f.consumer.Sync(ctx); err != nil {
		t.Fatal(err)
	}
	if a := f.get(c2, recordPath+citizenID, purposeHeader()); a.status != http.StatusForbidden {
		t.Fatalf("revoked system on an open connection: %d %s", a.status, a.raw)
	}
}

// The provider's inbound door accepts only registered gateways, each
// speaking only for systems of its own member.
func TestInboundPeerBinding(t *testing.T) {
	f := newFederation(t)
	callInbound := func(pair string, consumer string) answer {
		t.Helper()
		dir := filepath.Join(f.dir, pair)
		c := f.clientWithFiles(filepath.Join(dir, "cert.pem"), filepath.Join(dir, "key.pem"))
		req, _ := http.NewRequest(http.MethodGet, "https://"+f.inbound+recordPath+citizenID, nil)
		req.Header.Set(gateway.HeaderConsumer, consumer)
		req.Header.Set(gateway.HeaderPurpose, purpose)
		resp, err := c.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		raw, _ := io.ReadAll(resp.Body)
		return answer{status: resp.StatusCode, raw: string(raw)}
	}
	// The Social Security gateway speaking for its own system: served.
	if a := callInbound(vss, insurance); a.status != http.StatusOK {
		t.Fatalf("registered peer for its own system: %d %s", a.status, a.raw)
	}
	// The same gateway claiming to speak for a system of another member.
	if a := callInbound(vss, population); a.status != http.StatusForbidden || !strings.Contains(a.raw, "consumer-not-of-peer") {
		t.Fatalf("peer speaking for another member's system: %d %s", a.status, a.raw)
	}
	// A system certificate (not a registered gateway) at the inbound door.
	pair, _ := f.enrolledPair(insurance)
	req, _ := http.NewRequest(http.MethodGet, "https://"+f.inbound+recordPath+citizenID, nil)
	req.Header.Set(gateway.HeaderConsumer, insurance)
	req.Header.Set(gateway.HeaderPurpose, purpose)
	resp, err := f.clientWith(pair).Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusForbidden {
		t.Fatalf("system certificate at the inbound door: %d", resp.StatusCode)
	}
}

type failingSink struct{ calls atomic.Int64 }

func (s *failingSink) Submit(*audit.Record, audit.Commit) *audit.Receipt {
	s.calls.Add(1)
	return audit.Refused(errors.New("disk full"))
}

// No answer leaves a gateway whose audit sink refuses the record.
func TestNoAnswerWithoutAuditRecord(t *testing.T) {
	sink := &failingSink{}
	f := newFederationWith(t, nil, gateway.WithSink(sink))
	a := f.get(f.systemClient(insurance), recordPath+citizenID, purposeHeader())
	if a.status == http.StatusOK || strings.Contains(a.raw, "Nguyễn") || sink.calls.Load() == 0 {
		t.Fatalf("answer without an audit record: %d %s (sink called %d times)", a.status, a.raw, sink.calls.Load())
	}
}

// A record outside the row scope and a record that does not exist get the
// same answer, so the scope is not an oracle for who exists elsewhere.
func TestRowScopeIsNotAnExistenceOracle(t *testing.T) {
	f := newFederation(t)
	ctx := context.Background()
	const scoped = "1.000555"
	req, err := f.svc.RequestAccess(ctx, f.admin, service.AccessRequestInput{
		Consumer: insurance, Provider: population, Dataset: "population", Fields: []string{"fullName"},
		Purpose: catalog.Purpose{Code: scoped}, ValidUntil: time.Now().Add(time.Hour), Modes: []catalog.Mode{catalog.ModeQuery},
		RowScope: &catalog.RowScope{Field: "permanentResidence.provinceCode", Values: []string{"01"}},
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
	h := map[string]string{gateway.HeaderPurpose: scoped}
	if a := f.get(c, recordPath+citizenID, h); a.status != http.StatusOK || a.body["fullName"] != "Nguyễn Văn An" {
		t.Fatalf("in scope (province 01): %d %s", a.status, a.raw)
	}
	outside := f.get(c, recordPath+"079195000002", h) // exists, province 79
	missing := f.get(c, recordPath+"001099999999", h) // does not exist
	if outside.status != http.StatusNotFound || strings.Contains(outside.raw, "Bình") {
		t.Fatalf("outside the scope: %d %s", outside.status, outside.raw)
	}
	if outside.body["detail"] != missing.body["detail"] || outside.body["type"] != missing.body["type"] {
		t.Errorf("outside-scope and missing answers differ: %s vs %s", outside.raw, missing.raw)
	}
}

// Verify mode cannot be used to try every value of a field.
func TestVerifyAttemptsAreBounded(t *testing.T) {
	f := newFederation(t)
	c := f.systemClient(insurance)
	path := "/v/" + population + "/population/" + citizenID
	var last answer
	for i := range 6 {
		a, err := f.call(c, http.MethodPost, path, map[string]string{gateway.HeaderPurpose: purpose, "Content-Type": "application/json"},
			`{"attributes":{"sex":"`+[]string{"female", "x", "y", "z", "w", "male"}[i]+`"}}`)
		if err != nil {
			t.Fatal(err)
		}
		last = a
	}
	if last.status != http.StatusTooManyRequests || strings.Contains(last.raw, "match") {
		t.Fatalf("sixth verification of one record: %d %s", last.status, last.raw)
	}
}

func (f *federation) clientWithFiles(certFile, keyFile string) *http.Client {
	f.t.Helper()
	if _, err := os.Stat(certFile); err != nil {
		f.t.Fatal(err)
	}
	pair, err := loadPair(certFile, keyFile)
	if err != nil {
		f.t.Fatal(err)
	}
	return f.clientWith(pair)
}
