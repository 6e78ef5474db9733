package feed

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"time"

	"github.com/lienthong/lienthong/adapters/postgres"
	"github.com/lienthong/lienthong/audit"
	"github.com/lienthong/lienthong/gateway/exchange"
	"github.com/lienthong/lienthong/gateway/feed/broker"
	"github.com/lienthong/lienthong/gateway/feed/event"
	"github.com/lienthong/lienthong/gateway/projection"
	"github.com/lienthong/lienthong/policies"
)

// Config is the configuration file of `lienthong feed-router` (JSON).
type Config struct {
	// ID names the router (transactional id and group member); keep it
	// across restarts. One router per provider system.
	ID string `json:"id"`
	// Provider is the provider system whose datasets are routed.
	Provider string        `json:"provider"`
	Kafka    broker.Config `json:"kafka"`
	// Datasets are the dataset documents (OpenAPI, with x-events) to route.
	Datasets []DatasetConfig `json:"datasets"`
	Policy   PolicyConfig    `json:"policy"`
	// MaskingKeyFile is the provider's HMAC key (the gateway's, so hashes
	// match those of queries).
	MaskingKeyFile string `json:"maskingKeyFile"`
	// SubjectKeyFile is the federation's audit subject key (the gateway's
	// auditSubjectKeyFile, `lienthong up` keeps it at
	// <data-dir>/audit-subject.key), so a delivery's audit record names its
	// data subject as query records do and the audit index finds both.
	SubjectKeyFile string `json:"subjectKeyFile"`
	// AuditFile receives one record per delivery.
	AuditFile string `json:"auditFile"`
	// MaxBatch bounds the events of one transaction (default 1000).
	MaxBatch int `json:"maxBatch,omitempty"`
	// Lanes is how many transactional sessions route side by side
	// (RouterConfig.Lanes; default 1, at most MaxLanes). Changing it
	// re-shares the provider partitions among the lanes at the next start;
	// delivery stays exactly once.
	Lanes int `json:"lanes,omitempty"`
	// StallAfter is how long events may wait on the broker while the
	// router commits nothing before /readyz reports it stuck (default
	// "1m", DefaultStallAfter).
	StallAfter string `json:"stallAfter,omitempty"`
	// Outbox, when set, relays the provider's PostgreSQL outbox
	// (adapters/postgres.OutboxSchema) to its provider topics.
	Outbox *OutboxConfig `json:"outbox,omitempty"`
}

// OutboxConfig names the provider database holding the outbox.
type OutboxConfig struct {
	// DSNFile holds the PostgreSQL connection string (a file, so the
	// password is not in the configuration).
	DSNFile string `json:"dsnFile"`
	// Relay names this relay's committed position (default: the router id).
	Relay string `json:"relay,omitempty"`
}

// DatasetConfig names one dataset document.
type DatasetConfig struct {
	Document string `json:"document"`
}

// PolicyConfig says where the signed policy bundle is: the gateway keeps
// the one in force at <stateDir>/policy-bundle.tar.gz.
type PolicyConfig struct {
	BundleFile string `json:"bundleFile"`
	// VerificationKeyFile is {"keyId", "publicKeyPem"} (the gateway pins
	// it at <stateDir>/verification-key.json).
	VerificationKeyFile string `json:"verificationKeyFile"`
	// ReloadInterval between checks of the bundle file (default "1s").
	ReloadInterval string `json:"reloadInterval,omitempty"`
	// ConfigFile is the gateway's signed configuration
	// (<stateDir>/gateway-config.json; its signature and freshness
	// statement are read beside it). The router is as fresh as it and
	// refuses to route once it is older than MaxStaleness. Default:
	// gateway-config.json beside bundleFile, if there is one; without it
	// the router cannot tell staleness and trusts the bundle file.
	ConfigFile string `json:"configFile,omitempty"`
	// MaxStaleness past which the router refuses to route (default "10m",
	// the gateway's default; keep the gateway's value).
	MaxStaleness string `json:"maxStaleness,omitempty"`
}

