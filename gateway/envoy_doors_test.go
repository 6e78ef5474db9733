package gateway_test

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"encoding/pem"
	"io"
	"net/http"
	"net/url"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	corev3 "github.com/envoyproxy/go-control-plane/envoy/config/core/v3"
	authv3 "github.com/envoyproxy/go-control-plane/envoy/service/auth/v3"
	extprocv3 "github.com/envoyproxy/go-control-plane/envoy/service/ext_proc/v3"
	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials"
	"google.golang.org/protobuf/types/known/structpb"

	"github.com/lienthong/lienthong/audit"
	"github.com/lienthong/lienthong/catalog"
	"github.com/lienthong/lienthong/certs"
	"github.com/lienthong/lienthong/controlplane/service"
	"github.com/lienthong/lienthong/gateway"
	envoydoor "github.com/lienthong/lienthong/gateway/envoy"
)

// The Envoy doors are tested over real gRPC and real TLS on loopback
// against a real provider gateway, with a FAKE ENVOY: no Envoy binary can be
// installed here. The fake sends what Envoy's filters send for the inbound
// listener the control plane configures: a CheckRequest with the caller's
// certificate (include_peer_certificate: URL-encoded PEM), the request's
// headers in lower case and the route's context_extensions; then, having
// fetched the backend as Envoy's router would (the record path, fields=
// removed), an ext_proc stream with the ext_authz metadata forwarded in
// metadata_context, the response headers, the body in one message
// (BUFFERED) or in chunks (STREAMED), and trailers. It applies the header
// and body mutations as Envoy does.

// rowScoped is a second consumer system of Social Security whose grant is
// limited to records of province 79.
const rowScoped = "VN:GOV:000.00.00.G14:HTTN"

// Records only the Envoy tests ask for: undeclared keys inside a granted
// object, a backend header that must not leave.
func init() {
	citizens["079195000007"] = `{"personalId":"079195000007","fullName":"Đỗ E","dateOfBirth":"1991-01-01","sex":"male","religion":"Không",` +
		`"permanentResidence":{"provinceCode":"79","wardCode":"26734","addressLine":"1 Lê Lợi","Ethnicity":"Kinh"}}`
}

// memSink keeps audit records in memory, durable at once.
type memSink struct {
	mu   sync.Mutex
	recs []audit.Record
}

func (s *memSink) Submit(r *audit.Record, _ audit.Commit) *audit.Receipt {
	s.mu.Lock()
	s.recs = append(s.recs, *r)
	s.mu.Unlock()
	rc := audit.NewReceipt()
	rc.Settle(nil)
	return rc
}

// of returns the records of one exchange.
func (s *memSink) of(id string) []audit.Record {
	s.mu.Lock()
	defer s.mu.Unlock()
	var out []audit.Record
	for _, r := range s.recs {
		if r.ExchangeID == id {
			out = append(out, r)
		}
	}
	return out
}

// envoyFederation is the federation with the provider gateway's Envoy
// doors listening, a fake Envoy connected to them with the gateway
// system's certificate, and the peer gateway's certificate it forwards.
type envoyFederation struct {
	*federation
	sink      *memSink // the provider gateway's records
	csink     *memSink // the consumer gateway's records
	envoyAddr string
	auth      authv3.AuthorizationClient
	proc      extprocv3.ExternalProcessorClient
	peerPEM   string
	peer      *http.Client // the peer gateway, calling the native inbound door
}

func newEnvoyFederation(t *testing.T, streamed bool, wait time.Duration, tweaks ...func(*gateway.Config)) *envoyFederation {
	t.Helper()
	return newEnvoyFederationWith(t, nil, nil, streamed, wait, tweaks...)
}

