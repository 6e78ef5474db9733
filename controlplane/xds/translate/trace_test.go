package translate_test

import (
	"strings"
	"testing"

	listenerv3 "github.com/envoyproxy/go-control-plane/envoy/config/listener/v3"
	routev3 "github.com/envoyproxy/go-control-plane/envoy/config/route/v3"
	matcherv3 "github.com/envoyproxy/go-control-plane/envoy/type/matcher/v3"
	"github.com/envoyproxy/go-control-plane/pkg/resource/v3"

	"github.com/lienthong/lienthong/controlplane/xds/ir"
	"github.com/lienthong/lienthong/controlplane/xds/translate"
)

// traceHeaders are the W3C trace context headers the gateway's Envoy doors
// read in Check and have Envoy forward (docs/envoy-doors.md, "Tracing").
var traceHeaders = []string{"traceparent", "tracestate"}

// TestTraceContextReachesCheckAndUpstream: trace propagation through Envoy
// needs no tracer in the generated configuration, only that Envoy hands
// the request's traceparent to ext_authz and sends it (as Check set it)
// upstream. On every edge of every scenario, no ext_authz filter keeps the
// trace headers from Check (allowed_headers without them, or
// disallowed_headers matching them), and no route table, virtual host or
// route removes them.
func TestTraceContextReachesCheckAndUpstream(t *testing.T) {
	for name, in := range scenarios(t) {
		m := ir.NewModel(in)
		tr := translate.New()
		for _, member := range m.Members() {
			e, err := m.Edge(member)
			if err != nil {
				t.Fatal(err)
			}
			snap, err := tr.Snapshot(e)
			if err != nil {
				t.Fatal(err)
			}
			where := name + "/" + member
			for ln, r := range snap.GetResources(resource.ListenerType) {
				a, _ := extAuthzOf(t, r.(*listenerv3.Listener))
				for _, h := range traceHeaders {
					if l := a.GetAllowedHeaders(); l != nil && !matchesAny(t, l, h) {
						t.Errorf("%s: listener %s: ext_authz's allowed_headers keep %s from Check", where, ln, h)
					}
					if matchesAny(t, a.GetDisallowedHeaders(), h) {
						t.Errorf("%s: listener %s: ext_authz's disallowed_headers keep %s from Check", where, ln, h)
					}
				}
			}
			for rn, r := range snap.GetResources(resource.RouteType) {
				rc := r.(*routev3.RouteConfiguration)
				removed := append([]string(nil), rc.GetRequestHeadersToRemove()...)
				for _, vh := range rc.GetVirtualHosts() {
					removed = append(removed, vh.GetRequestHeadersToRemove()...)
					for _, rt := range vh.GetRoutes() {
						removed = append(removed, rt.GetRequestHeadersToRemove()...)
					}
				}
				for _, h := range removed {
					for _, th := range traceHeaders {
						if strings.EqualFold(h, th) {
							t.Errorf("%s: route table %s removes %s before the upstream", where, rn, h)
						}
					}
				}
			}
		}
	}
}

// matchesAny reports whether a header name matches one of l's patterns.
func matchesAny(t *testing.T, l *matcherv3.ListStringMatcher, name string) bool {
	t.Helper()
	for _, p := range l.GetPatterns() {
		v, pat := name, ""
		var match func(string, string) bool
		switch m := p.GetMatchPattern().(type) {
		case *matcherv3.StringMatcher_Exact:
			pat, match = m.Exact, func(a, b string) bool { return a == b }
		case *matcherv3.StringMatcher_Prefix:
			pat, match = m.Prefix, strings.HasPrefix
		case *matcherv3.StringMatcher_Suffix:
			pat, match = m.Suffix, strings.HasSuffix
		case *matcherv3.StringMatcher_Contains:
			pat, match = m.Contains, strings.Contains
		default:
			t.Fatalf("a header matcher of kind %T: teach this test to read it", m)
		}
		if p.GetIgnoreCase() {
			v, pat = strings.ToLower(v), strings.ToLower(pat)
		}
		if match(v, pat) {
			return true
		}
	}
	return false
}
