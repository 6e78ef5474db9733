package gateway_test

import (
	"bytes"
	"context"
	"fmt"
	"net/http"
	"strconv"
	"strings"
	"testing"
	"time"

	corev3 "github.com/envoyproxy/go-control-plane/envoy/config/core/v3"
	authv3 "github.com/envoyproxy/go-control-plane/envoy/service/auth/v3"
	extprocv3 "github.com/envoyproxy/go-control-plane/envoy/service/ext_proc/v3"
	"google.golang.org/protobuf/types/known/structpb"

	"github.com/lienthong/lienthong/gateway"
	envoydoor "github.com/lienthong/lienthong/gateway/envoy"
)

// verify runs a verification through the fake Envoy as the inbound
// listener's verify route does: ext_authz with the request body (packed as
// bytes), then ext_proc at the request headers, whose ImmediateResponse is
// the answer. The route routes nowhere (a direct response of 502 if
// ext_proc did not answer), so no backend sees the claims; the fake fails
// the test if ext_proc does not answer at once.
func (ef *envoyFederation) verify(path string, headers map[string]string, body []byte) envoyAnswer {
	t := ef.t
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	h := map[string]string{"content-type": "application/json", "content-length": strconv.Itoa(len(body))}
	for k, v := range headers {
		h[k] = v
	}
	check, err := ef.auth.Check(ctx, checkRequestWith(ef, http.MethodPost, path, h, body))
	if err != nil {
		t.Fatalf("Check: %v", err)
	}
	if d := check.GetDeniedResponse(); d != nil {
		hdr := http.Header{}
		for _, o := range d.GetHeaders() {
			hdr.Set(o.GetHeader().GetKey(), o.GetHeader().GetValue())
		}
		hdr.Set("Content-Length", strconv.Itoa(len(d.GetBody())))
		return envoyAnswer{status: int(d.GetStatus().GetCode()), header: hdr, body: []byte(d.GetBody())}
	}
	if check.GetOkResponse() == nil || check.GetDynamicMetadata() == nil {
		t.Fatalf("Check allowed without an OK response or metadata: %v", check)
	}
	stream, err := ef.proc.Process(ctx)
	if err != nil {
		t.Fatal(err)
	}
	defer func() { _ = stream.CloseSend() }()
	hv := []*corev3.HeaderValue{{Key: ":method", RawValue: []byte("POST")}, {Key: ":path", RawValue: []byte(path)}}
	for k, v := range h {
		hv = append(hv, &corev3.HeaderValue{Key: k, RawValue: []byte(v)})
	}
	err = stream.Send(&extprocv3.ProcessingRequest{
		MetadataContext: &corev3.Metadata{FilterMetadata: map[string]*structpb.Struct{envoydoor.Namespace: check.GetDynamicMetadata()}},
		Request:         &extprocv3.ProcessingRequest_RequestHeaders{RequestHeaders: &extprocv3.HttpHeaders{Headers: &corev3.HeaderMap{Headers: hv}}},
	})
	if err != nil {
		t.Fatal(err)
	}
	resp, err := stream.Recv()
	if err != nil {
		t.Fatalf("ext_proc: %v", err)
	}
	im := resp.GetImmediateResponse()
	if im == nil {
		t.Fatalf("ext_proc let a verification go on to the route: %v", resp)
	}
	hdr := http.Header{}
	for _, o := range im.GetHeaders().GetSetHeaders() {
		hdr.Set(o.GetHeader().GetKey(), string(o.GetHeader().GetRawValue()))
	}
	hdr.Set("Content-Length", strconv.Itoa(len(im.GetBody()))) // set by Envoy for a local reply
	return envoyAnswer{status: int(im.GetStatus().GetCode()), header: hdr, body: im.GetBody(), allowed: true}
}

