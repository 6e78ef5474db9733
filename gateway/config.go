// Package gateway is the data plane: each agency runs one gateway that is
// both its outbound door (its own systems call it over mTLS) and its inbound
// door (peer gateways call it over mTLS). The provider side decides with the
// policy engine, fetches through an adapter, projects and masks in Go, and
// answers with a hash binding the answer to the request; the consumer side
// checks that hash. Both write an audit record before the answer leaves.
package gateway

import (
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"time"

	"github.com/lienthong/lienthong/catalog"
	"github.com/lienthong/lienthong/internal/jsonstrict"
)

// Config is a gateway's configuration file (JSON).
type Config struct {
	// Member is the agency this gateway serves.
	Member string `json:"member"`
	// System is the gateway's own system id; its certificate is what peers see.
	System string `json:"system"`
	// Instance is the first part of system ids (default VN).
	Instance string `json:"instance,omitempty"`

	// Identity holds the gateway's key and certificate chain (as written by
	// `lienthong system enroll`); they are renewed at two-thirds of their life.
	Identity struct {
		KeyFile  string `json:"keyFile"`
		CertFile string `json:"certFile"`
	} `json:"identity"`

	// ControlPlane is where configuration, policy and certificates come
	// from. The gateway authenticates with its certificate (Identity) and
	// holds no API token.
	ControlPlane struct {
		URL    string `json:"url"`
		CAFile string `json:"caFile"`
	} `json:"controlPlane"`

	// Outbound is where the member's own systems call; Inbound where peers call.
	Outbound Listener `json:"outbound"`
	Inbound  Listener `json:"inbound"`
	// Health, when set, serves GET /readyz over plain HTTP for probes and
	// supervisors; keep it on loopback or a management network.
	Health Listener `json:"health,omitzero"`
	// Metrics, when set, serves GET /metrics (Prometheus), /healthz and
	// /readyz over plain HTTP (docs/operations.md); an address without a
	// host listens on loopback only.
	Metrics Listener `json:"metrics,omitzero"`
	// Envoy, when its listen address is set, serves Envoy's ext_authz and
	// ext_proc over gRPC (docs/envoy-doors.md): mutual TLS with the
	// gateway's certificate, and only the local Envoy, presenting that same
	// certificate, is accepted. Loopback is the usual address.
	Envoy EnvoyDoors `json:"envoy"`

	// VerificationKeyFile, when set, pins the key configuration and bundles
	// must be signed with ({"keyId", "publicKeyPem"}, as GET
	// /v1/policy/verification-key answers); otherwise the first key fetched
	// is pinned in StateDir.
	VerificationKeyFile string `json:"verificationKeyFile,omitempty"`

	// StateDir keeps the last good configuration, so a restart during a
	// control-plane outage still serves until the staleness limit.
	StateDir string `json:"stateDir"`
	// PollInterval between configuration pulls (default 30s); MaxStaleness
	// after which the gateway refuses exchanges (default 10m).
	PollInterval Duration `json:"pollInterval,omitempty"`
	MaxStaleness Duration `json:"maxStaleness,omitempty"`

	// MaskingKeyFile holds the provider's HMAC key for hash masks (made, 32
	// random bytes, mode 0600, on first start). It is never used for audit
	// subjects: consumers receive hashed values.
	MaskingKeyFile string `json:"maskingKeyFile"`
	// AuditSubjectKeyFile holds the federation-wide key that names data
	// subjects in audit records (audit.SubjectKey; `lienthong up` makes it
	// as audit-subject.key in the control plane's data directory).
	AuditSubjectKeyFile string `json:"auditSubjectKeyFile"`
	// AuditFile is the audit log's active segment (docs/audit.md); sealed
	// segments sit next to it.
	AuditFile string `json:"auditFile"`
	// AuditLog tunes the log; zero values take the audit package's
	// defaults (a checkpoint every 10,000 entries or 10 s, segments of
	// 64 MiB or 24 h, the key in <stateDir>/audit-checkpoint.key).
	AuditLog struct {
		CheckpointKeyFile  string   `json:"checkpointKeyFile,omitempty"`
		CheckpointEvery    int      `json:"checkpointEvery,omitempty"`
		CheckpointInterval Duration `json:"checkpointInterval,omitempty"`
		SegmentBytes       int64    `json:"segmentBytes,omitempty"`
		SegmentAge         Duration `json:"segmentAge,omitempty"`
	} `json:"auditLog"`

	// Feeds, when set, lets the member's systems publish change events
	// (POST /feeds/{dataset}/events on the outbound listener).
	Feeds *FeedsConfig `json:"feeds,omitempty"`

	// Backends serve the member's datasets, by "<provider system id>/<code>".
	Backends map[string]Backend `json:"backends,omitempty"`

	// MaxRequestBytes and MaxResponseBytes bound bodies (defaults 1 MiB, 16 MiB).
	MaxRequestBytes  int64 `json:"maxRequestBytes,omitempty"`
	MaxResponseBytes int64 `json:"maxResponseBytes,omitempty"`
	// Timeout bounds one exchange end to end (default 15s).
	Timeout Duration `json:"timeout,omitempty"`
	// RateLimit bounds each consumer system's requests to this provider
	// (default 100 per second, bursts of 200); past it the answer is 429.
	RateLimit struct {
		PerSecond float64 `json:"perSecond,omitempty"`
		Burst     int     `json:"burst,omitempty"`
	} `json:"rateLimit"`
}