// LoadConfig reads a configuration file strictly: an unknown key is refused
// with its JSON path, so a misspelt option is never silently ignored.
func LoadConfig(path string) (*Config, error) {
	raw, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("feed router config: %w", err)
	}
	var cfg Config
	if err := DecodeStrict(raw, &cfg); err != nil {
		return nil, fmt.Errorf("feed router config %s: %w", path, err)
	}
	base := filepath.Dir(path)
	rel := func(p *string) {
		if *p != "" && !filepath.IsAbs(*p) {
			*p = filepath.Join(base, *p)
		}
	}
	for i := range cfg.Datasets {
		rel(&cfg.Datasets[i].Document)
	}
	rel(&cfg.Policy.BundleFile)
	rel(&cfg.Policy.VerificationKeyFile)
	rel(&cfg.Policy.ConfigFile)
	rel(&cfg.MaskingKeyFile)
	rel(&cfg.AuditFile)
	rel(&cfg.SubjectKeyFile)
	if cfg.Outbox != nil {
		rel(&cfg.Outbox.DSNFile)
	}
	var missing []string
	for name, v := range map[string]string{"id": cfg.ID, "provider": cfg.Provider, "policy.bundleFile": cfg.Policy.BundleFile,
		"policy.verificationKeyFile": cfg.Policy.VerificationKeyFile, "maskingKeyFile": cfg.MaskingKeyFile, "auditFile": cfg.AuditFile, "subjectKeyFile": cfg.SubjectKeyFile} {
		if v == "" {
			missing = append(missing, name)
		}
	}
	if len(cfg.Kafka.Brokers) == 0 {
		missing = append(missing, "kafka.brokers")
	}
	if len(cfg.Datasets) == 0 {
		missing = append(missing, "datasets")
	}
	if len(missing) > 0 {
		return nil, fmt.Errorf("feed router config %s: required: %s", path, strings.Join(missing, ", "))
	}
	if strings.Contains(cfg.ID, LaneSeparator) {
		return nil, fmt.Errorf("feed router config %s: id: %q may not contain %q, which only the ids of the router's lanes carry", path, cfg.ID, LaneSeparator)
	}
	if cfg.Lanes < 0 || cfg.Lanes > MaxLanes {
		return nil, fmt.Errorf("feed router config %s: lanes: %d is not between 1 and %d", path, cfg.Lanes, MaxLanes)
	}
	return &cfg, nil
}

// DecodeStrict decodes JSON into v, refusing keys v does not declare
// (named by their JSON path, e.g. $.kafka.tls.cafile) and trailing data.
func DecodeStrict(raw []byte, v any) error {
	var tree any
	if err := json.Unmarshal(raw, &tree); err != nil {
		return err
	}
	if err := unknownKeys(tree, reflect.TypeOf(v), "$"); err != nil {
		return err
	}
	dec := json.NewDecoder(bytes.NewReader(raw))
	dec.DisallowUnknownFields()
	return dec.Decode(v)
}

var unmarshaler = reflect.TypeFor[json.Unmarshaler]()

// unknownKeys walks a decoded JSON tree along a Go type.
func unknownKeys(tree any, t reflect.Type, at string) error {
	for t.Kind() == reflect.Pointer {
		if t.Implements(unmarshaler) {
			return nil
		}
		t = t.Elem()
	}
	if reflect.PointerTo(t).Implements(unmarshaler) {
		return nil
	}
	switch t.Kind() {
	case reflect.Struct:
		obj, ok := tree.(map[string]any)
		if !ok {
			return nil // a type error, which the decoder reports
		}
		fields := map[string]reflect.StructField{}
		for i := 0; i < t.NumField(); i++ {
			f := t.Field(i)
			name, _, _ := strings.Cut(f.Tag.Get("json"), ",")
			if name == "-" || !f.IsExported() {
				continue
			}
			if name == "" {
				name = f.Name
			}
			fields[name] = f
		}
		for k, v := range obj {
			f, ok := fields[k]
			if !ok {
				return fmt.Errorf("unknown key %s.%s", at, k)
			}
			if err := unknownKeys(v, f.Type, at+"."+k); err != nil {
				return err
			}
		}
	case reflect.Slice, reflect.Array:
		arr, ok := tree.([]any)
		if !ok {
			return nil
		}
		for i, v := range arr {
			if err := unknownKeys(v, t.Elem(), fmt.Sprintf("%s[%d]", at, i)); err != nil {
				return err
			}
		}
	case reflect.Map:
		obj, ok := tree.(map[string]any)
		if !ok {
			return nil
		}
		for k, v := range obj {
			if err := unknownKeys(v, t.Elem(), at+"."+k); err != nil {
				return err
			}
		}
	}
	return nil
}