// newEnvoyFederationWith also gives the provider gateway popts and the
// consumer gateway copts.
func newEnvoyFederationWith(t *testing.T, popts, copts []gateway.Option, streamed bool, wait time.Duration, tweaks ...func(*gateway.Config)) *envoyFederation {
	t.Helper()
	sink, csink := &memSink{}, &memSink{}
	envoyLn := liveListener(t)
	f := newFederationFull(t, 0, func(c *gateway.Config) {
		c.Envoy.Streamed = streamed
		if wait > 0 {
			c.Timeout = gateway.Duration{Duration: wait}
		}
		for _, tw := range tweaks {
			tw(c)
		}
	}, append([]gateway.Option{gateway.WithSink(sink), gateway.WithEnvoyListener(envoyLn)}, popts...),
		append([]gateway.Option{gateway.WithSink(csink)}, copts...))
	ef := &envoyFederation{federation: f, sink: sink, csink: csink, envoyAddr: envoyLn.Addr().String()}
	// The second consumer: a grant of two fields, province 79 only.
	ctx := context.Background()
	if _, err := f.svc.AddSystem(ctx, f.admin, catalog.System{ID: rowScoped, Name: rowScoped, SecurityLevel: 3}); err != nil {
		t.Fatal(err)
	}
	if _, err := f.svc.Assess(ctx, f.admin, rowScoped, catalog.Assessment{Level: 4, AssessedBy: "A05", Reference: "QĐ 2", ValidUntil: time.Now().Add(365 * 24 * time.Hour)}); err != nil {
		t.Fatal(err)
	}
	req, err := f.svc.RequestAccess(ctx, f.admin, service.AccessRequestInput{
		Consumer: rowScoped, Provider: population, Dataset: "population",
		Fields: []string{"personalId", "fullName"}, Purpose: catalog.Purpose{Code: purpose},
		LegalBasis: catalog.LegalBasis{Reference: "Nghị định 13/2023/NĐ-CP"}, ValidUntil: time.Now().Add(90 * 24 * time.Hour),
		Modes: []catalog.Mode{catalog.ModeQuery}, RowScope: &catalog.RowScope{Field: "permanentResidence.provinceCode", Values: []string{"79"}},
	})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := f.svc.Approve(ctx, f.admin, req.ID, service.Approval{Fields: []catalog.GrantedField{{Path: "personalId"}, {Path: "fullName"}}}); err != nil {
		t.Fatal(err)
	}
	if err := f.provider.Sync(ctx); err != nil {
		t.Fatal(err)
	}
	// The local Envoy presents the gateway system's certificate.
	envoyPair, _ := f.enrolledPair(mpsGW)
	ef.auth, ef.proc = ef.dial(envoyPair)
	peerPair, _ := f.enrolledPair(vssGW)
	// Envoy forwards the peer's leaf certificate only.
	ef.peerPEM = pemChain(peerPair.Certificate[:1])
	ef.peer = f.clientWith(peerPair)
	return ef
}

// dial connects to the Envoy doors with pair, checking the gateway's chain
// and SPIFFE id as Envoy's gateway cluster does.
func (ef *envoyFederation) dial(pair *tls.Certificate) (authv3.AuthorizationClient, extprocv3.ExternalProcessorClient) {
	return ef.dialAt(ef.envoyAddr, pair)
}

// dialAt is dial to the gRPC listener at addr, which must present the
// gateway's certificate.
func (ef *envoyFederation) dialAt(addr string, pair *tls.Certificate) (authv3.AuthorizationClient, extprocv3.ExternalProcessorClient) {
	return ef.dialGateway(addr, pair, mpsGW)
}

// dialGateway is dialAt to the doors of the gateway of system gw.
func (ef *envoyFederation) dialGateway(addr string, pair *tls.Certificate, gw string) (authv3.AuthorizationClient, extprocv3.ExternalProcessorClient) {
	t := ef.t
	sid, err := catalog.ParseSystemID(gw)
	if err != nil {
		t.Fatal(err)
	}
	want := sid.SPIFFE(ef.svc.TrustDomain())
	cfg := &tls.Config{
		MinVersion: tls.VersionTLS13, Certificates: []tls.Certificate{*pair},
		InsecureSkipVerify: true, // replaced by VerifyConnection: the gateway is named by its SPIFFE id
		VerifyConnection: func(cs tls.ConnectionState) error {
			inter := x509.NewCertPool()
			for _, c := range cs.PeerCertificates[1:] {
				inter.AddCert(c)
			}
			if _, err := cs.PeerCertificates[0].Verify(x509.VerifyOptions{Roots: ef.roots, Intermediates: inter, KeyUsages: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth}}); err != nil {
				return err
			}
			if id, err := certs.SPIFFEID(cs.PeerCertificates[0]); err != nil || id != want {
				t.Errorf("the Envoy doors presented %q, want %q", id, want)
			}
			return nil
		},
	}
	conn, err := grpc.NewClient("passthrough:///"+addr, grpc.WithTransportCredentials(credentials.NewTLS(cfg)))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { conn.Close() })
	return authv3.NewAuthorizationClient(conn), extprocv3.NewExternalProcessorClient(conn)
}