// Listener is one listening address.
type Listener struct {
	Listen string `json:"listen"`
}

// EnvoyDoors is the gRPC listener of Envoy's ext_authz and ext_proc.
type EnvoyDoors struct {
	Listen string `json:"listen"`
	// Streamed says Envoy's ext_proc sends response bodies STREAMED (in
	// chunks) rather than BUFFERED (one message), which is what the control
	// plane's xDS configuration sets.
	Streamed bool `json:"streamed,omitempty"`
}

// Backend connects one dataset to its backend: exactly one of REST or Postgres.
type Backend struct {
	// RecordPath is the backend path of one record for verify mode, with
	// {id} for the record id, e.g. "citizens/{id}" (default "{id}").
	RecordPath string `json:"recordPath,omitempty"`
	// SubjectField is the dotted path of the personal id in a record, e.g.
	// "personalId": each record answered is then audited under its subject.
	SubjectField string `json:"subjectField,omitempty"`
	REST         *struct {
		BaseURL string   `json:"baseUrl"`
		Timeout Duration `json:"timeout,omitempty"`
		// CAFile, when set, is the only CA trusted for an https backend.
		CAFile string `json:"caFile,omitempty"`
	} `json:"rest,omitempty"`
	Postgres *struct {
		DSN string `json:"dsn"`
		// Table, Key, ListPath and Columns (field path -> column) as in
		// adapters/postgres.Mapping.
		Table    string            `json:"table"`
		Key      string            `json:"key"`
		ListPath string            `json:"listPath"`
		Columns  map[string]string `json:"columns"`
	} `json:"postgres,omitempty"`
}

// Duration is a time.Duration written as "30s" in JSON.
type Duration struct{ time.Duration }

// UnmarshalJSON reads "30s".
func (d *Duration) UnmarshalJSON(b []byte) error {
	var s string
	if err := json.Unmarshal(b, &s); err != nil {
		return fmt.Errorf("duration must be a string such as \"30s\": %w", err)
	}
	v, err := time.ParseDuration(s)
	if err != nil {
		return err
	}
	d.Duration = v
	return nil
}

// MarshalJSON writes "30s".
func (d Duration) MarshalJSON() ([]byte, error) { return json.Marshal(d.String()) }

// LoadConfig reads and checks a configuration file. It is decoded strictly:
// an unknown key (a typo such as "maxStalness"), a key given twice or a
// value of the wrong type is refused, naming its JSON path.
func LoadConfig(path string) (*Config, error) {
	raw, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("gateway config: %w", err)
	}
	// Checked before strict decoding names it an unknown key. Gateways once held a member-admin token; a file that still names one
	// is refused, so the operator deletes the token instead of keeping it
	// on the host unused.
	var legacy struct {
		ControlPlane struct {
			TokenFile *string `json:"tokenFile"`
		} `json:"controlPlane"`
	}
	if json.Unmarshal(raw, &legacy) == nil && legacy.ControlPlane.TokenFile != nil {
		return nil, fmt.Errorf("gateway config %s: controlPlane.tokenFile: a gateway holds no API token, it is known by its certificate; remove the key, and revoke and delete the token it names", path)
	}
	var c Config
	if err := jsonstrict.Decode(raw, &c); err != nil {
		return nil, fmt.Errorf("gateway config %s: %w", path, err)
	}
	if err := c.check(); err != nil {
		return nil, fmt.Errorf("gateway config %s: %w", path, err)
	}
	c.resolvePaths(filepath.Dir(path))
	return c.withDefaults(), nil
}

