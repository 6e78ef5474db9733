package gateway_test

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	corev3 "github.com/envoyproxy/go-control-plane/envoy/config/core/v3"
	extprocv3 "github.com/envoyproxy/go-control-plane/envoy/service/ext_proc/v3"
	"google.golang.org/protobuf/types/known/structpb"

	"github.com/lienthong/lienthong/gateway"
	envoydoor "github.com/lienthong/lienthong/gateway/envoy"
	"github.com/lienthong/lienthong/internal/problem"
)

// TestEnvoyDoorsContract drives the ext_authz and ext_proc doors with
// requests and streams shaped as Envoy sends them (see envoy_doors_test.go:
// the Envoy is a fake), and checks each answer and each exchange's records.
func TestEnvoyDoorsContract(t *testing.T) {
	ef := newEnvoyFederation(t, false, 0)
	masked := ef.native(recordPath+citizenID, exchangeHeaders(insurance, "probe")).body
	cases := []struct {
		name     string
		path     string
		headers  map[string]string
		shape    bodyShape
		status   int
		kind     string   // problem kind of a refusal
		keys     []string // keys of a served record
		withheld string
		intent   bool // the exchange was allowed (an intent record)
	}{
		{name: "mask", path: recordPath + citizenID, headers: exchangeHeaders(insurance, "c-mask"), status: 200,
			keys: []string{"dateOfBirth", "fullName", "personalId", "sex"}, intent: true},
		{name: "mask, trailers after the buffered body", path: recordPath + citizenID, headers: exchangeHeaders(insurance, "c-trailers"), shape: oneChunkThenTrailers, status: 200,
			keys: []string{"dateOfBirth", "fullName", "personalId", "sex"}, intent: true},
		{name: "fields= narrows and names what it withholds", path: recordPath + citizenID + "?fields=fullName,religion", headers: exchangeHeaders(insurance, "c-fields"), status: 200,
			keys: []string{"fullName"}, withheld: "religion", intent: true},
		{name: "row scope admits province 79", path: recordPath + "079195000002", headers: exchangeHeaders(rowScoped, "c-scope-in"), status: 200,
			keys: []string{"fullName", "personalId"}, intent: true},
		{name: "row scope hides province 01", path: recordPath + citizenID, headers: exchangeHeaders(rowScoped, "c-scope-out"), status: 404, kind: "not-found", intent: true},
		{name: "undeclared key inside a granted object", path: recordPath + "079195000007", headers: exchangeHeaders(rowScoped, "c-undeclared"), status: 200,
			keys: []string{"fullName", "personalId"}, intent: true},
		{name: "duplicate keys are refused", path: recordPath + "001090000004", headers: exchangeHeaders(insurance, "c-dup"), status: 502, kind: "bad-backend-answer", intent: true},
		{name: "schema violation is refused", path: recordPath + "001090000003", headers: exchangeHeaders(insurance, "c-schema"), status: 502, kind: "bad-backend-answer", intent: true},
		{name: "backend content type", path: recordPath + badContentTypeID, headers: exchangeHeaders(insurance, "c-ctype"), status: 502, kind: "backend-error", intent: true},
		{name: "no such record", path: recordPath + "009999999999", headers: exchangeHeaders(insurance, "c-missing"), status: 404, kind: "not-found", intent: true},
		{name: "denial: consumer of another member", path: recordPath + citizenID, headers: exchangeHeaders("VN:GOV:000.00.00.G01:CSDLDC", "c-foreign"), status: 403, kind: "consumer-not-of-peer"},
		{name: "denial: ungranted field only", path: recordPath + citizenID + "?fields=religion", headers: exchangeHeaders(insurance, "c-religion"), status: 403, kind: "access-denied"},
		{name: "denial: no purpose", path: recordPath + citizenID, headers: map[string]string{gateway.HeaderConsumer: insurance, gateway.HeaderExchangeID: "c-purpose"}, status: 400, kind: "purpose-required"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			got := ef.call(tc.path, tc.headers, tc.shape)
			if got.status != tc.status {
				t.Fatalf("status %d, want %d: %s", got.status, tc.status, got.body)
			}
			if got.backendCalled != tc.intent {
				t.Errorf("backend called: %v, want %v", got.backendCalled, tc.intent)
			}
			if got.header.Get("X-Backend-Build") != "" {
				t.Error("a backend header reached the caller")
			}
			if tc.kind != "" {
				var p problem.Problem
				if err := json.Unmarshal(got.body, &p); err != nil || p.Type != problem.TypePrefix+tc.kind || p.Status != tc.status {
					t.Errorf("refusal body %s, want problem %s", got.body, tc.kind)
				}
				if ct := got.header.Get("Content-Type"); ct != problem.ContentType {
					t.Errorf("refusal content type %q", ct)
				}
			} else {
				var rec map[string]any
				if err := json.Unmarshal(got.body, &rec); err != nil {
					t.Fatalf("answer %s: %v", got.body, err)
				}
				if k := keys(rec); !slices.Equal(k, tc.keys) {
					t.Errorf("answer has %v, want %v", k, tc.keys)
				}
				if pr, ok := rec["permanentResidence"]; ok {
					t.Errorf("an ungranted object leaked: %v", pr)
				}
				if n, _ := strconv.Atoi(got.header.Get("Content-Length")); n != len(got.body) {
					t.Errorf("content-length %q for a body of %d bytes", got.header.Get("Content-Length"), len(got.body))
				}
				if got.header.Get(gateway.HeaderExchangeID) != tc.headers[gateway.HeaderExchangeID] || len(got.header.Get(gateway.HeaderHash)) != 64 {
					t.Errorf("answer not bound to its request: %v", got.header)
				}
				if got.header.Get(gateway.HeaderWithheld) != tc.withheld {
					t.Errorf("withheld %q, want %q", got.header.Get(gateway.HeaderWithheld), tc.withheld)
				}
			}
			if strings.Contains(string(got.body), "Không") || strings.Contains(string(got.body), "Kinh") {
				t.Errorf("an ungranted value leaked: %s", got.body)
			}
			recs := ef.sink.of(tc.headers[gateway.HeaderExchangeID])
			want := []string{fmt.Sprintf("outcome:%d", tc.status)}
			if tc.intent {
				want = []string{"intent:0", want[0]}
			}
			if p := phases(recs); !slices.Equal(p, want) {
				t.Errorf("records %v, want %v", p, want)
			}
			for _, r := range recs {
				if r.Side != "provider" || r.Consumer != tc.headers[gateway.HeaderConsumer] || r.PolicyRevision == "" || len(r.RequestHash) != 64 {
					t.Errorf("record not bound to the exchange: %+v", r)
				}
			}
		})
	}
	// The masked value is the native door's, byte for byte.
	if got := ef.call(recordPath+citizenID, exchangeHeaders(insurance, "c-mask-2"), oneChunk); !bytes.Equal(got.body, masked) {
		t.Errorf("envoy %s, native %s", got.body, masked)
	}
	if ef.provider.InvalidResponses() < 2 {
		t.Errorf("refused backend answers counted %d", ef.provider.InvalidResponses())
	}
}

