package gateway_test

import (
	"context"
	"io"
	"net/http"
	"strconv"
	"strings"
	"testing"
	"time"

	corev3 "github.com/envoyproxy/go-control-plane/envoy/config/core/v3"
	authv3 "github.com/envoyproxy/go-control-plane/envoy/service/auth/v3"
	extprocv3 "github.com/envoyproxy/go-control-plane/envoy/service/ext_proc/v3"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	"go.opentelemetry.io/otel/sdk/trace/tracetest"
	"go.opentelemetry.io/otel/trace"
	"google.golang.org/grpc/metadata"
	"google.golang.org/protobuf/types/known/structpb"

	"github.com/lienthong/lienthong/gateway"
	envoydoor "github.com/lienthong/lienthong/gateway/envoy"
	"github.com/lienthong/lienthong/internal/tracing"
)

// tracingEdge is one member's edge for the trace test: a FAKE ENVOY (no
// Envoy binary here) calling the gateway's Check and Process over gRPC as
// Envoy's ext_authz and ext_proc filters do. With tracer set it traces as
// Envoy's HTTP connection manager does when the listener has a tracer: an
// ingress span continuing the request's traceparent, a child of it for each
// ext_authz and ext_proc call, whose context Envoy's gRPC client injects
// into the call's metadata, and the ingress span's context injected into
// the upstream request, overwriting its traceparent. Without a tracer (the
// xDS configuration the control plane generates) traceparent passes through
// Envoy like any header and the gRPC calls carry none.
type tracingEdge struct {
	t      *testing.T
	name   string
	auth   authv3.AuthorizationClient
	proc   extprocv3.ExternalProcessorClient
	tracer trace.Tracer
	// ingress is the ingress span's context (tracer set).
	ingress context.Context
	spans   []trace.Span
}

// receive is Envoy taking a request: its ingress span, when it traces.
func (e *tracingEdge) receive(headers map[string]string) {
	e.ingress = context.Background()
	if e.tracer == nil {
		return
	}
	h := http.Header{}
	for k, v := range headers {
		h.Set(k, v)
	}
	var span trace.Span
	e.ingress, span = e.tracer.Start(tracing.Extract(context.Background(), h), "envoy "+e.name+" ingress", trace.WithSpanKind(trace.SpanKindServer))
	e.spans = append(e.spans, span)
}

// call is the context of one gRPC call to the gateway: with Envoy's span
// for it in the metadata, when Envoy traces.
func (e *tracingEdge) call(ctx context.Context, filter string) context.Context {
	if e.tracer == nil {
		return ctx
	}
	sctx, span := e.tracer.Start(e.ingress, "envoy "+e.name+" "+filter, trace.WithSpanKind(trace.SpanKindClient))
	e.spans = append(e.spans, span)
	h := http.Header{}
	tracing.Inject(sctx, h)
	return metadata.AppendToOutgoingContext(ctx, "traceparent", h.Get("traceparent"))
}

// route is Envoy's router sending the request on: a tracing Envoy injects
// its own span's context.
func (e *tracingEdge) route(headers map[string]string) {
	if e.tracer == nil {
		return
	}
	h := http.Header{}
	tracing.Inject(e.ingress, h)
	headers["traceparent"] = h.Get("traceparent")
}

func (e *tracingEdge) finish() {
	for _, s := range e.spans {
		s.End()
	}
	e.spans = nil
}