// Defaults, applied once, by withDefaults.
const (
	defaultPollInterval     = 30 * time.Second
	defaultMaxStaleness     = 10 * time.Minute
	defaultTimeout          = 15 * time.Second
	defaultMaxRequestBytes  = 1 << 20
	defaultMaxResponseBytes = 16 << 20
	defaultRatePerSecond    = 100
)

// withDefaults returns a copy of c with every unset optional value set to
// its default: the one place defaults live, so no reader of the
// configuration supplies its own.
func (c *Config) withDefaults() *Config {
	d := *c
	if d.Instance == "" {
		d.Instance = catalog.DefaultInstance
	}
	for _, v := range []struct {
		dur *Duration
		def time.Duration
	}{{&d.PollInterval, defaultPollInterval}, {&d.MaxStaleness, defaultMaxStaleness}, {&d.Timeout, defaultTimeout}} {
		if v.dur.Duration <= 0 {
			v.dur.Duration = v.def
		}
	}
	if d.MaxRequestBytes <= 0 {
		d.MaxRequestBytes = defaultMaxRequestBytes
	}
	if d.MaxResponseBytes <= 0 {
		d.MaxResponseBytes = defaultMaxResponseBytes
	}
	if d.RateLimit.PerSecond <= 0 {
		d.RateLimit.PerSecond = defaultRatePerSecond
	}
	if d.RateLimit.Burst <= 0 {
		d.RateLimit.Burst = max(1, int(2*d.RateLimit.PerSecond))
	}
	return &d
}

// resolvePaths makes relative file paths relative to the configuration
// file's directory rather than to wherever the process started: a data
// directory copied or restored elsewhere then uses its own files, never
// the original's.
func (c *Config) resolvePaths(base string) {
	for _, p := range []*string{
		&c.Identity.KeyFile, &c.Identity.CertFile,
		&c.ControlPlane.CAFile, &c.AuditSubjectKeyFile, &c.AuditLog.CheckpointKeyFile,
		&c.VerificationKeyFile, &c.StateDir, &c.MaskingKeyFile, &c.AuditFile,
	} {
		if *p != "" && !filepath.IsAbs(*p) {
			*p = filepath.Join(base, *p)
		}
	}
	for ref, b := range c.Backends {
		if b.REST != nil && b.REST.CAFile != "" && !filepath.IsAbs(b.REST.CAFile) {
			b.REST.CAFile = filepath.Join(base, b.REST.CAFile)
			c.Backends[ref] = b
		}
	}
}

func (c *Config) check() error {
	var errs []error
	if !catalog.ValidMemberCode(c.Member) {
		errs = append(errs, fmt.Errorf("member %q is not an agency code", c.Member))
	}
	if id, err := catalog.ParseSystemID(c.System); err != nil {
		errs = append(errs, err)
	} else if id.Member != c.Member {
		errs = append(errs, fmt.Errorf("gateway system %s is not a system of member %s", c.System, c.Member))
	}
	for name, v := range map[string]string{
		"identity.keyFile": c.Identity.KeyFile, "identity.certFile": c.Identity.CertFile,
		"controlPlane.url": c.ControlPlane.URL,
		"stateDir":         c.StateDir, "maskingKeyFile": c.MaskingKeyFile, "auditFile": c.AuditFile,
		"auditSubjectKeyFile": c.AuditSubjectKeyFile,
	} {
		if v == "" {
			errs = append(errs, fmt.Errorf("%s is required", name))
		}
	}
	if c.Outbound.Listen == "" && c.Inbound.Listen == "" && c.Envoy.Listen == "" {
		errs = append(errs, errors.New("at least one of outbound.listen, inbound.listen and envoy.listen is required"))
	}
	for ref, b := range c.Backends {
		if (b.REST == nil) == (b.Postgres == nil) {
			errs = append(errs, fmt.Errorf("backend %s needs exactly one of rest and postgres", ref))
		}
	}
	return errors.Join(errs...)
}
