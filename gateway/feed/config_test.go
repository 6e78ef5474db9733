package feed

import (
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

func TestLoadConfigRefusesUnknownKeysByPath(t *testing.T) {
	good := `{"id":"r","provider":"VN:GOV:000.00.00.G05:HTTTHT","kafka":{"brokers":["127.0.0.1:9092"]},
		"datasets":[{"document":"d.yaml"}],"policy":{"bundleFile":"b","verificationKeyFile":"k"},
		"maskingKeyFile":"m","auditFile":"a","subjectKeyFile":"s"}`
	cases := []struct{ name, json, want string }{
		{"good", good, ""},
		{"top level", strings.Replace(good, `"id":"r"`, `"id":"r","maxbatch":3`, 1), "unknown key $.maxbatch"},
		{"nested", strings.Replace(good, `"brokers"`, `"tls":{"cafile":"x"},"brokers"`, 1), "unknown key $.kafka.tls.cafile"},
		{"in a list", strings.Replace(good, `{"document":"d.yaml"}`, `{"document":"d.yaml"},{"doc":"e.yaml"}`, 1), "unknown key $.datasets[1].doc"},
		{"missing", `{"id":"r"}`, "required:"},
		{"no subject key", strings.Replace(good, `,"subjectKeyFile":"s"`, "", 1), "required: subjectKeyFile"},
		{"trailing", good + `{}`, "invalid"},
		{"lanes", strings.Replace(good, `"id":"r"`, `"id":"r","lanes":4`, 1), ""},
		{"too many lanes", strings.Replace(good, `"id":"r"`, `"id":"r","lanes":65`, 1), "lanes: 65 is not between 1 and 64"},
		{"negative lanes", strings.Replace(good, `"id":"r"`, `"id":"r","lanes":-2`, 1), "lanes: -2"},
		{"lane-like id", strings.Replace(good, `"id":"r"`, `"id":"r/lane1"`, 1), `id: "r/lane1" may not contain "/"`},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			path := filepath.Join(t.TempDir(), "router.json")
			if err := os.WriteFile(path, []byte(c.json), 0o600); err != nil {
				t.Fatal(err)
			}
			cfg, err := LoadConfig(path)
			if c.want == "" {
				if err != nil || cfg.Datasets[0].Document != filepath.Join(filepath.Dir(path), "d.yaml") {
					t.Fatalf("%v %+v", err, cfg)
				}
				return
			}
			if err == nil || !strings.Contains(err.Error(), c.want) {
				t.Fatalf("got %v, want %q", err, c.want)
			}
		})
	}
}

// TestRunRefusesWhatItCannotWatchBy: a readiness or staleness setting that
// is no duration, or a gateway configuration that is not the provider's
// member's, stops the router at start, naming the setting.
func TestRunRefusesWhatItCannotWatchBy(t *testing.T) {
	w := newWorld(t, []string{"127.0.0.1:1"})
	for _, tc := range []struct {
		name string
		set  func(*Config)
		want string
	}{
		{"stallAfter", func(c *Config) { c.StallAfter = "soon" }, "stallAfter must be a duration"},
		{"maxStaleness", func(c *Config) { c.Policy.MaxStaleness = "-1m" }, "policy.maxStaleness must be a duration"},
		{"another member's configuration", func(c *Config) {
			c.Policy.ConfigFile = writeGatewayConfig(t, t.TempDir(), w.signing, w.signing, "000.00.00.G01", time.Now(), time.Time{})
		}, "not of 000.00.00.G05"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			cfg, err := LoadConfig(w.config)
			if err != nil {
				t.Fatal(err)
			}
			tc.set(cfg)
			ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
			defer cancel()
			if err := Run(ctx, cfg, benchLog(), RunOptions{}); err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("error %v, want %q", err, tc.want)
			}
		})
	}
}
