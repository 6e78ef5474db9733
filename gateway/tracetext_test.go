package gateway_test

import (
	"context"
	"io"
	"net/http"
	"strings"
	"testing"
	"time"

	authv3 "github.com/envoyproxy/go-control-plane/envoy/service/auth/v3"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	"go.opentelemetry.io/otel/sdk/trace/tracetest"

	"github.com/lienthong/lienthong/gateway"
	"github.com/lienthong/lienthong/internal/tracing"
)

// callerTrace is a consumer system's trace context: a traceparent, and the
// free text W3C lets a caller attach to it (here holding the personal id).
const callerTraceID = "4bf92f3577b34da6a3ce929d0e0e4736"

var callerTrace = map[string]string{
	"traceparent": "00-" + callerTraceID + "-00f067aa0ba902b7-01",
	"tracestate":  "lt=" + citizenID,
	"baggage":     "citizen=" + citizenID,
}

// noCallerTraceText fails when what a hop received (headers) or a span
// the gateways recorded holds the caller's tracestate or baggage.
func noCallerTraceText(t *testing.T, hop string, h http.Header, spans tracetest.SpanStubs) {
	t.Helper()
	for _, k := range []string{"tracestate", "baggage"} {
		if v := h.Get(k); v != "" {
			t.Errorf("the caller's %s reached the %s: %q", k, hop, v)
		}
	}
	if !strings.Contains(h.Get("traceparent"), callerTraceID) {
		t.Errorf("the %s got traceparent %q, not of the caller's trace: nothing was passed on", hop, h.Get("traceparent"))
	}
	for _, s := range spans {
		if s.SpanContext.TraceState().Len() != 0 || s.Parent.TraceState().Len() != 0 {
			t.Errorf("span %s keeps a tracestate: %q (parent %q)", s.Name, s.SpanContext.TraceState(), s.Parent.TraceState())
		}
	}
}

// tracingCases are the tracing settings both doors are tried with: a
// provider gateway that traces shows in its spans' parent what the
// consumer gateway passed on, whether that one traces or not.
var tracingCases = []struct {
	name               string
	consumer, provider bool
}{
	{"tracing off", false, false},
	{"consumer off, provider on", false, true},
	{"tracing on", true, true},
}

// tracingOpts are the options of each gateway for one case, with the
// exporter the traced ones record to.
func tracingOpts(t *testing.T, consumer, provider bool) (copts, popts []gateway.Option, exp *tracetest.InMemoryExporter) {
	exp = tracetest.NewInMemoryExporter()
	tp := tracing.NewProvider(sdktrace.NewSimpleSpanProcessor(exp), 1, "trace-text-test")
	t.Cleanup(func() { _ = tp.Shutdown(context.Background()) })
	if consumer {
		copts = append(copts, gateway.WithTracerProvider(tp))
	}
	if provider {
		popts = append(popts, gateway.WithTracerProvider(tp))
	}
	return copts, popts, exp
}

// TestCallerTraceTextStopsAtTheNativeDoor: a caller's tracestate and
// baggage are free text; through the native doors, tracing on or off,
// neither reaches the provider gateway (its spans' parent) or the backend,
// while the traceparent does.
func TestCallerTraceTextStopsAtTheNativeDoor(t *testing.T) {
	for _, tc := range tracingCases {
		t.Run(tc.name, func(t *testing.T) {
			copts, popts, exp := tracingOpts(t, tc.consumer, tc.provider)
			f := newFederationFull(t, 0, nil, popts, copts)
			req, err := http.NewRequest(http.MethodGet, "https://"+f.outbound+recordPath+citizenID, nil)
			if err != nil {
				t.Fatal(err)
			}
			req.Header.Set(gateway.HeaderPurpose, purpose)
			for k, v := range callerTrace {
				req.Header.Set(k, v)
			}
			resp, err := f.systemClient(insurance).Do(req)
			if err != nil {
				t.Fatal(err)
			}
			body, _ := io.ReadAll(resp.Body)
			resp.Body.Close()
			if resp.StatusCode != http.StatusOK {
				t.Fatalf("exchange: %d %s", resp.StatusCode, body)
			}
			spans := exp.GetSpans()
			if tc.provider && len(spans) == 0 {
				t.Fatal("no span recorded")
			}
			got, _ := f.backendHeader.Load().(http.Header)
			noCallerTraceText(t, "backend", got, spans)
		})
	}
}