// nativeVerify posts a verification to the native inbound door as the peer
// gateway.
func (ef *envoyFederation) nativeVerify(path string, headers map[string]string, body []byte) envoyAnswer {
	ef.t.Helper()
	req, err := http.NewRequest(http.MethodPost, "https://"+ef.inbound+path, bytes.NewReader(body))
	if err != nil {
		ef.t.Fatal(err)
	}
	req.Header.Set("Content-Type", "application/json")
	for k, v := range headers {
		req.Header.Set(k, v)
	}
	resp, err := ef.peer.Do(req)
	if err != nil {
		ef.t.Fatal(err)
	}
	defer resp.Body.Close()
	var raw bytes.Buffer
	_, _ = raw.ReadFrom(resp.Body)
	return envoyAnswer{status: resp.StatusCode, header: resp.Header, body: raw.Bytes()}
}

// TestEnvoyVerifyParity: a verification through ext_authz (with the body)
// and ext_proc (answering at the request headers) gives the native inbound
// door's status, byte-identical body and headers, and the same records:
// matches and mismatches, an ungranted field, a masked field, a malformed
// body, a body over the limit, a record id that is not one, an unknown
// consumer, and the per-record limit, which both doors count together.
func TestEnvoyVerifyParity(t *testing.T) {
	ef := newEnvoyFederation(t, false, 0, func(c *gateway.Config) { c.MaxRequestBytes = 4 << 10 })
	vpath := "/v/" + population + "/population/"
	over := []byte(`{"attributes":{"fullName":"` + strings.Repeat("x", 4<<10) + `"}}`)
	cases := []struct {
		name, consumer, path, body string
		status                     int
	}{
		{"match and no match", insurance, vpath + citizenID, `{"attributes":{"dateOfBirth":"1990-05-01","fullName":"Nguyễn Văn Ân"}}`, 200},
		{"no such record", insurance, vpath + "009999999999", `{"attributes":{"dateOfBirth":"1990-05-01"}}`, 404},
		{"ungranted field", insurance, vpath + citizenID, `{"attributes":{"religion":"Không"}}`, 403},
		{"masked field", insurance, vpath + citizenID, `{"attributes":{"personalId":"` + citizenID + `"}}`, 403},
		{"malformed body", insurance, vpath + citizenID, `{"attributes":`, 400},
		{"unknown key in the body", insurance, vpath + citizenID, `{"attributes":{"fullName":"A"},"more":1}`, 400},
		{"body over the limit", insurance, vpath + citizenID, string(over), 413},
		{"dot record id", insurance, vpath + "..", `{"attributes":{"fullName":"A"}}`, 400},
		{"consumer of another member", "VN:GOV:000.00.00.G01:CSDLDC", vpath + citizenID, `{"attributes":{"fullName":"A"}}`, 403},
		{"query-only grant", rowScoped, vpath + citizenID, `{"attributes":{"fullName":"A"}}`, 403},
	}
	for i, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			nid, eid := fmt.Sprintf("vn-%d", i), fmt.Sprintf("ve-%d", i)
			native := ef.nativeVerify(tc.path, exchangeHeaders(tc.consumer, nid), []byte(tc.body))
			envoy := ef.verify(tc.path, exchangeHeaders(tc.consumer, eid), []byte(tc.body))
			if native.status != tc.status {
				t.Errorf("native door: %d %s, want %d", native.status, native.body, tc.status)
			}
			sameExchange(t, ef, native, envoy, nid, eid)
		})
	}

	// The per-record limit is one count whichever door a verification
	// came through: five allowed in all, then both doors refuse alike.
	record := vpath + "079195000002"
	body := []byte(`{"attributes":{"sex":"female"}}`)
	for i := range 5 {
		var a envoyAnswer
		if i%2 == 0 {
			a = ef.nativeVerify(record, exchangeHeaders(insurance, fmt.Sprintf("vl-%d", i)), body)
		} else {
			a = ef.verify(record, exchangeHeaders(insurance, fmt.Sprintf("vl-%d", i)), body)
		}
		if a.status != http.StatusOK {
			t.Fatalf("verification %d of a record: %d %s", i+1, a.status, a.body)
		}
	}
	native := ef.nativeVerify(record, exchangeHeaders(insurance, "vl-native"), body)
	envoy := ef.verify(record, exchangeHeaders(insurance, "vl-envoy"), body)
	if native.status != http.StatusTooManyRequests {
		t.Fatalf("sixth verification of a record: %d %s", native.status, native.body)
	}
	sameExchange(t, ef, native, envoy, "vl-native", "vl-envoy")
}

