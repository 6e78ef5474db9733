package feed

import (
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/lienthong/lienthong/federation"
	"github.com/lienthong/lienthong/gateway/exchange"
	"github.com/lienthong/lienthong/policies"
)

// DefaultMaxStaleness is how old the provider gateway's configuration may
// be before a router running alone refuses to route: the gateway's own
// default (maxStaleness), so the router stops when its gateway would deny.
const DefaultMaxStaleness = 10 * time.Minute

// gatewayFreshness is how fresh the provider gateway's configuration is,
// read from the files the gateway keeps in its state directory: the signed
// configuration (gateway-config.json), its signature (gateway-config.sig)
// and the newest signed statement that it is still current
// (gateway-config.meta.json). Freshness is the configuration's signed issue
// time, or the statement's time when later and verified for this very
// configuration, as the gateway itself reckons it on restart: a router
// alone is then as fresh as its gateway, never fresher, and nothing but
// the control plane's key can make it fresher. The bundle file alone cannot
// say: the gateway rewrites it only when the revision changes.
type gatewayFreshness struct {
	config, signature, meta string
	key                     policies.VerificationKey
	member                  string

	at    atomic.Int64 // unix nanoseconds
	mu    sync.Mutex   // serialises Reload
	stamp string
}

// gatewayFiles names the signature and freshness statement kept beside the
// gateway's configuration file.
func gatewayFiles(config string) (signature, meta string) {
	base := strings.TrimSuffix(config, ".json")
	return base + ".sig", base + ".meta.json"
}

// openGatewayFreshness reads the freshness of the configuration at path,
// signed with key, which must be the share of member.
func openGatewayFreshness(path string, key policies.VerificationKey, member string) (*gatewayFreshness, error) {
	f := &gatewayFreshness{config: path, key: key, member: member}
	f.signature, f.meta = gatewayFiles(path)
	if _, err := f.Reload(); err != nil {
		return nil, err
	}
	return f, nil
}

// At is the freshness in force.
func (f *gatewayFreshness) At() time.Time { return time.Unix(0, f.at.Load()) }

// Reload reads the files again if any changed, and reports whether the
// freshness did. Files that do not verify leave the freshness in force
// (it only ages).
func (f *gatewayFreshness) Reload() (bool, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	stamp := ""
	for _, p := range []string{f.config, f.signature, f.meta} {
		if fi, err := os.Stat(p); err == nil {
			stamp += fmt.Sprintf("%d/%d;", fi.ModTime().UnixNano(), fi.Size())
		} else {
			stamp += "-;"
		}
	}
	if stamp == f.stamp {
		return false, nil
	}
	at, err := readGatewayFreshness(f.config, f.signature, f.meta, f.key, f.member)
	if err != nil {
		return false, err
	}
	f.stamp = stamp
	return f.at.Swap(at.UnixNano()) != at.UnixNano(), nil
}

// readGatewayFreshness verifies the configuration and its statement.
func readGatewayFreshness(config, signature, meta string, key policies.VerificationKey, member string) (time.Time, error) {
	body, err := os.ReadFile(config)
	if err != nil {
		return time.Time{}, fmt.Errorf("feed: gateway configuration: %w", err)
	}
	sig, err := os.ReadFile(signature)
	if err != nil {
		return time.Time{}, fmt.Errorf("feed: gateway configuration signature: %w", err)
	}
	cfg, err := federation.VerifyConfig(key.KeyID, key.Key, body, string(sig))
	if err != nil {
		return time.Time{}, fmt.Errorf("feed: gateway configuration %s: %w", config, err)
	}
	if cfg.Member != member {
		return time.Time{}, fmt.Errorf("feed: gateway configuration %s is the share of member %q, not of %s, whose router this is", config, cfg.Member, member)
	}
	at := cfg.IssuedAt
	raw, err := os.ReadFile(meta)
	if errors.Is(err, os.ErrNotExist) {
		return at, nil // no statement since the last download
	} else if err != nil {
		return time.Time{}, fmt.Errorf("feed: gateway configuration statement: %w", err)
	}
	var st struct {
		Body           string    `json:"body"`
		FreshAt        time.Time `json:"freshAt"`
		FreshSignature string    `json:"freshSignature"`
	}
	sum := sha256.Sum256(body)
	// A statement counts only if it is about this body and verifies for
	// the ETag the body itself names; any other is ignored, as the gateway
	// ignores it.
	if json.Unmarshal(raw, &st) == nil && st.Body == hex.EncodeToString(sum[:]) && st.FreshAt.After(at) && cfg.ETag() != "" &&
		federation.Verify(key.KeyID, key.Key, federation.FreshnessMessage(cfg.ETag(), st.FreshAt), st.FreshSignature) == nil {
		at = st.FreshAt
	}
	return at, nil
}

// gatewaySource is a router's configuration when it runs alone and
// follows its gateway's: the policy of the bundle file, as fresh as the
// gateway's configuration.
type gatewaySource struct {
	bundle *BundleSource
	fresh  *gatewayFreshness
}

// Current is the bundle's snapshot at the gateway configuration's
// freshness.
func (s gatewaySource) Current() (*exchange.Snapshot, time.Time) {
	snap, _ := s.bundle.Current()
	return snap, s.fresh.At()
}
