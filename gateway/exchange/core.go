// Package exchange is the gateway's exchange core: one pipeline, free of
// net/http, that every door runs. A Request goes through admission (fresh
// configuration, the peer's certificate and its binding to a member,
// revocation, rate limit, purpose), the policy decision, the fetch through the
// dataset's adapter, validation, projection and masking, and the audit
// records, and comes out as an Answer or a typed Refusal.
//
// The native HTTP listeners call Serve for the whole pipeline. The stages are
// methods too, so doors that see only part of an exchange run the same code:
// Envoy's ext_authz (gateway/envoy) runs BeginQuery (Admit, Decide, the
// intent record) and hands the decision on; ext_proc runs FinishQuery
// (Filter, the outcome record) over the response body, or Abandon when none
// comes; a feed router runs Decide in feed mode, Filter per event and the
// records. Staleness is checked in Admit and AdmitCaller, so no door can
// skip it.
package exchange

import (
	"crypto/x509"
	"errors"
	"fmt"
	"log/slog"
	"math/big"
	"sync"
	"sync/atomic"
	"time"

	"golang.org/x/time/rate"

	"github.com/lienthong/lienthong/adapters"
	"github.com/lienthong/lienthong/audit"
	"github.com/lienthong/lienthong/catalog"
	"github.com/lienthong/lienthong/certs"
	"github.com/lienthong/lienthong/gateway/projection"
	"github.com/lienthong/lienthong/policies"
)

// Snapshot is one consistent view of the federation, as the gateway last
// pulled it: a request is decided against one snapshot from start to end.
type Snapshot struct {
	// Engine decides with the policy revision of this snapshot.
	Engine *policies.Engine
	// TrustDomain is the federation's SPIFFE trust domain.
	TrustDomain string
	// Gateways are the registered gateways by member; GatewayMember the
	// member of each gateway's system.
	Gateways      map[string]catalog.Gateway
	GatewayMember map[string]string
	// RevokedSystem holds the ids of revoked systems.
	RevokedSystem map[string]bool
	// Datasets this member publishes, by "<provider>/<code>".
	Datasets map[string]*Dataset
	// Policy is the data Engine decides with; the feed door lists a
	// dataset's subscribers from its grants (none when nil).
	Policy *policies.PolicyData
}

// Dataset is one published dataset as the provider side needs it.
type Dataset struct {
	Catalog *catalog.Dataset
	// Validator checks whole records; Partial checks records an adapter
	// fetched only in part (no `required`).
	Validator, Partial *projection.Validator
	// Schema is the declared shape plans are compiled against: projection
	// admits only what it declares, at every depth.
	Schema *projection.Schema
}

// Source gives the snapshot in force.
type Source interface {
	// Current returns the snapshot in force and the newest signed time it
	// is known to be current (nil before any configuration).
	Current() (*Snapshot, time.Time)
}

// Backend serves one dataset.
type Backend struct {
	Adapter adapters.Adapter
	// RecordPath is the backend path of one record with {id} for its id
	// ("" means "{id}"): verify fetches it, and a query whose path matches
	// it is about that record's subject.
	RecordPath string
	// SubjectField, when set, is the dotted path of the personal id in a
	// record: each record of an answer is then recorded under its subject.
	SubjectField string
}

// Config is what a Core needs. Durations and limits must be set (the
// gateway's configuration applies its defaults before building a Core).
type Config struct {
	// Member is the agency the gateway serves; Instance the first part of
	// system ids.
	Member, Instance string
	Source           Source
	// Revoked reports whether a certificate serial has been revoked.
	Revoked func(serial *big.Int) bool
	// Backends by "<provider>/<code>".
	Backends map[string]Backend
	Sink     audit.Sink
	// Masker applies hash and partial masks with the provider's key.
	Masker *projection.Masker
	// Subjects names data subjects in audit records.
	Subjects audit.SubjectKey
	Log      *slog.Logger
	// Now is the clock for staleness, certificates and decisions.
	Now func() time.Time

	MaxStaleness     time.Duration
	Timeout          time.Duration
	MaxResponseBytes int64
	// RatePerSecond and RateBurst bound each consumer's requests.
	RatePerSecond float64
	RateBurst     int
	// Observer, when set, hears of every finished exchange (metrics).
	Observer Observer
}