// check calls Check and, allowed, applies its header changes to headers
// as Envoy does; it returns the response and the headers Check set.
func (e *tracingEdge) check(ctx context.Context, req *authv3.CheckRequest, headers map[string]string) (*authv3.CheckResponse, map[string]string) {
	e.t.Helper()
	resp, err := e.auth.Check(e.call(ctx, "ext_authz"), req)
	if err != nil {
		e.t.Fatalf("%s Check: %v", e.name, err)
	}
	ok := resp.GetOkResponse()
	if ok == nil || resp.GetDynamicMetadata() == nil {
		e.t.Fatalf("%s Check did not allow: %v", e.name, resp)
	}
	for _, k := range ok.GetHeadersToRemove() {
		delete(headers, k)
	}
	set := map[string]string{}
	for _, hv := range ok.GetHeaders() {
		k := strings.ToLower(hv.GetHeader().GetKey())
		headers[k], set[k] = hv.GetHeader().GetValue(), hv.GetHeader().GetValue()
	}
	return resp, set
}

// edgeAnswer is an HTTP answer as it passes through an edge.
type edgeAnswer struct {
	status int
	header http.Header
	body   []byte
}

// process runs one ext_proc stream with the Check's metadata: the request
// headers when reqHeaders is set (the verify route), else the response
// headers and the BUFFERED body of up. It applies the mutations and returns
// what Envoy sends on, and the header values Process set.
func (e *tracingEdge) process(ctx context.Context, check *authv3.CheckResponse, reqHeaders map[string]string, up edgeAnswer) (edgeAnswer, []string) {
	e.t.Helper()
	stream, err := e.proc.Process(e.call(ctx, "ext_proc"))
	if err != nil {
		e.t.Fatal(err)
	}
	defer func() { _ = stream.CloseSend() }()
	meta := &corev3.Metadata{FilterMetadata: map[string]*structpb.Struct{envoydoor.Namespace: check.GetDynamicMetadata()}}
	var msgs []*extprocv3.ProcessingRequest
	if reqHeaders != nil {
		var hv []*corev3.HeaderValue
		for k, v := range reqHeaders {
			hv = append(hv, &corev3.HeaderValue{Key: k, RawValue: []byte(v)})
		}
		msgs = append(msgs, &extprocv3.ProcessingRequest{Request: &extprocv3.ProcessingRequest_RequestHeaders{RequestHeaders: &extprocv3.HttpHeaders{Headers: &corev3.HeaderMap{Headers: hv}}}})
	} else {
		hv := []*corev3.HeaderValue{{Key: ":status", RawValue: []byte(strconv.Itoa(up.status))}}
		for k := range up.header {
			hv = append(hv, &corev3.HeaderValue{Key: strings.ToLower(k), RawValue: []byte(up.header.Get(k))})
		}
		msgs = append(msgs,
			&extprocv3.ProcessingRequest{Request: &extprocv3.ProcessingRequest_ResponseHeaders{ResponseHeaders: &extprocv3.HttpHeaders{Headers: &corev3.HeaderMap{Headers: hv}}}},
			&extprocv3.ProcessingRequest{Request: &extprocv3.ProcessingRequest_ResponseBody{ResponseBody: &extprocv3.HttpBody{Body: up.body, EndOfStream: true}}})
	}
	out := edgeAnswer{status: up.status, header: up.header.Clone(), body: up.body}
	var set []string
	for _, m := range msgs {
		m.MetadataContext = meta
		if err := stream.Send(m); err != nil {
			e.t.Fatal(err)
		}
		r, err := stream.Recv()
		if err != nil {
			e.t.Fatalf("%s ext_proc: %v", e.name, err)
		}
		if im := r.GetImmediateResponse(); im != nil {
			h := http.Header{}
			for _, o := range im.GetHeaders().GetSetHeaders() {
				h.Set(o.GetHeader().GetKey(), string(o.GetHeader().GetRawValue()))
				set = append(set, string(o.GetHeader().GetRawValue()))
			}
			h.Set("Content-Length", strconv.Itoa(len(im.GetBody())))
			return edgeAnswer{status: int(im.GetStatus().GetCode()), header: h, body: im.GetBody()}, set
		}
		var common *extprocv3.CommonResponse
		switch x := r.Response.(type) {
		case *extprocv3.ProcessingResponse_ResponseHeaders:
			common = x.ResponseHeaders.GetResponse()
		case *extprocv3.ProcessingResponse_ResponseBody:
			common = x.ResponseBody.GetResponse()
			if b, ok := common.GetBodyMutation().GetMutation().(*extprocv3.BodyMutation_Body); ok {
				out.body = b.Body
			}
		default:
			e.t.Fatalf("%s ext_proc answered %T", e.name, r.Response)
		}
		for _, k := range common.GetHeaderMutation().GetRemoveHeaders() {
			out.header.Del(k)
		}
		for _, o := range common.GetHeaderMutation().GetSetHeaders() {
			out.header.Set(o.GetHeader().GetKey(), string(o.GetHeader().GetRawValue()))
			set = append(set, string(o.GetHeader().GetRawValue()))
		}
	}
	return out, set
}