// TestCallerTraceTextStopsAtTheEnvoyDoors: the same through the Envoy
// doors (a FAKE ENVOY, see tracingEdge, that does not trace): the
// consumer's outbound Check removes the caller's tracestate and baggage,
// and the provider's inbound Check removes them again should a peer edge
// pass them on, tracing on or off.
func TestCallerTraceTextStopsAtTheEnvoyDoors(t *testing.T) {
	for _, tc := range tracingCases {
		t.Run(tc.name, func(t *testing.T) {
			copts, popts, exp := tracingOpts(t, tc.consumer, tc.provider)
			ef := newEnvoyFederationWith(t, popts, copts, false, 0)
			outbound := newOutboundEdge(t, ef)
			callerPair, _ := ef.enrolledPair(insurance)
			cons := &tracingEdge{t: t, name: "consumer", auth: outbound.auth, proc: outbound.proc}
			prov := &tracingEdge{t: t, name: "provider", auth: ef.auth, proc: ef.proc}
			ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
			defer cancel()

			path := recordPath + citizenID
			sent := map[string]string{":authority": "edge.vss", ":method": http.MethodGet, ":path": path, ":scheme": "https", "x-lt-purpose": purpose}
			for k, v := range callerTrace {
				sent[k] = v
			}
			cons.receive(sent)
			ext := map[string]string{"provider": population, "dataset": "population", "door": "outbound"}
			ccheck, _ := cons.check(ctx, &authv3.CheckRequest{Attributes: &authv3.AttributeContext{
				Source: &authv3.AttributeContext_Peer{Certificate: pemChain(callerPair.Certificate[:1])},
				Request: &authv3.AttributeContext_Request{Http: &authv3.AttributeContext_HttpRequest{
					Method: http.MethodGet, Headers: clone(sent), Path: path, Host: "edge.vss", Scheme: "https",
				}},
				ContextExtensions: ext,
			}}, sent)
			noCallerTraceText(t, "provider's edge", headerOf(sent), exp.GetSpans())

			// A peer edge that passed them on anyway.
			sent["tracestate"], sent["baggage"] = callerTrace["tracestate"], callerTrace["baggage"]
			prov.receive(sent)
			delete(ext, "door")
			pcheck, _ := prov.check(ctx, &authv3.CheckRequest{Attributes: &authv3.AttributeContext{
				Source: &authv3.AttributeContext_Peer{Certificate: ef.peerPEM},
				Request: &authv3.AttributeContext_Request{Http: &authv3.AttributeContext_HttpRequest{
					Method: http.MethodGet, Headers: clone(sent), Path: path, Host: ef.inbound, Scheme: "https",
				}},
				ContextExtensions: ext,
			}}, sent)
			// Envoy's router: the request as the Checks left it.
			req, err := http.NewRequestWithContext(ctx, http.MethodGet, ef.backendURL+"/citizens/"+citizenID, nil)
			if err != nil {
				t.Fatal(err)
			}
			for k, v := range sent {
				if !strings.HasPrefix(k, ":") {
					req.Header.Set(k, v)
				}
			}
			resp, err := http.DefaultClient.Do(req)
			if err != nil {
				t.Fatal(err)
			}
			raw, _ := io.ReadAll(resp.Body)
			resp.Body.Close()
			up, _ := prov.process(ctx, pcheck, nil, edgeAnswer{status: resp.StatusCode, header: resp.Header, body: raw})
			final, _ := cons.process(ctx, ccheck, nil, up)
			if final.status != http.StatusOK {
				t.Fatalf("the exchange: %d %s", final.status, final.body)
			}
			got, _ := ef.backendHeader.Load().(http.Header)
			noCallerTraceText(t, "backend", got, exp.GetSpans())
		})
	}
}

// headerOf is a fake Envoy's header map as an http.Header.
func headerOf(m map[string]string) http.Header {
	h := http.Header{}
	for k, v := range m {
		h.Set(k, v)
	}
	return h
}
