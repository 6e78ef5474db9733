package gateway_test

import (
	"net/http"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/lienthong/lienthong/gateway"
)

// TestCertificateRotationLosesNoRequest runs a bounded, continuous stream of
// requests through both gateways while their certificates (6 s lifetimes,
// renewed at two-thirds) are swapped several times. Not one request may fail.
func TestCertificateRotationLosesNoRequest(t *testing.T) {
	if testing.Short() {
		t.Skip("runs for about 14 s")
	}
	f := newFederationTTL(t, 6*time.Second, func(c *gateway.Config) { c.RateLimit.PerSecond = 10000 })
	before := map[string]string{"provider": f.provider.CertificateSerial(), "consumer": f.consumer.CertificateSerial()}
	deadline := time.Now().Add(13 * time.Second)
	var served, failed atomic.Int64
	var wg sync.WaitGroup
	for w := range 4 {
		wg.Go(func() {
			for i := 0; time.Now().Before(deadline) && i < 2000; i++ {
				// The calling system enrols afresh every 2 s, as its own
				// rotation would; the gateways rotate on their own.
				c := f.systemClientFresh(w)
				a, err := f.call(c, http.MethodGet, recordPath+citizenID, purposeHeader(), "")
				if err != nil || a.status != http.StatusOK {
					failed.Add(1)
					t.Logf("request failed: %v %d %s", err, a.status, a.raw)
					continue
				}
				served.Add(1)
				time.Sleep(20 * time.Millisecond)
			}
		})
	}
	wg.Wait()
	if failed.Load() != 0 || served.Load() < 100 {
		t.Fatalf("served %d, failed %d during certificate rotation", served.Load(), failed.Load())
	}
	for name, gw := range map[string]*gateway.Gateway{"provider": f.provider, "consumer": f.consumer} {
		if gw.CertificateSerial() == before[name] {
			t.Errorf("the %s gateway's certificate was never renewed", name)
		}
	}
	t.Logf("served %d requests across gateway certificate rotations, none failed", served.Load())
}
