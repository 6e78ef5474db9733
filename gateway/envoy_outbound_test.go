package gateway_test

import (
	"bytes"
	"context"
	"net"
	"net/http"
	"net/url"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	corev3 "github.com/envoyproxy/go-control-plane/envoy/config/core/v3"
	authv3 "github.com/envoyproxy/go-control-plane/envoy/service/auth/v3"
	extprocv3 "github.com/envoyproxy/go-control-plane/envoy/service/ext_proc/v3"
	"google.golang.org/protobuf/types/known/structpb"

	"github.com/lienthong/lienthong/audit"
	"github.com/lienthong/lienthong/gateway"
	envoydoor "github.com/lienthong/lienthong/gateway/envoy"
)

// outboundEdge is the consumer member's edge (Social Security) with its
// gateway's Envoy doors and a FAKE ENVOY (no Envoy binary here) on its
// outbound listener: a system of the member calls it with its certificate,
// Check admits and names the exchange, the fake's router relays the request
// to the provider's edge (here the provider gateway's native inbound door,
// which the inbound Envoy path matches: TestEnvoyParity) presenting the
// consumer gateway's certificate, as the edge's upstream TLS does, and
// ext_proc judges the answer.
type outboundEdge struct {
	ef   *envoyFederation
	auth authv3.AuthorizationClient
	proc extprocv3.ExternalProcessorClient
	// tamper, when set, changes the provider's answer headers on the way.
	tamper func(http.Header)
}

func newOutboundEdge(t *testing.T, ef *envoyFederation) *outboundEdge {
	t.Helper()
	doors, err := ef.consumer.EnvoyDoors()
	if err != nil {
		t.Fatal(err)
	}
	srv := doors.GRPCServer(ef.consumer.EnvoyTLS())
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	go func() { _ = srv.Serve(ln) }()
	t.Cleanup(func() { srv.Stop(); doors.Close() })
	pair, _ := ef.enrolledPair(vssGW)
	o := &outboundEdge{ef: ef}
	o.auth, o.proc = ef.dialGateway(ln.Addr().String(), pair, vssGW)
	return o
}

