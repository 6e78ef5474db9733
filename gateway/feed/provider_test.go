package feed

import (
	"strings"
	"testing"
)

// A provider router routes only its provider's datasets: one of another
// system's would deliver that system's events under this one's grants.
func TestProviderRouterRefusesAnotherProvidersDataset(t *testing.T) {
	ds := testDataset(t)
	other := "VN:GOV:000.00.00.G01:CSDLDC"
	if ds.Provider == other {
		t.Fatalf("the test dataset is already %s's", other)
	}
	_, err := NewProviderRouter(ProviderRouterConfig{ID: "router-test", Provider: other, Datasets: []*Dataset{ds}})
	if err == nil || !strings.Contains(err.Error(), "is not one of "+other) {
		t.Fatalf("a router of %s over %s's dataset: %v, want a refusal", other, ds.Provider, err)
	}
}
