package xds_test

import (
	"path/filepath"
	"strings"
	"testing"

	"github.com/lienthong/lienthong/controlplane/xds"
)

// A sites file is configuration, read as strictly as the gateway's: a key
// given twice (the second would silently win), also in another case, is
// refused naming where.
func TestLoadSitesRefusesRepeatedKeys(t *testing.T) {
	bad := filepath.Join(t.TempDir(), "sites.json")
	for content, where := range map[string]string{
		`{"000.00.00.G01": {"gatewayAddress": "127.0.0.1:9001", "gatewayAddress": "10.0.0.9:9001"}}`: "/000.00.00.G01/gatewayAddress",
		`{"000.00.00.G01": {"certDir": "/a", "CertDir": "/b"}}`:                                      "/000.00.00.G01/CertDir",
		`{"000.00.00.G01": {}, "000.00.00.G01": {"gatewayAddress": "10.0.0.9:9001"}}`:                "/000.00.00.G01",
	} {
		writeFile(t, bad, content)
		if _, err := xds.LoadSites(bad); err == nil || !strings.Contains(err.Error(), where+": key given twice") {
			t.Errorf("%s: %v, want a refusal at %s", content, err, where)
		}
	}
}