// call is one request of the system whose certificate is caller (PEM, URL
// encoded, as Envoy forwards it) through the outbound listener.
func (o *outboundEdge) call(caller, method, path string, headers map[string]string, body []byte) envoyAnswer {
	ef := o.ef
	t := ef.t
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	u, err := url.Parse(path)
	if err != nil {
		t.Fatal(err)
	}
	parts := strings.SplitN(strings.TrimPrefix(strings.TrimPrefix(u.Path, "/r/"), "/v/"), "/", 3)
	sent := map[string]string{":authority": "edge.vss", ":method": method, ":path": path, ":scheme": "https", "user-agent": "hospital-app"}
	if body != nil {
		sent["content-type"], sent["content-length"] = "application/json", strconv.Itoa(len(body))
	}
	for k, v := range headers {
		sent[strings.ToLower(k)] = v
	}
	// ext_authz's disallowed_headers: identity headers never reach Check.
	checked := map[string]string{}
	for k, v := range sent {
		if !slices.Contains([]string{"x-lt-consumer", "x-road-client", "x-road-userid", "x-forwarded-client-cert"}, k) {
			checked[k] = v
		}
	}
	check, err := o.auth.Check(ctx, &authv3.CheckRequest{Attributes: &authv3.AttributeContext{
		Source: &authv3.AttributeContext_Peer{Certificate: caller},
		Request: &authv3.AttributeContext_Request{Http: &authv3.AttributeContext_HttpRequest{
			Method: method, Headers: checked, Path: path, Host: "edge.vss", Scheme: "https", Protocol: "HTTP/1.1", RawBody: body,
		}},
		ContextExtensions: map[string]string{"provider": parts[0], "dataset": parts[1], "door": "outbound"},
	}})
	if err != nil {
		t.Fatalf("Check: %v", err)
	}
	if d := check.GetDeniedResponse(); d != nil {
		h := http.Header{}
		for _, hv := range d.GetHeaders() {
			h.Set(hv.GetHeader().GetKey(), hv.GetHeader().GetValue())
		}
		h.Set("Content-Length", strconv.Itoa(len(d.GetBody())))
		return envoyAnswer{status: int(d.GetStatus().GetCode()), header: h, body: []byte(d.GetBody())}
	}
	ok := check.GetOkResponse()
	if ok == nil || check.GetDynamicMetadata() == nil {
		t.Fatalf("Check allowed without an OK response or metadata: %v", check)
	}
	// Envoy applies the Check's header changes, then relays.
	for _, k := range ok.GetHeadersToRemove() {
		delete(sent, k)
	}
	for _, hv := range ok.GetHeaders() {
		sent[strings.ToLower(hv.GetHeader().GetKey())] = hv.GetHeader().GetValue()
	}
	req, err := http.NewRequest(method, "https://"+ef.inbound+path, bytes.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	for k, v := range sent {
		if !strings.HasPrefix(k, ":") && k != "content-length" {
			req.Header.Set(k, v)
		}
	}
	resp, err := ef.peer.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	var raw bytes.Buffer
	_, _ = raw.ReadFrom(resp.Body)
	resp.Body.Close()
	if o.tamper != nil {
		o.tamper(resp.Header)
	}

	stream, err := o.proc.Process(ctx)
	if err != nil {
		t.Fatal(err)
	}
	defer func() { _ = stream.CloseSend() }()
	meta := &corev3.Metadata{FilterMetadata: map[string]*structpb.Struct{envoydoor.Namespace: check.GetDynamicMetadata()}}
	hv := []*corev3.HeaderValue{{Key: ":status", RawValue: []byte(strconv.Itoa(resp.StatusCode))}}
	down := http.Header{}
	for k := range resp.Header {
		hv = append(hv, &corev3.HeaderValue{Key: strings.ToLower(k), RawValue: []byte(resp.Header.Get(k))})
		down.Set(k, resp.Header.Get(k))
	}
	msgs := []*extprocv3.ProcessingRequest{
		{Request: &extprocv3.ProcessingRequest_ResponseHeaders{ResponseHeaders: &extprocv3.HttpHeaders{Headers: &corev3.HeaderMap{Headers: hv}, EndOfStream: raw.Len() == 0}}},
	}
	if raw.Len() > 0 {
		msgs = append(msgs, &extprocv3.ProcessingRequest{Request: &extprocv3.ProcessingRequest_ResponseBody{ResponseBody: &extprocv3.HttpBody{Body: raw.Bytes(), EndOfStream: true}}})
	}
	out := raw.Bytes()
	for _, m := range msgs {
		m.MetadataContext = meta
		if err := stream.Send(m); err != nil {
			t.Fatal(err)
		}
		r, err := stream.Recv()
		if err != nil {
			t.Fatalf("ext_proc: %v", err)
		}
		if im := r.GetImmediateResponse(); im != nil {
			h := http.Header{}
			for _, o := range im.GetHeaders().GetSetHeaders() {
				h.Set(o.GetHeader().GetKey(), string(o.GetHeader().GetRawValue()))
			}
			h.Set("Content-Length", strconv.Itoa(len(im.GetBody())))
			return envoyAnswer{status: int(im.GetStatus().GetCode()), header: h, body: im.GetBody(), allowed: true}
		}
		var common *extprocv3.CommonResponse
		switch x := r.Response.(type) {
		case *extprocv3.ProcessingResponse_ResponseHeaders:
			common = x.ResponseHeaders.GetResponse()
		case *extprocv3.ProcessingResponse_ResponseBody:
			common = x.ResponseBody.GetResponse()
			if b, ok := common.GetBodyMutation().GetMutation().(*extprocv3.BodyMutation_Body); ok {
				out = b.Body
			}
		}
		for _, k := range common.GetHeaderMutation().GetRemoveHeaders() {
			down.Del(k)
		}
		for _, o := range common.GetHeaderMutation().GetSetHeaders() {
			down.Set(o.GetHeader().GetKey(), string(o.GetHeader().GetRawValue()))
		}
	}
	return envoyAnswer{status: resp.StatusCode, header: down, body: out, allowed: true, backendCalled: true}
}

// TestEnvoyOutboundParity: a system calling its member's edge (ext_authz on
// the outbound listener, relayed to the provider, ext_proc judging the
// answer) gets what the native outbound door gives it: the same status,
// byte-identical bodies (but for the exchange id a verification names),
// the same exchange headers, and the same records on both gateways.
func TestEnvoyOutboundParity(t *testing.T) {
	ef := newEnvoyFederation(t, false, 0)
	o := newOutboundEdge(t, ef)
	callerPair, _ := ef.enrolledPair(insurance)
	caller := pemChain(callerPair.Certificate[:1])
	native := ef.clientWith(callerPair)
	foreignPair, _ := ef.enrolledPair(population)

	purposed := func(extra map[string]string) map[string]string {
		h := map[string]string{gateway.HeaderPurpose: purpose, gateway.HeaderCase: "HS-2026-17"}
		for k, v := range extra {
			h[k] = v
		}
		return h
	}
	vbody := []byte(`{"attributes":{"dateOfBirth":"1990-05-01","fullName":"Nguyễn Văn Ân"}}`)
	cases := []struct {
		name, method, path string
		headers            map[string]string
		body               []byte
		foreign            bool
		status             int
	}{
		{"whole record", "GET", recordPath + citizenID, purposed(nil), nil, false, 200},
		{"fields= with a withheld field", "GET", recordPath + citizenID + "?fields=fullName,religion", purposed(nil), nil, false, 200},
		{"spoofed consumer and exchange id", "GET", recordPath + citizenID, purposed(map[string]string{gateway.HeaderConsumer: "VN:GOV:000.00.00.G14:OTHER", gateway.HeaderExchangeID: "chosen-by-caller"}), nil, false, 200},
		{"refused by the provider", "GET", recordPath + citizenID + "?fields=religion", purposed(nil), nil, false, 403},
		{"no such record", "GET", recordPath + "009999999999", purposed(nil), nil, false, 404},
		{"no purpose", "GET", recordPath + citizenID, nil, nil, false, 400},
		{"no gateway for the provider", "GET", "/r/VN:GOV:000.00.00.G99:NOSUCH/ds/" + citizenID, purposed(nil), nil, false, 404},
		{"a system of another member", "GET", recordPath + citizenID, purposed(nil), nil, true, 403},
		{"verification", "POST", "/v/" + population + "/population/" + citizenID, purposed(nil), vbody, false, 200},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			client, cert := native, caller
			if tc.foreign {
				client, cert = ef.clientWith(foreignPair), pemChain(foreignPair.Certificate[:1])
			}
			a, err := ef.federation.call(client, tc.method, tc.path, tc.headers, string(tc.body))
			if err != nil {
				t.Fatal(err)
			}
			n := envoyAnswer{status: a.status, header: a.header, body: []byte(a.raw)}
			e := o.call(cert, tc.method, tc.path, tc.headers, tc.body)
			if n.status != tc.status {
				t.Fatalf("native outbound door: %d %s, want %d", n.status, n.body, tc.status)
			}
			nid, eid := n.header.Get(gateway.HeaderExchangeID), e.header.Get(gateway.HeaderExchangeID)
			if nid == "" || eid == "" || len(nid) != len(eid) || nid == "chosen-by-caller" || eid == "chosen-by-caller" {
				t.Fatalf("exchange ids: native %q, envoy %q", nid, eid)
			}
			sameExchangeIn(t, ef.csink, n, e, nid, eid)
			// The provider's records of the two relayed exchanges agree too.
			np, ep := ef.sink.of(nid), ef.sink.of(eid)
			if !slices.Equal(phases(np), phases(ep)) {
				t.Fatalf("provider records: native %v, envoy %v", phases(np), phases(ep))
			}
			for _, r := range append(np, ep...) {
				if r.Consumer != insurance {
					t.Errorf("the provider recorded consumer %q, want %q", r.Consumer, insurance)
				}
			}
		})
	}

	// An answer that is not bound to the request sent is not passed on.
	o.tamper = func(h http.Header) { h.Set(gateway.HeaderHash, "0000") }
	e := o.call(caller, "GET", recordPath+citizenID, purposed(nil), nil)
	o.tamper = nil
	if e.status != http.StatusBadGateway || bytes.Contains(e.body, []byte("Nguy")) || !bytes.Contains(e.body, []byte("unbound-answer")) {
		t.Fatalf("an unbound answer: %d %s", e.status, e.body)
	}
	if p := phases(ef.csink.of(e.header.Get(gateway.HeaderExchangeID))); !slices.Equal(p, []string{"intent:0", "outcome:502"}) {
		t.Fatalf("an unbound answer: records %v", p)
	}

	// A relayed exchange whose answer never comes whole (the stream is cut
	// after the headers) is closed as the native door closes an
	// unreachable provider.
	ctx := context.Background()
	check, err := o.auth.Check(ctx, &authv3.CheckRequest{Attributes: &authv3.AttributeContext{
		Source: &authv3.AttributeContext_Peer{Certificate: caller},
		Request: &authv3.AttributeContext_Request{Http: &authv3.AttributeContext_HttpRequest{
			Method: "GET", Path: recordPath + citizenID, Headers: map[string]string{"x-lt-purpose": purpose},
		}},
		ContextExtensions: map[string]string{"provider": population, "dataset": "population", "door": "outbound"},
	}})
	if err != nil || check.GetOkResponse() == nil {
		t.Fatalf("Check: %v %v", err, check)
	}
	var id string
	for _, h := range check.GetOkResponse().GetHeaders() {
		if h.GetHeader().GetKey() == gateway.HeaderExchangeID {
			id = h.GetHeader().GetValue()
		}
	}
	sctx, cancel := context.WithCancel(ctx)
	stream, err := o.proc.Process(sctx)
	if err != nil {
		t.Fatal(err)
	}
	err = stream.Send(&extprocv3.ProcessingRequest{
		MetadataContext: &corev3.Metadata{FilterMetadata: map[string]*structpb.Struct{envoydoor.Namespace: check.GetDynamicMetadata()}},
		Request: &extprocv3.ProcessingRequest_ResponseHeaders{ResponseHeaders: &extprocv3.HttpHeaders{Headers: &corev3.HeaderMap{Headers: []*corev3.HeaderValue{
			{Key: ":status", RawValue: []byte("200")}, {Key: "content-type", RawValue: []byte("application/json")},
		}}}},
	})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := stream.Recv(); err != nil {
		t.Fatal(err)
	}
	cancel()
	deadline := time.Now().Add(30 * time.Second)
	for len(ef.csink.of(id)) < 2 && time.Now().Before(deadline) {
		time.Sleep(10 * time.Millisecond)
	}
	if p := phases(ef.csink.of(id)); !slices.Equal(p, []string{"intent:0", "outcome:502"}) {
		t.Fatalf("a cut relay: records %v", p)
	}
}