// RunOptions are what the process running a router alone watches it by:
// `lienthong feed-router` gives both to its --metrics-listen. The zero
// value reports nothing.
type RunOptions struct {
	// Lag, when set, is given each subscriber's lag every second.
	Lag LagGauge
	// Ready, when set, reports the router's readiness checks while it runs
	// (ready.go), and why it is not ready before and after.
	Ready *Ready
}

// Run starts a standalone router from its configuration and routes until
// ctx ends, reporting its lag and readiness to opts. However it returns,
// the work it started in the background (policy reloads, the outbox relay)
// ends with it, and its audit log is closed.
func Run(ctx context.Context, cfg *Config, log *slog.Logger, opts RunOptions) error {
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	err := runWith(ctx, cfg, log, opts)
	why := errors.New("stopped")
	if err != nil {
		why = fmt.Errorf("stopped: %w", err)
	}
	opts.Ready.set(nil, why)
	return err
}

func runWith(ctx context.Context, cfg *Config, log *slog.Logger, opts RunOptions) error {
	stallAfter, maxStaleness := time.Duration(0), DefaultMaxStaleness
	for _, d := range []struct {
		name, value string
		to          *time.Duration
	}{{"stallAfter", cfg.StallAfter, &stallAfter}, {"policy.maxStaleness", cfg.Policy.MaxStaleness, &maxStaleness}} {
		if d.value == "" {
			continue
		}
		v, err := time.ParseDuration(d.value)
		if err != nil || v <= 0 {
			return fmt.Errorf("feed router config: %s must be a duration such as \"1m\"", d.name)
		}
		*d.to = v
	}
	keyRaw, err := os.ReadFile(cfg.Policy.VerificationKeyFile)
	if err != nil {
		return fmt.Errorf("feed router: verification key: %w", err)
	}
	var stored struct{ KeyID, PublicKeyPem string }
	if err := json.Unmarshal(keyRaw, &stored); err != nil {
		return fmt.Errorf("feed router: verification key %s: %w", cfg.Policy.VerificationKeyFile, err)
	}
	key, err := policies.VerificationKeyFromPEM(stored.KeyID, []byte(stored.PublicKeyPem))
	if err != nil {
		return fmt.Errorf("feed router: verification key: %w", err)
	}
	mkey, err := os.ReadFile(cfg.MaskingKeyFile)
	if err != nil {
		return fmt.Errorf("feed router: masking key: %w", err)
	}
	masker, err := projection.NewMasker(mkey, projection.DefaultPartialKeep)
	if err != nil {
		return fmt.Errorf("feed router: masking key: %w", err)
	}
	subjects, err := audit.LoadSubjectKey(cfg.SubjectKeyFile)
	if err != nil {
		return fmt.Errorf("feed router: %w", err)
	}
	// The router's deliveries go to a hash-chained log of its own, with its
	// own checkpoint key beside it (made on first start).
	ckey, err := audit.LoadKey(cfg.AuditFile + ".checkpoint.key")
	if err != nil {
		return fmt.Errorf("feed router: %w", err)
	}
	sink, err := audit.OpenFile(cfg.AuditFile, audit.Options{Gateway: cfg.ID, Key: ckey})
	if err != nil {
		return err
	}
	defer sink.Close()
	var datasets []*Dataset
	for _, d := range cfg.Datasets {
		doc, err := os.ReadFile(d.Document)
		if err != nil {
			return fmt.Errorf("feed router: %w", err)
		}
		ds, err := NewDataset(ctx, cfg.Provider, doc)
		if err != nil {
			return err
		}
		datasets = append(datasets, ds)
	}
	bundle, err := OpenBundleSource(ctx, cfg.Policy.BundleFile, key, datasets)
	if err != nil {
		return err
	}
	var src exchange.Source = bundle
	fresh, err := followGateway(cfg, key, log)
	if err != nil {
		return err
	}
	if fresh != nil {
		src = gatewaySource{bundle: bundle, fresh: fresh}
	}
	core, err := newCore(cfg.Provider, src, masker, subjects, sink, log, maxStaleness)
	if err != nil {
		return err
	}
	router, err := NewProviderRouter(ProviderRouterConfig{ID: cfg.ID, Provider: cfg.Provider, Core: core, Kafka: cfg.Kafka,
		Datasets: datasets, Log: log, MaxBatch: cfg.MaxBatch, Lanes: cfg.Lanes, Lag: opts.Lag, StallAfter: stallAfter})
	if err != nil {
		return err
	}
	interval := time.Second
	if cfg.Policy.ReloadInterval != "" {
		if interval, err = time.ParseDuration(cfg.Policy.ReloadInterval); err != nil || interval <= 0 {
			return errors.New("feed router config: policy.reloadInterval must be a duration such as \"1s\"")
		}
	}
	go every(ctx, interval, func() {
		if changed, err := bundle.Reload(ctx); err != nil {
			log.Warn("policy bundle not loaded; keeping the one in force", "error", err.Error())
		} else if changed {
			log.Info("policy revision in force", "revision", bundle.Revision())
		}
		if fresh != nil {
			if _, err := fresh.Reload(); err != nil {
				log.Warn("gateway configuration not read; keeping the freshness in force", "error", err.Error())
			}
		}
	})
	if cfg.Outbox != nil {
		stopRelay, err := startOutbox(ctx, cfg, datasets, log)
		if err != nil {
			return err
		}
		defer stopRelay()
	}
	opts.Ready.set(standaloneChecks(router, core, cfg.AuditFile), nil)
	log.Info("feed router started", "id", cfg.ID, "provider", cfg.Provider, "datasets", len(datasets))
	return router.Run(ctx)
}