// bodyShape is how the fake Envoy hands the backend's body to ext_proc.
type bodyShape int

const (
	oneChunk             bodyShape = iota // BUFFERED: one message, end_of_stream
	oneChunkThenTrailers                  // BUFFERED with trailers: the body, then trailers
	chunks                                // STREAMED: 7-byte chunks, end_of_stream on the last
	chunksThenTrailers                    // STREAMED: chunks, end_of_stream on the last, then trailers
	chunksNoEndTrailers                   // STREAMED: chunks, then trailers with no end_of_stream
)

// envoyAnswer is what the caller of Envoy receives.
type envoyAnswer struct {
	status        int
	header        http.Header
	body          []byte
	backendCalled bool
	allowed       bool
}

// call runs one request through the fake Envoy as its inbound listener
// would: Check, then (allowed) the backend and ext_proc.
func (ef *envoyFederation) call(path string, headers map[string]string, shape bodyShape) envoyAnswer {
	t := ef.t
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	u, err := url.Parse(path)
	if err != nil {
		t.Fatal(err)
	}
	parts := strings.SplitN(strings.TrimPrefix(u.Path, "/r/"), "/", 3)
	check, err := ef.auth.Check(ctx, checkRequest(ef, path, headers))
	if err != nil {
		t.Fatalf("Check: %v", err)
	}
	if d := check.GetDeniedResponse(); d != nil {
		if check.GetStatus().GetCode() == 0 {
			t.Error("a denial carries an OK gRPC status")
		}
		h := http.Header{}
		for _, o := range d.GetHeaders() {
			h.Set(o.GetHeader().GetKey(), o.GetHeader().GetValue())
		}
		// Envoy sets the length of a local reply itself.
		h.Set("Content-Length", strconv.Itoa(len(d.GetBody())))
		return envoyAnswer{status: int(d.GetStatus().GetCode()), header: h, body: []byte(d.GetBody())}
	}
	ok := check.GetOkResponse()
	if ok == nil || check.GetStatus().GetCode() != 0 || check.GetDynamicMetadata() == nil {
		t.Fatalf("Check allowed without an OK response, status or metadata: %v", check)
	}
	if !slices.Contains(ok.GetHeadersToRemove(), "x-lt-consumer") {
		t.Errorf("an allowed Check does not strip the identity headers: %v", ok.GetHeadersToRemove())
	}

	// Envoy's router: the backend (the record path, fields= removed).
	q := u.Query()
	q.Del("fields")
	target := ef.backendURL + "/" + parts[2]
	if len(q) > 0 {
		target += "?" + q.Encode()
	}
	bresp, err := http.Get(target)
	if err != nil {
		t.Fatal(err)
	}
	raw, _ := io.ReadAll(bresp.Body)
	bresp.Body.Close()
	down := http.Header{}
	for k, v := range bresp.Header {
		down[k] = v
	}
	down.Set("X-Backend-Build", "internal-7.3") // a header the backend leaks
	status := bresp.StatusCode

	stream, err := ef.proc.Process(ctx)
	if err != nil {
		t.Fatal(err)
	}
	meta := &corev3.Metadata{FilterMetadata: map[string]*structpb.Struct{envoydoor.Namespace: check.GetDynamicMetadata()}}
	var hv []*corev3.HeaderValue
	hv = append(hv, &corev3.HeaderValue{Key: ":status", RawValue: []byte(strconv.Itoa(status))})
	for k := range down {
		hv = append(hv, &corev3.HeaderValue{Key: strings.ToLower(k), RawValue: []byte(down.Get(k))})
	}
	answer := envoyAnswer{backendCalled: true, allowed: true}
	// exchange sends one message and applies the answer; it returns false
	// once an ImmediateResponse ends the exchange.
	var out []byte
	exchange := func(req *extprocv3.ProcessingRequest, chunk []byte) bool {
		t.Helper()
		req.MetadataContext = meta
		if err := stream.Send(req); err != nil {
			t.Fatalf("ext_proc send: %v", err)
		}
		resp, err := stream.Recv()
		if err != nil {
			t.Fatalf("ext_proc recv: %v", err)
		}
		if im := resp.GetImmediateResponse(); im != nil {
			h := http.Header{}
			for _, o := range im.GetHeaders().GetSetHeaders() {
				h.Set(o.GetHeader().GetKey(), string(o.GetHeader().GetRawValue()))
			}
			h.Set("Content-Length", strconv.Itoa(len(im.GetBody()))) // set by Envoy for a local reply
			answer.status, answer.header, answer.body = int(im.GetStatus().GetCode()), h, im.GetBody()
			return false
		}
		var common *extprocv3.CommonResponse
		switch r := resp.Response.(type) {
		case *extprocv3.ProcessingResponse_ResponseHeaders:
			common = r.ResponseHeaders.GetResponse()
		case *extprocv3.ProcessingResponse_ResponseBody:
			common = r.ResponseBody.GetResponse()
		case *extprocv3.ProcessingResponse_ResponseTrailers:
			return true
		}
		if m := common.GetHeaderMutation(); m != nil {
			for _, k := range m.GetRemoveHeaders() {
				down.Del(k)
			}
			for _, o := range m.GetSetHeaders() {
				down.Set(o.GetHeader().GetKey(), string(o.GetHeader().GetRawValue()))
			}
		}
		if _, isBody := resp.Response.(*extprocv3.ProcessingResponse_ResponseBody); isBody {
			switch bm := common.GetBodyMutation().GetMutation().(type) {
			case *extprocv3.BodyMutation_Body:
				out = append(out, bm.Body...)
			case *extprocv3.BodyMutation_ClearBody:
			default:
				out = append(out, chunk...)
			}
		}
		return true
	}
	trailers := &extprocv3.ProcessingRequest{Request: &extprocv3.ProcessingRequest_ResponseTrailers{ResponseTrailers: &extprocv3.HttpTrailers{
		Trailers: &corev3.HeaderMap{Headers: []*corev3.HeaderValue{{Key: "x-backend-checksum", RawValue: []byte("abc")}}},
	}}}
	body := func(b []byte, eos bool) *extprocv3.ProcessingRequest {
		return &extprocv3.ProcessingRequest{Request: &extprocv3.ProcessingRequest_ResponseBody{ResponseBody: &extprocv3.HttpBody{Body: b, EndOfStream: eos}}}
	}
	func() {
		if !exchange(&extprocv3.ProcessingRequest{Request: &extprocv3.ProcessingRequest_ResponseHeaders{ResponseHeaders: &extprocv3.HttpHeaders{
			Headers: &corev3.HeaderMap{Headers: hv}, EndOfStream: len(raw) == 0,
		}}}, nil) || len(raw) == 0 {
			return
		}
		switch shape {
		case oneChunk:
			exchange(body(raw, true), raw)
		case oneChunkThenTrailers:
			if exchange(body(raw, false), raw) {
				exchange(trailers, nil)
			}
		case chunks, chunksThenTrailers, chunksNoEndTrailers:
			for i := 0; i < len(raw); i += 7 {
				end := min(i+7, len(raw))
				if !exchange(body(raw[i:end], end == len(raw) && shape != chunksNoEndTrailers), raw[i:end]) {
					return
				}
			}
			if shape != chunks {
				exchange(trailers, nil)
			}
		}
	}()
	_ = stream.CloseSend()
	if answer.status == 0 {
		answer.status, _ = strconv.Atoi(down.Get(":status"))
		if answer.status == 0 {
			answer.status = status
		}
		answer.header, answer.body = down, out
	}
	return answer
}