// TestEnvoyCheckIdentityIsTheTLSPeer: the caller is only the certificate
// Envoy forwards. Without one, with one that is not a registered gateway, or
// with identity headers naming someone, the Check denies and records it.
func TestEnvoyCheckIdentityIsTheTLSPeer(t *testing.T) {
	ef := newEnvoyFederation(t, false, 0)
	xfcc := map[string]string{gateway.HeaderConsumer: insurance, gateway.HeaderPurpose: purpose, gateway.HeaderExchangeID: "id-xfcc",
		"X-Forwarded-Client-Cert": `By=spiffe://lienthong.gov.vn/GOV/000.00.00.G01/CSDLDC;URI=spiffe://lienthong.gov.vn/GOV/000.00.00.G14/GW`,
		"X-Road-Client":           "VN/GOV/000.00.00.G14/GW"}
	ef.peerPEM = ""
	if got := ef.call(recordPath+citizenID, xfcc, oneChunk); got.status != 403 || !strings.Contains(string(got.body), "unknown-peer") {
		t.Errorf("no peer certificate, identity headers: %d %s", got.status, got.body)
	}
	// A system's certificate that is not a gateway's.
	pair, _ := ef.enrolledPair(population)
	ef.peerPEM = pemChain(pair.Certificate[:1])
	if got := ef.call(recordPath+citizenID, exchangeHeaders(insurance, "id-system"), oneChunk); got.status != 403 || got.backendCalled {
		t.Errorf("a non-gateway peer: %d %s", got.status, got.body)
	}
	// A certificate that does not chain to the federation.
	self := selfSigned(t, "spiffe://lienthong.gov.vn/GOV/000.00.00.G14/GW", time.Now().Add(time.Hour))
	ef.peerPEM = pemChain(self.Certificate)
	if got := ef.call(recordPath+citizenID, exchangeHeaders(insurance, "id-self"), oneChunk); got.status != 403 || got.backendCalled {
		t.Errorf("a self-signed peer: %d %s", got.status, got.body)
	}
	for _, id := range []string{"id-xfcc", "id-system", "id-self"} {
		if p := phases(ef.sink.of(id)); !slices.Equal(p, []string{"outcome:403"}) {
			t.Errorf("%s: records %v", id, p)
		}
	}
	// Over-long exchange headers are refused before the core, as by the
	// native listeners' guard.
	long := exchangeHeaders(insurance, "id-long")
	long[gateway.HeaderPurpose] = strings.Repeat("9", 65)
	got := ef.call(recordPath+citizenID, long, oneChunk)
	if got.status != 431 || strings.Contains(string(got.body), "99999") {
		t.Errorf("over-long purpose: %d %s", got.status, got.body)
	}
	if native := ef.native(recordPath+citizenID, long); native.status != got.status || !bytes.Equal(native.body, got.body) {
		t.Errorf("over-long purpose: native %d %s, envoy %d %s", native.status, native.body, got.status, got.body)
	}
}