// NewCore is the exchange core of a router running alone for a provider
// system: the snapshot from src, the provider's masking key, the
// federation's subject key and the router's audit sink. The limits the core
// asks for bound what a feed door uses of it: one event's size, a policy
// evaluation's time.
func NewCore(provider string, src exchange.Source, masker *projection.Masker, subjects audit.SubjectKey, sink audit.Sink, log *slog.Logger) (*exchange.Core, error) {
	return newCore(provider, src, masker, subjects, sink, log, DefaultMaxStaleness)
}

// newCore is NewCore refusing a configuration older than maxStaleness.
func newCore(provider string, src exchange.Source, masker *projection.Masker, subjects audit.SubjectKey, sink audit.Sink, log *slog.Logger, maxStaleness time.Duration) (*exchange.Core, error) {
	return exchange.New(exchange.Config{
		Member: exchange.MemberOf(provider), Source: src, Sink: sink, Masker: masker, Subjects: subjects, Log: log,
		MaxStaleness: maxStaleness, Timeout: 30 * time.Second, MaxResponseBytes: event.MaxSize,
		RatePerSecond: 1, RateBurst: 1,
	})
}

// followGateway opens the freshness of the gateway's configuration named
// by policy.configFile, or found beside the bundle file; nil (and a
// warning) when there is none to follow.
func followGateway(cfg *Config, key policies.VerificationKey, log *slog.Logger) (*gatewayFreshness, error) {
	path := cfg.Policy.ConfigFile
	if path == "" {
		path = filepath.Join(filepath.Dir(cfg.Policy.BundleFile), "gateway-config.json")
		if _, err := os.Stat(path); errors.Is(err, os.ErrNotExist) {
			log.Warn("no gateway configuration beside the policy bundle (policy.configFile): the router cannot tell whether its policy is stale and trusts the bundle file",
				"bundle", cfg.Policy.BundleFile)
			return nil, nil
		}
	}
	return openGatewayFreshness(path, key, exchange.MemberOf(cfg.Provider))
}

// startOutbox relays the outbox in the background, pausing and retrying on
// failure (a broker or database outage) until ctx ends.
func startOutbox(ctx context.Context, cfg *Config, datasets []*Dataset, log *slog.Logger) (func(), error) {
	dsn, err := os.ReadFile(cfg.Outbox.DSNFile)
	if err != nil {
		return nil, fmt.Errorf("feed router: outbox dsn: %w", err)
	}
	relay := cfg.Outbox.Relay
	if relay == "" {
		relay = cfg.ID
	}
	ob, err := postgres.OpenOutbox(ctx, strings.TrimSpace(string(dsn)), relay)
	if err != nil {
		return nil, err
	}
	pub, err := NewOutboxPublisher(cfg.Kafka, datasets)
	if err != nil {
		ob.Close()
		return nil, err
	}
	done := make(chan struct{})
	go func() {
		defer close(done)
		for ctx.Err() == nil {
			if err := ob.Relay(ctx, 500, 200*time.Millisecond, pub.Publish); err != nil && ctx.Err() == nil {
				log.Warn("outbox relay paused; retrying", "error", err.Error())
				select {
				case <-ctx.Done():
				case <-time.After(time.Second):
				}
			}
		}
	}()
	return func() { <-done; pub.Close(); ob.Close() }, nil
}