// native calls the provider's native inbound door as the peer gateway.
func (ef *envoyFederation) native(path string, headers map[string]string) envoyAnswer {
	ef.t.Helper()
	req, err := http.NewRequest(http.MethodGet, "https://"+ef.inbound+path, nil)
	if err != nil {
		ef.t.Fatal(err)
	}
	for k, v := range headers {
		req.Header.Set(k, v)
	}
	resp, err := ef.peer.Do(req)
	if err != nil {
		ef.t.Fatal(err)
	}
	defer resp.Body.Close()
	raw, _ := io.ReadAll(resp.Body)
	return envoyAnswer{status: resp.StatusCode, header: resp.Header, body: raw}
}

// exchangeHeaders are the headers a peer gateway sends for consumer.
func exchangeHeaders(consumer, id string) map[string]string {
	return map[string]string{gateway.HeaderConsumer: consumer, gateway.HeaderPurpose: purpose, gateway.HeaderExchangeID: id}
}

// phases is the exchange's records as "phase:status".
func phases(recs []audit.Record) []string {
	out := make([]string, 0, len(recs))
	for _, r := range recs {
		out = append(out, fmtRecord(r))
	}
	return out
}

// pemChain is a certificate chain as Envoy forwards it: URL-encoded PEM.
func pemChain(ders [][]byte) string {
	var chain []byte
	for _, der := range ders {
		chain = append(chain, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der})...)
	}
	return url.QueryEscape(string(chain))
}