// TestEnvoyDoorsTakeOnlyTheLocalEnvoy: a client presenting any certificate
// but the gateway's own gets no decision and leaves no record.
func TestEnvoyDoorsTakeOnlyTheLocalEnvoy(t *testing.T) {
	ef := newEnvoyFederation(t, false, 0)
	other, _ := ef.enrolledPair(population)
	ef.auth, ef.proc = ef.dial(other)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	if _, err := ef.auth.Check(ctx, nil); err == nil {
		t.Fatal("a system that is not the gateway was answered")
	}
	stream, err := ef.proc.Process(ctx)
	if err == nil {
		if _, err = stream.Recv(); err == nil {
			t.Fatal("a system that is not the gateway opened an ext_proc stream")
		}
	}
	ef.sink.mu.Lock()
	n := len(ef.sink.recs)
	ef.sink.mu.Unlock()
	if n != 0 {
		t.Errorf("%d records from calls that were not the local Envoy's", n)
	}
}

// TestEnvoyStreamedBodiesAndAbandonedExchanges: in STREAMED mode chunks are
// held back and the filtered body goes out whole at end_of_stream; a Check
// whose answer never comes, or whose stream ends early, still gets exactly
// one outcome record.
func TestEnvoyStreamedBodiesAndAbandonedExchanges(t *testing.T) {
	// The wait is long enough that the exchanges answered below are never
	// timed out on a loaded machine (the fake Envoy fetches the backend
	// between Check and Process), and short enough for a test.
	const wait = 1500 * time.Millisecond
	ef := newEnvoyFederation(t, true, wait)
	want := ef.native(recordPath+citizenID, exchangeHeaders(insurance, "s-native"))
	for _, shape := range []bodyShape{chunks, chunksThenTrailers} {
		id := fmt.Sprintf("s-chunks-%d", shape)
		got := ef.call(recordPath+citizenID, exchangeHeaders(insurance, id), shape)
		if got.status != 200 || !bytes.Equal(got.body, want.body) {
			t.Errorf("shape %d: %d %s, want %s", shape, got.status, got.body, want.body)
		}
		if got.header.Get("Content-Length") != "" || got.header.Get(gateway.HeaderExchangeID) != id {
			t.Errorf("streamed headers: %v", got.header)
		}
		if p := phases(ef.sink.of(id)); !slices.Equal(p, []string{"intent:0", "outcome:200"}) {
			t.Errorf("shape %d: records %v", shape, p)
		}
	}
	// Trailers before end_of_stream: the held-back body cannot be sent, so
	// the exchange fails closed and nothing of the record left.
	got := ef.call(recordPath+citizenID, exchangeHeaders(insurance, "s-no-end"), chunksNoEndTrailers)
	if got.status != 502 || strings.Contains(string(got.body), "Nguy") {
		t.Errorf("trailers before the end: %d %s", got.status, got.body)
	}
	if p := phases(ef.sink.of("s-no-end")); !slices.Equal(p, []string{"intent:0", "outcome:502"}) {
		t.Errorf("trailers before the end: records %v", p)
	}

	// A Check allowed and never followed by ext_proc.
	ctx := context.Background()
	check, err := ef.auth.Check(ctx, checkRequest(ef, recordPath+citizenID, exchangeHeaders(insurance, "s-lost")))
	if err != nil || check.GetOkResponse() == nil {
		t.Fatalf("Check: %v %v", err, check)
	}
	// A stream that ends after the response headers.
	check2, err := ef.auth.Check(ctx, checkRequest(ef, recordPath+citizenID, exchangeHeaders(insurance, "s-cut")))
	if err != nil || check2.GetOkResponse() == nil {
		t.Fatalf("Check: %v %v", err, check2)
	}
	cutStream(t, ef, check2)
	deadline := time.Now().Add(30 * time.Second)
	for time.Now().Before(deadline) && (len(ef.sink.of("s-lost")) < 2 || len(ef.sink.of("s-cut")) < 2) {
		time.Sleep(20 * time.Millisecond)
	}
	// Past the wait of the later Check too, nothing more is written for
	// either (the wait of s-lost, begun first, is already over).
	time.Sleep(wait)
	if p := phases(ef.sink.of("s-lost")); !slices.Equal(p, []string{"intent:0", "outcome:504"}) {
		t.Errorf("a Check with no answer: records %v", p)
	}
	if p := phases(ef.sink.of("s-cut")); !slices.Equal(p, []string{"intent:0", "outcome:502"}) {
		t.Errorf("a stream cut after the headers: records %v", p)
	}
}

