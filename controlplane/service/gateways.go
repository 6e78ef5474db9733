package service

import (
	"context"
	"crypto"
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"strconv"
	"time"

	"github.com/lienthong/lienthong/catalog"
	"github.com/lienthong/lienthong/controlplane/auth"
)

// RegisterGateway records where a member's gateway accepts peers and which of
// the member's systems it presents. Only that member's admin (or the
// platform operator) may point traffic at an address.
func (s *Service) RegisterGateway(ctx context.Context, p auth.Principal, g catalog.Gateway) (*catalog.Gateway, error) {
	if err := p.RequireMemberAdmin("register a gateway", g.Member); err != nil {
		return nil, err
	}
	v := &catalog.ValidationError{What: "gateway"}
	if memberOf(g.System) != g.Member {
		v.Add("/system", "gateway system %q must be a system of member %s", g.System, g.Member)
	}
	if host, port, err := net.SplitHostPort(g.Address); err != nil || host == "" {
		v.Add("/address", "address %q must be host:port", g.Address)
	} else if n, err := strconv.Atoi(port); err != nil || n < 1 || n > 65535 {
		v.Add("/address", "port %q must be 1-65535", port)
	}
	if err := v.Err(); err != nil {
		return nil, err
	}
	g.UpdatedAt = s.Now()
	err := s.store.Update(ctx, func(tx catalog.Tx) error {
		before, err := tx.GetGateway(ctx, g.Member)
		if err != nil && !errors.Is(err, catalog.ErrNotFound) {
			return err
		}
		sys, err := tx.GetSystem(ctx, g.System)
		if errors.Is(err, catalog.ErrNotFound) {
			return catalog.Invalid("gateway", "/system", "system %s is not registered", g.System)
		} else if err != nil {
			return err
		}
		// Not secure, not connected: a gateway gets no route either.
		if c := sys.ConnectivityAt(s.Now(), s.EnrollMinLevel()); !c.Connectable {
			return fmt.Errorf("%w: gateway system %s cannot be routed to: %s (not secure, not connected)", catalog.ErrForbidden, g.System, c.Reason)
		}
		if err := tx.PutGateway(ctx, &g); err != nil {
			return err
		}
		return s.record(ctx, tx, p, change{action: "gateway.register", object: g.Member, member: g.Member, before: before, after: g})
	})
	if err != nil {
		return nil, fmt.Errorf("register gateway of %s: %w", g.Member, err)
	}
	return &g, nil
}

// Gateways lists every registered gateway.
func (s *Service) Gateways(ctx context.Context) ([]catalog.Gateway, error) {
	return s.store.ListGateways(ctx)
}

// GatewayConfig is what every gateway pulls: where the peers are, which
// datasets exist (with the digest of their document, to fetch when it
// changes), and whom to trust and refuse. The control plane signs it, so a
// gateway acts only on configuration its operator issued.
type GatewayConfig struct {
	Revision int64     `json:"revision"`
	IssuedAt time.Time `json:"issuedAt"`
	// Content is the digest of the configuration without IssuedAt and
	// Content, and its ETag: signed with the body, it is what a gateway
	// asks If-None-Match with and what a not-modified statement names.
	Content string `json:"content"`
	// Gateways are the registered gateways of all members.
	Gateways []catalog.Gateway `json:"gateways"`
	// Datasets are the latest versions, without documents or fields.
	Datasets []GatewayDataset `json:"datasets"`
	// Trust holds the roots and the revoked serials and systems.
	Trust *Trust `json:"trust"`
}

// GatewayDataset is a dataset as gateways need to know it.
type GatewayDataset struct {
	Provider     string `json:"provider"`
	Code         string `json:"code"`
	Version      int    `json:"version"`
	Digest       string `json:"digest"`
	RecordSchema string `json:"recordSchema"`
}

