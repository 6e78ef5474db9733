package translate_test

import (
	"strings"
	"testing"

	listenerv3 "github.com/envoyproxy/go-control-plane/envoy/config/listener/v3"
	routev3 "github.com/envoyproxy/go-control-plane/envoy/config/route/v3"
	extauthzv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/filters/http/ext_authz/v3"
	extprocv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/filters/http/ext_proc/v3"
	hcmv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/filters/network/http_connection_manager/v3"
	"github.com/envoyproxy/go-control-plane/pkg/resource/v3"

	"github.com/lienthong/lienthong/controlplane/xds/ir"
	"github.com/lienthong/lienthong/controlplane/xds/translate"
)

// TestVerificationsNeverReachABackend: on the inbound side a verification
// is answered by the gateway. Its route sends the body to ext_authz and the
// request headers to ext_proc, and goes nowhere itself (a 502 direct
// response, should a request ever get past ext_proc); query routes do not
// buffer bodies for ext_authz; ext_authz sends bodies up to one byte more
// than the site's limit, packed as bytes, so the gateway sees an over-long
// body and refuses it. Outbound verify routes go to the provider's edge
// with their body sent to Check too (the request hash covers it); outbound
// routes tell Check they are outbound, inbound ones never do; both
// listeners judge answers with ext_proc.
func TestVerificationsNeverReachABackend(t *testing.T) {
	in := baseInput(t)
	site := ir.DefaultSite
	site.MaxRequestBytes = 4096
	in.Sites = map[string]ir.Site{"000.00.00.G01": site}
	m := ir.NewModel(in)
	tr := translate.New()
	checked := 0
	for _, member := range m.Members() {
		e, err := m.Edge(member)
		if err != nil {
			t.Fatal(err)
		}
		snap, err := tr.Snapshot(e)
		if err != nil {
			t.Fatal(err)
		}
		wantBody := uint32(ir.DefaultSite.MaxRequestBytes) + 1
		if member == "000.00.00.G01" {
			wantBody = 4097
		}
		for _, r := range snap.GetResources(resource.ListenerType) {
			l := r.(*listenerv3.Listener)
			authz, hasProc := extAuthzOf(t, l)
			body := authz.GetWithRequestBody()
			if body.GetMaxRequestBytes() != wantBody || !body.GetAllowPartialMessage() || !body.GetPackAsBytes() {
				t.Errorf("%s: %s ext_authz body settings %v, want %d bytes, partial, as bytes", member, l.GetName(), body, wantBody)
			}
			if !hasProc {
				t.Errorf("%s: %s has no ext_proc: answers would pass unjudged", member, l.GetName())
			}
		}
		for _, r := range snap.GetResources(resource.RouteType) {
			rc := r.(*routev3.RouteConfiguration)
			for _, vh := range rc.GetVirtualHosts() {
				for _, rt := range vh.GetRoutes() {
					var cs extauthzv3.ExtAuthzPerRoute
					if err := rt.GetTypedPerFilterConfig()["envoy.filters.http.ext_authz"].UnmarshalTo(&cs); err != nil {
						t.Fatal(err)
					}
					verify := strings.HasPrefix(rt.GetName(), "verify/")
					outbound := rc.GetName() == ir.OutboundRoutes
					inboundVerify := verify && !outbound
					if cs.GetCheckSettings().GetDisableRequestBodyBuffering() == verify {
						t.Errorf("%s: route %s of %s: body buffering disabled=%v", member, rt.GetName(), rc.GetName(), !verify)
					}
					if door := cs.GetCheckSettings().GetContextExtensions()["door"]; (door == "outbound") != outbound {
						t.Errorf("%s: route %s of %s tells ext_authz door=%q", member, rt.GetName(), rc.GetName(), door)
					}
					procAny, hasProc := rt.GetTypedPerFilterConfig()["envoy.filters.http.ext_proc"]
					if !inboundVerify {
						if rt.GetRoute().GetCluster() == "" || hasProc {
							t.Errorf("%s: route %s of %s does not simply route: %v", member, rt.GetName(), rc.GetName(), rt)
						}
						continue
					}
					checked++
					if rt.GetRoute() != nil || rt.GetDirectResponse().GetStatus() != 502 {
						t.Errorf("%s: verify route %s routes somewhere: %v", member, rt.GetName(), rt.GetAction())
					}
					var proc extprocv3.ExtProcPerRoute
					if !hasProc || procAny.UnmarshalTo(&proc) != nil {
						t.Fatalf("%s: verify route %s has no ext_proc override", member, rt.GetName())
					}
					mode := proc.GetOverrides().GetProcessingMode()
					if mode.GetRequestHeaderMode() != extprocv3.ProcessingMode_SEND || mode.GetResponseBodyMode() != extprocv3.ProcessingMode_NONE {
						t.Errorf("%s: verify route %s ext_proc mode %v", member, rt.GetName(), mode)
					}
				}
			}
		}
	}
	if checked == 0 {
		t.Fatal("no inbound verify route was checked")
	}
}

// extAuthzOf is the listener's ext_authz filter configuration, and whether
// an ext_proc filter follows it.
func extAuthzOf(t *testing.T, l *listenerv3.Listener) (*extauthzv3.ExtAuthz, bool) {
	t.Helper()
	var mgr hcmv3.HttpConnectionManager
	if err := l.GetFilterChains()[0].GetFilters()[0].GetTypedConfig().UnmarshalTo(&mgr); err != nil {
		t.Fatal(err)
	}
	var authz *extauthzv3.ExtAuthz
	proc := false
	for _, f := range mgr.GetHttpFilters() {
		switch f.GetName() {
		case "envoy.filters.http.ext_authz":
			authz = &extauthzv3.ExtAuthz{}
			if err := f.GetTypedConfig().UnmarshalTo(authz); err != nil {
				t.Fatal(err)
			}
		case "envoy.filters.http.ext_proc":
			proc = authz != nil
		}
	}
	if authz == nil {
		t.Fatalf("listener %s has no ext_authz", l.GetName())
	}
	return authz, proc
}