// TestEnvoyMetadataCannotChangeTheDecision: the decision ext_proc applies is
// the one Check made and holds; metadata that names other fields or masks,
// or no waiting exchange, gets a refusal and nothing of the answer.
func TestEnvoyMetadataCannotChangeTheDecision(t *testing.T) {
	ef := newEnvoyFederation(t, false, 0)
	ctx := context.Background()
	send := func(meta *structpb.Struct) *extprocv3.ProcessingResponse {
		t.Helper()
		stream, err := ef.proc.Process(ctx)
		if err != nil {
			t.Fatal(err)
		}
		defer func() { _ = stream.CloseSend() }()
		if err := stream.Send(&extprocv3.ProcessingRequest{
			MetadataContext: &corev3.Metadata{FilterMetadata: map[string]*structpb.Struct{envoydoor.Namespace: meta}},
			Request: &extprocv3.ProcessingRequest_ResponseHeaders{ResponseHeaders: &extprocv3.HttpHeaders{Headers: &corev3.HeaderMap{Headers: []*corev3.HeaderValue{
				{Key: ":status", RawValue: []byte("200")}, {Key: "content-type", RawValue: []byte("application/json")},
			}}}},
		}); err != nil {
			t.Fatal(err)
		}
		out, err := stream.Recv()
		if err != nil {
			t.Fatal(err)
		}
		return out
	}
	for i, tamper := range []func(h *envoydoor.Handover){
		func(h *envoydoor.Handover) { h.Masks = map[string]string{} },
		func(h *envoydoor.Handover) { h.Fields = append(h.Fields, "religion") },
		func(h *envoydoor.Handover) { h.RowScope = nil; h.Grant = "grant-of-someone-else" },
	} {
		id := "m-" + strconv.Itoa(i)
		check, err := ef.auth.Check(ctx, checkRequest(ef, recordPath+citizenID, exchangeHeaders(insurance, id)))
		if err != nil || check.GetOkResponse() == nil {
			t.Fatalf("Check: %v %v", err, check)
		}
		h, err := envoydoor.ReadHandover(check.GetDynamicMetadata())
		if err != nil || h.ExchangeID != id || h.Masks["personalId"] != "hash" || h.PolicyRevision == "" || h.Grant != ef.grantID {
			t.Fatalf("handover %+v: %v", h, err)
		}
		tamper(&h)
		meta, err := h.Struct()
		if err != nil {
			t.Fatal(err)
		}
		im := send(meta).GetImmediateResponse()
		if im == nil || im.GetStatus().GetCode() != 500 || !strings.Contains(string(im.GetBody()), "internal") {
			t.Errorf("tampered metadata %d: %v", i, im)
		}
		if p := phases(ef.sink.of(id)); !slices.Equal(p, []string{"intent:0", "outcome:500"}) {
			t.Errorf("tampered metadata %d: records %v", i, p)
		}
	}
	// No waiting exchange: a made-up handle, and no metadata at all.
	bogus, _ := (envoydoor.Handover{Handle: "00112233445566778899aabbccddeeff"}).Struct()
	for _, meta := range []*structpb.Struct{bogus, nil} {
		if im := send(meta).GetImmediateResponse(); im == nil || im.GetStatus().GetCode() != 502 {
			t.Errorf("an answer no Check allowed was not refused: %v", im)
		}
	}
	if ef.provider != nil && ef.sink.of("") != nil {
		t.Errorf("records without an exchange: %v", phases(ef.sink.of("")))
	}
}