// sameExchangeIn is sameExchange over the records of sink.
func sameExchangeIn(t *testing.T, sink *memSink, native, envoy envoyAnswer, nid, eid string) {
	t.Helper()
	if native.status != envoy.status || !bytes.Equal(native.body, bytes.ReplaceAll(envoy.body, []byte(eid), []byte(nid))) {
		t.Fatalf("native %d %s\nenvoy  %d %s", native.status, native.body, envoy.status, envoy.body)
	}
	for _, h := range []string{"Content-Type", "Content-Length", gateway.HeaderWithheld, "Retry-After", "X-Content-Type-Options"} {
		if native.header.Get(h) != envoy.header.Get(h) {
			t.Errorf("%s: native %q, envoy %q", h, native.header.Get(h), envoy.header.Get(h))
		}
	}
	nr, er := sink.of(nid), sink.of(eid)
	if len(nr) == 0 || nr[len(nr)-1].Phase != audit.Outcome || !slices.Equal(phases(nr), phases(er)) {
		t.Fatalf("records: native %v, envoy %v", phases(nr), phases(er))
	}
	for j := range nr {
		n, e := nr[j], er[j]
		if n.Subject != e.Subject || !slices.Equal(n.Fields, e.Fields) || !slices.Equal(n.Reasons, e.Reasons) || n.Consumer != e.Consumer ||
			n.Bytes != e.Bytes || n.Mode != e.Mode || n.Purpose != e.Purpose || n.Case != e.Case || n.Side != e.Side || n.Provider != e.Provider {
			t.Errorf("record %d:\nnative %+v\nenvoy  %+v", j, n, e)
		}
	}
}