// TestEnvoyVerifyAndQueryPhasesFailClosed: a verification is answered by the
// gateway at the request headers, a query at the response; a stream that
// brings either at the other phase (Envoy routed a verification to a
// backend, or sent a query's request headers) is refused, nothing passes,
// and the exchange gets its one outcome record.
func TestEnvoyVerifyAndQueryPhasesFailClosed(t *testing.T) {
	ef := newEnvoyFederation(t, false, 0)
	ctx := context.Background()
	vbody := []byte(`{"attributes":{"dateOfBirth":"1990-05-01"}}`)
	cases := []struct {
		name, id string
		check    func(id string) *authv3.CheckResponse
		first    *extprocv3.ProcessingRequest
	}{
		{"verification at the response", "pv-resp",
			func(id string) *authv3.CheckResponse {
				r, err := ef.auth.Check(ctx, checkRequestWith(ef, http.MethodPost, "/v/"+population+"/population/"+citizenID, exchangeHeaders(insurance, id), vbody))
				if err != nil {
					t.Fatal(err)
				}
				return r
			},
			&extprocv3.ProcessingRequest{Request: &extprocv3.ProcessingRequest_ResponseHeaders{ResponseHeaders: &extprocv3.HttpHeaders{Headers: &corev3.HeaderMap{Headers: []*corev3.HeaderValue{
				{Key: ":status", RawValue: []byte("200")}, {Key: "content-type", RawValue: []byte("application/json")},
			}}}}}},
		{"query at the request", "pq-req",
			func(id string) *authv3.CheckResponse {
				r, err := ef.auth.Check(ctx, checkRequest(ef, recordPath+citizenID, exchangeHeaders(insurance, id)))
				if err != nil {
					t.Fatal(err)
				}
				return r
			},
			&extprocv3.ProcessingRequest{Request: &extprocv3.ProcessingRequest_RequestHeaders{RequestHeaders: &extprocv3.HttpHeaders{Headers: &corev3.HeaderMap{Headers: []*corev3.HeaderValue{
				{Key: ":method", RawValue: []byte("GET")}, {Key: ":path", RawValue: []byte(recordPath + citizenID)},
			}}}}}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			check := tc.check(tc.id)
			if check.GetOkResponse() == nil {
				t.Fatalf("Check: %v", check)
			}
			stream, err := ef.proc.Process(ctx)
			if err != nil {
				t.Fatal(err)
			}
			tc.first.MetadataContext = &corev3.Metadata{FilterMetadata: map[string]*structpb.Struct{envoydoor.Namespace: check.GetDynamicMetadata()}}
			if err := stream.Send(tc.first); err != nil {
				t.Fatal(err)
			}
			resp, err := stream.Recv()
			if err != nil {
				t.Fatal(err)
			}
			im := resp.GetImmediateResponse()
			if im == nil || im.GetStatus().GetCode() != 500 || bytes.Contains(im.GetBody(), []byte("match")) || bytes.Contains(im.GetBody(), []byte("Nguy")) {
				t.Fatalf("the wrong phase was answered with %v", resp)
			}
			if p := phases(ef.sink.of(tc.id)); len(p) != 2 || p[0] != "intent:0" || p[1] != "outcome:500" {
				t.Fatalf("records %v", p)
			}
		})
	}
}