// TestEnvoyBodyWithoutHeadersIsRefused: a body whose response headers (the
// backend's status and media type) were never seen is not filtered and
// passed on, whatever it holds.
func TestEnvoyBodyWithoutHeadersIsRefused(t *testing.T) {
	ef := newEnvoyFederation(t, false, 0)
	ctx := context.Background()
	check, err := ef.auth.Check(ctx, checkRequest(ef, recordPath+citizenID, exchangeHeaders(insurance, "nh-1")))
	if err != nil || check.GetOkResponse() == nil {
		t.Fatalf("Check: %v %v", err, check)
	}
	stream, err := ef.proc.Process(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if err := stream.Send(&extprocv3.ProcessingRequest{
		MetadataContext: &corev3.Metadata{FilterMetadata: map[string]*structpb.Struct{envoydoor.Namespace: check.GetDynamicMetadata()}},
		Request:         &extprocv3.ProcessingRequest_ResponseBody{ResponseBody: &extprocv3.HttpBody{Body: []byte(citizens[citizenID]), EndOfStream: true}},
	}); err != nil {
		t.Fatal(err)
	}
	out, err := stream.Recv()
	if err != nil {
		t.Fatal(err)
	}
	if im := out.GetImmediateResponse(); im == nil || im.GetStatus().GetCode() != 500 || strings.Contains(string(im.GetBody()), "Nguy") {
		t.Errorf("a body without its headers: %v", out)
	}
	if p := phases(ef.sink.of("nh-1")); !slices.Equal(p, []string{"intent:0", "outcome:500"}) {
		t.Errorf("records %v", p)
	}
}
