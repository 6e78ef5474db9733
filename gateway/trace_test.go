package gateway_test

import (
	"context"
	"encoding/json"
	"io"
	"net/http"
	"strings"
	"testing"

	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	"go.opentelemetry.io/otel/sdk/trace/tracetest"

	"github.com/lienthong/lienthong/gateway"
	"github.com/lienthong/lienthong/internal/tracing"
)

// TestOneExchangeIsOneConnectedTrace: a consumer system starts a trace and
// calls its gateway with a traceparent; the consumer gateway, its forward
// to the provider gateway, the provider gateway and the adapter each add a
// span to that one trace, each the child of the one before, and the backend
// receives the adapter span's traceparent. The gateways' spans carry the
// exchange id; no span holds a field value, the personal id or its audit
// subject, in any attribute or name.
func TestOneExchangeIsOneConnectedTrace(t *testing.T) {
	exp := tracetest.NewInMemoryExporter()
	tp := tracing.NewProvider(sdktrace.NewSimpleSpanProcessor(exp), 1, "federation-test")
	t.Cleanup(func() { _ = tp.Shutdown(context.Background()) })
	opts := []gateway.Option{gateway.WithTracerProvider(tp)}
	f := newFederationFull(t, 0, nil, opts, opts)
	c := f.systemClient(insurance)

	ctx, root := tp.Tracer("consumer-system").Start(context.Background(), "consumer system asks")
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, "https://"+f.outbound+recordPath+citizenID, nil)
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set(gateway.HeaderPurpose, purpose)
	tracing.Inject(ctx, req.Header)
	resp, err := c.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	answer, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	root.End()
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("exchange: %d %s", resp.StatusCode, answer)
	}
	exchangeID := resp.Header.Get(gateway.HeaderExchangeID)

	byName := map[string]tracetest.SpanStub{}
	for _, s := range exp.GetSpans() {
		if _, dup := byName[s.Name]; dup {
			t.Errorf("span %s twice", s.Name)
		}
		byName[s.Name] = s
	}
	chain := []string{"consumer system asks", "lienthong.exchange.consumer", "lienthong.forward", "lienthong.exchange.provider", "lienthong.adapter.fetch"}
	for i, name := range chain {
		s, ok := byName[name]
		if !ok {
			t.Fatalf("no span %s (got %v)", name, keysOf(byName))
		}
		if s.SpanContext.TraceID() != root.SpanContext().TraceID() {
			t.Errorf("%s is in trace %s, not %s", name, s.SpanContext.TraceID(), root.SpanContext().TraceID())
		}
		if i > 0 && s.Parent.SpanID() != byName[chain[i-1]].SpanContext.SpanID() {
			t.Errorf("%s's parent is %s, not %s", name, s.Parent.SpanID(), chain[i-1])
		}
	}
	if len(byName) != len(chain) {
		t.Errorf("spans %v, want exactly %v", keysOf(byName), chain)
	}
	adapter := byName["lienthong.adapter.fetch"].SpanContext
	tp0, _ := f.backendTraceparent.Load().(string)
	if !strings.Contains(tp0, adapter.TraceID().String()) || !strings.Contains(tp0, adapter.SpanID().String()) {
		t.Errorf("the backend got traceparent %q, not the adapter span's", tp0)
	}
	for _, name := range chain[1:4] {
		found := false
		for _, a := range byName[name].Attributes {
			if a.Key == tracing.KeyExchangeID && a.Value.AsString() == exchangeID {
				found = true
			}
		}
		if !found {
			t.Errorf("%s does not carry exchange id %s", name, exchangeID)
		}
	}

	// Nothing about the citizen: no field value of the record (granted or
	// not), the personal id, its audit subject, or the masked id answered.
	assertNoSubjectData(t, f, exp.GetSpans(), nil, exchangeID, answer, nil)
}

func keysOf(m map[string]tracetest.SpanStub) []string {
	var out []string
	for k := range m {
		out = append(out, k)
	}
	return out
}

// assertNoSubjectData fails when a span (name, status, attribute keys and
// values, events, a gateway span's tracestate) or a header value a door
// set holds a value of the record (granted or not), the personal id, its
// audit subject, a value answered, or a claimed value. The native and the
// Envoy doors' trace tests both scan with it.
func assertNoSubjectData(t *testing.T, f *federation, spans tracetest.SpanStubs, headers []string, exchangeID string, answered []byte, claims []byte) {
	t.Helper()
	var forbidden []string
	var collect func(v any)
	collect = func(v any) {
		switch v := v.(type) {
		case string:
			if v != exchangeID { // a verification's answer names it
				forbidden = append(forbidden, v)
			}
		case map[string]any:
			for _, x := range v {
				collect(x)
			}
		case []any:
			for _, x := range v {
				collect(x)
			}
		}
	}
	for _, doc := range [][]byte{[]byte(citizens[citizenID]), answered, claims} {
		var v any
		if err := json.Unmarshal(doc, &v); err == nil {
			collect(v)
		}
	}
	forbidden = append(forbidden, citizenID, f.subjectKey().Subject(citizenID))
	texts := headers
	for _, s := range spans {
		texts = append(texts, s.Name, s.Status.Description)
		if strings.HasPrefix(s.Name, "lienthong.") {
			// The fake Envoy keeps the caller's tracestate; a gateway never.
			texts = append(texts, s.SpanContext.TraceState().String(), s.Parent.TraceState().String())
		}
		for _, a := range s.Attributes {
			texts = append(texts, string(a.Key), a.Value.Emit())
		}
		for _, e := range s.Events {
			texts = append(texts, e.Name)
			for _, a := range e.Attributes {
				texts = append(texts, a.Value.Emit())
			}
		}
	}
	for _, text := range texts {
		for _, v := range forbidden {
			// Short codes ("01", "match") are compared whole; the rest anywhere.
			if text == v || (len(v) >= 5 && strings.Contains(text, v)) {
				t.Errorf("a span or header holds %q in %q", v, text)
			}
		}
	}
	if len(forbidden) < 5 {
		t.Fatalf("only %d values to look for: the record was not read", len(forbidden))
	}
}