// checkRequest is the CheckRequest Envoy's ext_authz filter sends for a GET
// of path on the inbound listener: peer certificate, lower-case headers with
// the pseudo-headers, the route's context_extensions.
func checkRequest(ef *envoyFederation, path string, headers map[string]string) *authv3.CheckRequest {
	return checkRequestWith(ef, http.MethodGet, path, headers, nil)
}

// checkRequestWith is checkRequest for any method, with the request body as
// ext_authz's with_request_body sends it packed as bytes (raw_body).
func checkRequestWith(ef *envoyFederation, method, path string, headers map[string]string, body []byte) *authv3.CheckRequest {
	u, _ := url.Parse(path)
	rest := strings.TrimPrefix(strings.TrimPrefix(u.Path, "/r/"), "/v/")
	parts := strings.SplitN(rest, "/", 3)
	for len(parts) < 2 {
		parts = append(parts, "")
	}
	hdr := map[string]string{":authority": ef.inbound, ":method": method, ":path": path, ":scheme": "https",
		"x-forwarded-proto": "https", "x-request-id": "b4d6c1c0-0000-4000-8000-000000000001", "user-agent": "lienthong-gateway"}
	for k, v := range headers {
		hdr[strings.ToLower(k)] = v
	}
	return &authv3.CheckRequest{Attributes: &authv3.AttributeContext{
		Source: &authv3.AttributeContext_Peer{
			Address:     &corev3.Address{Address: &corev3.Address_SocketAddress{SocketAddress: &corev3.SocketAddress{Address: "192.0.2.10", PortSpecifier: &corev3.SocketAddress_PortValue{PortValue: 50432}}}},
			Certificate: ef.peerPEM,
		},
		Destination: &authv3.AttributeContext_Peer{Address: &corev3.Address{Address: &corev3.Address_SocketAddress{SocketAddress: &corev3.SocketAddress{Address: "10.0.0.1", PortSpecifier: &corev3.SocketAddress_PortValue{PortValue: 9443}}}}},
		Request: &authv3.AttributeContext_Request{Http: &authv3.AttributeContext_HttpRequest{
			Id: "1", Method: method, Headers: hdr, Path: path, Host: ef.inbound, Scheme: "https", Protocol: "HTTP/2",
			RawBody: body, Size: int64(len(body)),
		}},
		ContextExtensions: map[string]string{"provider": parts[0], "dataset": parts[1]},
	}}
}

// cutStream opens the ext_proc stream of an allowed Check, sends the
// response headers and ends the stream, as Envoy does when the caller goes
// away mid-answer.
func cutStream(t *testing.T, ef *envoyFederation, check *authv3.CheckResponse) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	stream, err := ef.proc.Process(ctx)
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
}
