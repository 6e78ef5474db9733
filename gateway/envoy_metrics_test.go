package gateway_test

import (
	"fmt"
	"maps"
	"strings"
	"testing"

	"github.com/lienthong/lienthong/gateway/metrics"
)

// TestEnvoyDoorsCountAsTheNativeDoor runs the same mix of exchanges through
// the provider gateway's native inbound door and then through its Envoy
// doors (ext_authz and ext_proc over real gRPC): every series of the
// exchange counter, by consumer, dataset, outcome and reason, doubles: the
// doors count alike because the core does the counting.
func TestEnvoyDoorsCountAsTheNativeDoor(t *testing.T) {
	ef := newEnvoyFederation(t, false, 0)
	mix := []struct{ consumer, path string }{
		{insurance, recordPath + citizenID},
		{insurance, recordPath + citizenID + "?fields=fullName"},
		{insurance, recordPath + citizenID + "?fields=religion"},
		{rowScoped, recordPath + citizenID},
		{insurance, recordPath + "001090000003"},
		{insurance, recordPath + badContentTypeID},
		{insurance, recordPath + "009999999999"},
		{"VN:GOV:000.00.00.G14:NOSUCH", recordPath + citizenID},
	}
	counts := func() map[string]float64 {
		mfs, err := ef.provider.Metrics().Registry().Gather()
		if err != nil {
			t.Fatal(err)
		}
		out := map[string]float64{}
		for _, mf := range mfs {
			if mf.GetName() != metrics.ExchangesTotal {
				continue
			}
			for _, m := range mf.GetMetric() {
				var key []string
				for _, l := range m.GetLabel() {
					key = append(key, l.GetName()+"="+l.GetValue())
				}
				out[strings.Join(key, ",")] = m.GetCounter().GetValue()
			}
		}
		return out
	}
	for i, x := range mix {
		ef.native(x.path, exchangeHeaders(x.consumer, fmt.Sprintf("native-%d", i)))
	}
	native := counts()
	for i, x := range mix {
		ef.call(x.path, exchangeHeaders(x.consumer, fmt.Sprintf("envoy-%d", i)), oneChunk)
	}
	both := counts()
	total := 0.0
	for _, v := range native {
		total += v
	}
	if total != float64(len(mix)) {
		t.Fatalf("the native door counted %v exchanges, want %d: %v", total, len(mix), native)
	}
	want := maps.Clone(native)
	for k := range want {
		want[k] *= 2
	}
	if !maps.Equal(both, want) {
		t.Errorf("after the Envoy doors:\n got %v\nwant %v", both, want)
	}
}