// Core runs exchanges. It is safe for concurrent use.
type Core struct {
	cfg Config

	// limitersMu guards the per-consumer rate limiters and verify counts.
	limitersMu     sync.Mutex
	limiters       map[string]*rate.Limiter
	verifyAttempts map[string][]time.Time

	invalidResponses atomic.Int64

	peers    peerIDs
	subjects *audit.SubjectHasher
}

// New checks cfg and returns a Core.
func New(cfg Config) (*Core, error) {
	var errs []error
	if cfg.Source == nil {
		errs = append(errs, errors.New("no configuration source"))
	}
	if cfg.Sink == nil {
		errs = append(errs, errors.New("no audit sink"))
	}
	if cfg.Masker == nil {
		errs = append(errs, errors.New("no masker"))
	}
	if len(cfg.Subjects) < audit.SubjectKeySize {
		errs = append(errs, errors.New("no audit subject key"))
	}
	if cfg.MaxStaleness <= 0 || cfg.Timeout <= 0 || cfg.MaxResponseBytes <= 0 || cfg.RatePerSecond <= 0 || cfg.RateBurst <= 0 {
		errs = append(errs, errors.New("staleness, timeout, response limit and rate must be positive"))
	}
	if err := errors.Join(errs...); err != nil {
		return nil, fmt.Errorf("exchange core: %w", err)
	}
	if cfg.Log == nil {
		cfg.Log = slog.New(slog.DiscardHandler)
	}
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	if cfg.Revoked == nil {
		cfg.Revoked = func(*big.Int) bool { return false }
	}
	if cfg.Instance == "" {
		cfg.Instance = catalog.DefaultInstance
	}
	return &Core{cfg: cfg, subjects: audit.NewSubjectHasher(cfg.Subjects)}, nil
}

// InvalidResponses counts backend answers refused because they did not
// match the dataset, since the Core started.
func (c *Core) InvalidResponses() int64 { return c.invalidResponses.Load() }

// Fresh reports whether the configuration in force is within its allowed
// staleness, with the same rule every exchange is admitted by, so a
// readiness probe never disagrees with the doors.
func (c *Core) Fresh() error {
	if _, ref := c.fresh(); ref != nil {
		return errors.New(ref.Detail)
	}
	return nil
}

// fresh returns the snapshot in force, or refuses when there is none or it
// is older than the allowed staleness: deny by default.
func (c *Core) fresh() (*Snapshot, *Refusal) {
	snap, at := c.cfg.Source.Current()
	if snap == nil {
		return nil, refusal(statusServiceUnavailable, KindStale, "configuration is stale: no configuration has been pulled from the control plane yet")
	}
	if age := c.cfg.Now().Sub(at); age > c.cfg.MaxStaleness {
		return nil, refusal(statusServiceUnavailable, KindStale, fmt.Sprintf("configuration is stale: the newest configuration was issued %s ago, at %s; the limit is %s",
			age.Round(time.Second), at.UTC().Format(time.RFC3339), c.cfg.MaxStaleness))
	}
	return snap, nil
}

// identify names the system a verified certificate chain belongs to, and
// checks it again on every request, not only at the handshake: a keep-alive
// connection must not outlive its certificate's expiry, the revocation of its
// serial, or the revocation of its system.
func (c *Core) identify(chain []*x509.Certificate, snap *Snapshot) (string, error) {
	if len(chain) == 0 {
		return "", errors.New("no client certificate")
	}
	leaf := chain[0]
	if now := c.cfg.Now(); now.After(leaf.NotAfter) {
		return "", fmt.Errorf("the client certificate expired at %s", leaf.NotAfter.UTC().Format(time.RFC3339))
	}
	if c.cfg.Revoked(leaf.SerialNumber) {
		return "", fmt.Errorf("the client certificate %s has been revoked", certs.SerialHex(leaf.SerialNumber))
	}
	uri, err := c.peers.spiffeID(leaf)
	if err != nil {
		return "", err
	}
	id, err := catalog.ParseSPIFFE(uri, snap.TrustDomain, c.cfg.Instance)
	if err != nil {
		return "", err
	}
	if snap.RevokedSystem[id.String()] {
		return "", fmt.Errorf("system %s has been revoked", id)
	}
	return id.String(), nil
}

// subject is the audit form of a personal id ("" for none).
func (c *Core) subject(id string) string {
	if id == "" {
		return ""
	}
	return c.subjects.Subject(id)
}

// MemberOf returns the member of a system id ("" when it is not one).
func MemberOf(id string) string {
	sid, err := catalog.ParseSystemID(id)
	if err != nil {
		return ""
	}
	return sid.Member
}