// TestEnvoyExchangeIsOneConnectedTrace: a consumer system starts a trace
// and calls its member's edge; the consumer gateway's Check (outbound) and
// ext_proc, the provider gateway's Check (inbound) and ext_proc, and the
// backend (a query: Envoy's router fetches it) or the adapter (a
// verification: the gateway fetches the record) all add to that one trace,
// each span the child of the one before it, whether Envoy traces itself
// (its ext_authz and ext_proc spans are the doors' parents, passed in the
// gRPC metadata) or not (the request's traceparent, then the span the
// gateway had Envoy forward). Every gateway span carries the exchange id;
// no span attribute, name or event, and no header a door set, holds a
// field value, the personal id, its audit subject or a claim.
func TestEnvoyExchangeIsOneConnectedTrace(t *testing.T) {
	exp := tracetest.NewInMemoryExporter()
	tp := tracing.NewProvider(sdktrace.NewSimpleSpanProcessor(exp), 1, "envoy-trace-test")
	t.Cleanup(func() { _ = tp.Shutdown(context.Background()) })
	envoyLn := liveListener(t)
	f := newFederationFull(t, 0, nil,
		[]gateway.Option{gateway.WithSink(&memSink{}), gateway.WithTracerProvider(tp), gateway.WithEnvoyListener(envoyLn)},
		[]gateway.Option{gateway.WithSink(&memSink{}), gateway.WithTracerProvider(tp)})
	ef := &envoyFederation{federation: f, envoyAddr: envoyLn.Addr().String()}
	envoyPair, _ := f.enrolledPair(mpsGW)
	ef.auth, ef.proc = ef.dial(envoyPair)
	peerPair, _ := f.enrolledPair(vssGW)
	ef.peerPEM = pemChain(peerPair.Certificate[:1]) // the consumer edge's certificate
	ef.peer = f.clientWith(peerPair)
	outbound := newOutboundEdge(t, ef)
	callerPair, _ := f.enrolledPair(insurance)
	caller := pemChain(callerPair.Certificate[:1])

	claims := []byte(`{"attributes":{"dateOfBirth":"1990-05-01","fullName":"Nguyễn Văn Ân"}}`)
	for _, tc := range []struct {
		name        string
		verify      bool
		envoyTraces bool
	}{
		{"query, Envoy does not trace", false, false},
		{"query, Envoy traces", false, true},
		{"verify, Envoy does not trace", true, false},
		{"verify, Envoy traces", true, true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			exp.Reset()
			var envoyTracer trace.Tracer
			if tc.envoyTraces {
				envoyTracer = tp.Tracer("fake-envoy")
			}
			cons := &tracingEdge{t: t, name: "consumer", auth: outbound.auth, proc: outbound.proc, tracer: envoyTracer}
			prov := &tracingEdge{t: t, name: "provider", auth: ef.auth, proc: ef.proc, tracer: envoyTracer}
			ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
			defer cancel()

			rctx, root := tp.Tracer("consumer-system").Start(ctx, "consumer system asks")
			method, path, body := http.MethodGet, recordPath+citizenID, []byte(nil)
			if tc.verify {
				method, path, body = http.MethodPost, "/v/"+population+"/population/"+citizenID, claims
			}
			h := http.Header{}
			tracing.Inject(rctx, h)
			sent := map[string]string{":authority": "edge.vss", ":method": method, ":path": path, ":scheme": "https",
				"x-lt-purpose": purpose, "traceparent": h.Get("traceparent"),
				// Free text a caller attaches: never kept, never passed on.
				"baggage": "citizen=" + citizenID, "tracestate": "lt=" + citizenID}
			if body != nil {
				sent["content-type"], sent["content-length"] = "application/json", strconv.Itoa(len(body))
			}

			// The consumer's edge: Check (outbound), then the router.
			cons.receive(sent)
			ext := map[string]string{"provider": population, "dataset": "population", "door": "outbound"}
			ccheck, cset := cons.check(ctx, &authv3.CheckRequest{Attributes: &authv3.AttributeContext{
				Source: &authv3.AttributeContext_Peer{Certificate: caller},
				Request: &authv3.AttributeContext_Request{Http: &authv3.AttributeContext_HttpRequest{
					Method: method, Headers: clone(sent), Path: path, Host: "edge.vss", Scheme: "https", RawBody: body,
				}},
				ContextExtensions: ext,
			}}, sent)
			for _, k := range []string{"baggage", "tracestate"} {
				if _, ok := sent[k]; ok {
					t.Errorf("the outbound Check let the caller's %s go on to the provider", k)
				}
			}
			cons.route(sent)

			// The provider's edge: Check (inbound), then the backend (a
			// query) or ext_proc at the request headers (a verification).
			prov.receive(sent)
			delete(ext, "door")
			pcheck, pset := prov.check(ctx, &authv3.CheckRequest{Attributes: &authv3.AttributeContext{
				Source: &authv3.AttributeContext_Peer{Certificate: ef.peerPEM},
				Request: &authv3.AttributeContext_Request{Http: &authv3.AttributeContext_HttpRequest{
					Method: method, Headers: clone(sent), Path: path, Host: ef.inbound, Scheme: "https", RawBody: body,
				}},
				ContextExtensions: ext,
			}}, sent)
			var up edgeAnswer
			var procSet []string
			f.backendTraceparent.Store("")
			if tc.verify {
				up, procSet = prov.process(ctx, pcheck, sent, edgeAnswer{})
			} else {
				prov.route(sent)
				req, err := http.NewRequestWithContext(ctx, http.MethodGet, f.backendURL+"/citizens/"+citizenID, nil)
				if err != nil {
					t.Fatal(err)
				}
				req.Header.Set("traceparent", sent["traceparent"])
				resp, err := http.DefaultClient.Do(req)
				if err != nil {
					t.Fatal(err)
				}
				raw, _ := io.ReadAll(resp.Body)
				resp.Body.Close()
				up, procSet = prov.process(ctx, pcheck, nil, edgeAnswer{status: resp.StatusCode, header: resp.Header, body: raw})
			}
			// The provider's answer back at the consumer's edge.
			final, consSet := cons.process(ctx, ccheck, nil, up)
			prov.finish()
			cons.finish()
			root.End()
			if final.status != http.StatusOK {
				t.Fatalf("the exchange: %d %s", final.status, final.body)
			}
			exchangeID := final.header.Get(gateway.HeaderExchangeID)
			if exchangeID == "" {
				t.Fatal("the answer names no exchange")
			}

			// The gateways end a stream's span once Envoy closes the
			// stream, after the last answer: wait for both (bounded).
			spans := spansByKey(exp)
			for deadline := time.Now().Add(10 * time.Second); time.Now().Before(deadline); time.Sleep(10 * time.Millisecond) {
				_, p := spans["lienthong.envoy.process/provider"]
				_, c := spans["lienthong.envoy.process/consumer"]
				if p && c {
					break
				}
				spans = spansByKey(exp)
			}
			for key, s := range spans {
				if s.SpanContext.TraceID() != root.SpanContext().TraceID() {
					t.Errorf("%s is in trace %s, not the consumer system's %s", key, s.SpanContext.TraceID(), root.SpanContext().TraceID())
				}
			}
			get := func(key string) tracetest.SpanStub {
				t.Helper()
				s, ok := spans[key]
				if !ok {
					t.Fatalf("no span %s (got %v)", key, keysOf(spans))
				}
				return s
			}
			parent := func(child, want string) {
				t.Helper()
				if got := get(child).Parent.SpanID(); got != get(want).SpanContext.SpanID() {
					t.Errorf("%s's parent is %s, want %s (%s)", child, got, want, get(want).SpanContext.SpanID())
				}
			}
			const (
				ccheckSpan = "lienthong.envoy.check/consumer"
				forward    = "lienthong.forward/consumer"
				pcheckSpan = "lienthong.envoy.check/provider"
				backend    = "lienthong.envoy.backend/provider"
				pproc      = "lienthong.envoy.process/provider"
				cproc      = "lienthong.envoy.process/consumer"
				adapter    = "lienthong.adapter.fetch"
			)
			gatewaySpans := []string{ccheckSpan, forward, pcheckSpan, pproc, cproc}
			if tc.verify {
				gatewaySpans = append(gatewaySpans, adapter)
			} else {
				gatewaySpans = append(gatewaySpans, backend)
			}
			parent(forward, ccheckSpan)
			if tc.verify {
				parent(adapter, pproc)
				if _, ok := spans[backend]; ok {
					t.Error("a verification has a backend span: Envoy routes it nowhere")
				}
			} else {
				parent(backend, pcheckSpan)
			}
			if tc.envoyTraces {
				// The doors' parents are Envoy's spans for the calls.
				parent("envoy consumer ingress", "consumer system asks")
				parent(ccheckSpan, "envoy consumer ext_authz")
				parent(cproc, "envoy consumer ext_proc")
				parent("envoy provider ingress", "envoy consumer ingress")
				parent(pcheckSpan, "envoy provider ext_authz")
				parent(pproc, "envoy provider ext_proc")
			} else {
				// The request's traceparent, then the span the gateway had
				// Envoy forward, then the exchange's own spans.
				parent(ccheckSpan, "consumer system asks")
				parent(pcheckSpan, forward)
				parent(cproc, forward)
				if tc.verify {
					parent(pproc, forward) // the request headers' traceparent
				} else {
					parent(pproc, backend)
				}
				if len(spans) != len(gatewaySpans)+1 {
					t.Errorf("spans %v, want the consumer system's and %v", keysOf(spans), gatewaySpans)
				}
			}

			// What the doors had Envoy forward: their own spans' contexts.
			if got, want := cset["traceparent"], traceparentOf(get(forward)); got != want {
				t.Errorf("the consumer's Check had Envoy forward traceparent %q, want the forward span's %q", got, want)
			}
			tpBackend, _ := f.backendTraceparent.Load().(string)
			if tc.verify {
				if _, ok := pset["traceparent"]; ok {
					t.Errorf("the provider's Check set a traceparent for a verification, which goes nowhere: %v", pset)
				}
				if want := traceparentOf(get(adapter)); tpBackend != want {
					t.Errorf("the backend got traceparent %q, want the adapter span's %q", tpBackend, want)
				}
			} else {
				if got, want := pset["traceparent"], traceparentOf(get(backend)); got != want {
					t.Errorf("the provider's Check had Envoy forward traceparent %q, want the backend span's %q", got, want)
				}
				if !tc.envoyTraces && tpBackend != traceparentOf(get(backend)) {
					t.Errorf("the backend got traceparent %q, want the provider's Check's %q", tpBackend, traceparentOf(get(backend)))
				}
				if !strings.Contains(tpBackend, root.SpanContext().TraceID().String()) {
					t.Errorf("the backend got traceparent %q, not of the exchange's trace", tpBackend)
				}
			}

			for _, name := range gatewaySpans {
				if name == adapter {
					continue
				}
				found := false
				for _, a := range get(name).Attributes {
					if a.Key == tracing.KeyExchangeID && a.Value.AsString() == exchangeID {
						found = true
					}
				}
				if !found {
					t.Errorf("%s does not carry exchange id %s", name, exchangeID)
				}
			}

			var headers []string
			for _, m := range []map[string]string{cset, pset} {
				for _, v := range m {
					headers = append(headers, v)
				}
			}
			headers = append(append(headers, procSet...), consSet...)
			assertNoSubjectData(t, f, exp.GetSpans(), headers, exchangeID, final.body, claims)
		})
	}

	// An exchange whose answer never comes whole (Envoy cuts the ext_proc
	// stream after the response headers) still ends its spans, the
	// stream's with the outcome recorded for it.
	t.Run("a stream cut before the answer", func(t *testing.T) {
		exp.Reset()
		ctx, root := tp.Tracer("peer").Start(context.Background(), "peer gateway forwards")
		h := http.Header{}
		tracing.Inject(ctx, h)
		headers := exchangeHeaders(insurance, "trace-cut-1")
		headers["traceparent"] = h.Get("traceparent")
		check, err := ef.auth.Check(ctx, checkRequest(ef, recordPath+citizenID, headers))
		if err != nil || check.GetOkResponse() == nil {
			t.Fatalf("Check: %v %v", err, check)
		}
		cutStream(t, ef, check)
		root.End()
		var spans map[string]tracetest.SpanStub
		for deadline := time.Now().Add(10 * time.Second); time.Now().Before(deadline); time.Sleep(10 * time.Millisecond) {
			if spans = spansByKey(exp); len(spans) >= 4 {
				break
			}
		}
		proc, ok := spans["lienthong.envoy.process/provider"]
		if !ok {
			t.Fatalf("no ext_proc span (got %v)", keysOf(spans))
		}
		for _, name := range []string{"lienthong.envoy.check/provider", "lienthong.envoy.backend/provider", "lienthong.envoy.process/provider"} {
			if s, ok := spans[name]; !ok || s.SpanContext.TraceID() != root.SpanContext().TraceID() {
				t.Errorf("%s missing or in another trace (got %v)", name, keysOf(spans))
			}
		}
		attrs := map[string]string{}
		for _, a := range proc.Attributes {
			attrs[string(a.Key)] = a.Value.Emit()
		}
		if attrs[string(tracing.KeyOutcome)] != "backend_error" || attrs[string(tracing.KeyStatus)] != "502" || attrs[string(tracing.KeyExchangeID)] != "trace-cut-1" {
			t.Errorf("the cut stream's span says %v, want the exchange's backend_error, 502", attrs)
		}
	})
}

// spansByKey is the exported spans by name and side ("name/side").
func spansByKey(exp *tracetest.InMemoryExporter) map[string]tracetest.SpanStub {
	out := map[string]tracetest.SpanStub{}
	for _, s := range exp.GetSpans() {
		key := s.Name
		for _, a := range s.Attributes {
			if a.Key == tracing.KeySide {
				key += "/" + a.Value.AsString()
			}
		}
		if _, dup := out[key]; dup {
			key += " (again)"
		}
		out[key] = s
	}
	return out
}

// traceparentOf is the W3C traceparent naming a span.
func traceparentOf(s tracetest.SpanStub) string {
	h := http.Header{}
	tracing.Inject(trace.ContextWithSpanContext(context.Background(), s.SpanContext), h)
	return h.Get("traceparent")
}

func clone(m map[string]string) map[string]string {
	out := make(map[string]string, len(m))
	for k, v := range m {
		out[k] = v
	}
	return out
}