// RequireGateway allows what a gateway's token does: pull configuration and
// policy. Those carry every grant of the federation (who may read what), so
// integrators, approvers and auditors read grants through the scoped
// listings instead.
func RequireGateway(p auth.Principal, action string) error {
	if p.IsPlatformAdmin() {
		return nil
	}
	return p.RequireMemberAdmin(action, p.Member)
}

// SignedGatewayConfig is the gateway configuration as served: the signed
// body, or, when the gateway already holds the current content, a signed
// statement that its copy is still current. Gateways poll every few seconds;
// the statement spares them downloading, parsing and storing an unchanged
// configuration while it still renews their freshness, which is what keeps
// them answering (a gateway past its staleness limit denies).
type SignedGatewayConfig struct {
	// Body is the configuration as JSON (empty when NotModified).
	Body []byte
	// Signature is "<key id>.<base64url signature over SHA-256(message)>",
	// made with the policy bundle key, so gateways need one verification
	// key. The message is Body, or FreshnessMessage(ETag, FreshAt) when
	// NotModified.
	Signature string
	// ETag names the content apart from its issue time (ETag of
	// GatewayConfig.Content). A client takes it from the signed body, not
	// from this header value.
	ETag string
	// NotModified says the ETag asked for is current; FreshAt is when.
	NotModified bool
	FreshAt     time.Time
}

// ETag is the HTTP entity tag of a configuration with the given content
// digest (GatewayConfig.Content).
func ETag(content string) string { return `"` + content + `"` }

// FreshnessMessage is what a not-modified answer signs: that the
// configuration named by etag is current at time at. Its prefix keeps it from
// ever being read as a configuration body.
func FreshnessMessage(etag string, at time.Time) []byte {
	return []byte("lienthong gateway-config current\n" + etag + "\n" + at.UTC().Format(time.RFC3339Nano))
}

// GatewayConfig returns the gateway configuration, or, when ifNoneMatch names
// its current content, a signed statement that it is current.
func (s *Service) GatewayConfig(ctx context.Context, ifNoneMatch string) (*SignedGatewayConfig, error) {
	if s.bundleKey == nil {
		return nil, errNoBundles
	}
	rev, err := s.store.Revision(ctx)
	if err != nil {
		return nil, err
	}
	gws, err := s.store.ListGateways(ctx)
	if err != nil {
		return nil, err
	}
	ds, err := s.store.ListDatasets(ctx, catalog.DatasetFilter{})
	if err != nil {
		return nil, err
	}
	trust, err := s.Trust(ctx)
	if err != nil {
		return nil, err
	}
	cfg := GatewayConfig{Revision: rev, Gateways: gws, Datasets: make([]GatewayDataset, len(ds)), Trust: trust}
	for i, d := range ds {
		cfg.Datasets[i] = GatewayDataset{Provider: d.System, Code: d.Code, Version: d.Version, Digest: d.Digest, RecordSchema: d.RecordSchema}
	}
	// The content without its issue time names the configuration.
	content, err := json.Marshal(cfg)
	if err != nil {
		return nil, fmt.Errorf("gateway config: %w", err)
	}
	sum := sha256.Sum256(content)
	cfg.Content = hex.EncodeToString(sum[:16])
	out := &SignedGatewayConfig{ETag: ETag(cfg.Content), FreshAt: s.Now()}
	var msg []byte
	if ifNoneMatch != "" && ifNoneMatch == out.ETag {
		out.NotModified = true
		msg = FreshnessMessage(out.ETag, out.FreshAt)
	} else {
		cfg.IssuedAt = out.FreshAt
		if out.Body, err = json.Marshal(cfg); err != nil {
			return nil, fmt.Errorf("gateway config: %w", err)
		}
		msg = out.Body
	}
	digest := sha256.Sum256(msg)
	sig, err := s.bundleKey.Key.Sign(rand.Reader, digest[:], crypto.SHA256)
	if err != nil {
		return nil, fmt.Errorf("sign gateway config: %w", err)
	}
	out.Signature = s.bundleKey.KeyID + "." + base64.RawURLEncoding.EncodeToString(sig)
	return out, nil
}
