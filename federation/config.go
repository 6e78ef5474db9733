package federation

import (
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"slices"
	"time"

	"github.com/lienthong/lienthong/catalog"
)

// DefaultTrustDomain is the federation's SPIFFE trust domain unless the
// control plane is configured otherwise: every system certificate names
// spiffe://<trust domain>/<class>/<member>/<system>.
const DefaultTrustDomain = "lienthong.vn"

// Config is what a gateway pulls: where the peers are, which of its
// member's datasets exist (with the digest of their document, to fetch when
// it changes), and whom to trust and refuse. The control plane signs it, so
// a gateway acts only on configuration its operator issued.
type Config struct {
	Revision int64     `json:"revision"`
	IssuedAt time.Time `json:"issuedAt"`
	// Member is the member whose share this is ("" for the operator's view
	// of the whole federation).
	Member string `json:"member,omitempty"`
	// Content is the digest of the configuration without IssuedAt and
	// Content, and its ETag: signed with the body, it is what a gateway
	// asks If-None-Match with and what a not-modified statement names.
	Content string `json:"content"`
	// Gateways are the registered gateways of all members: the peers.
	Gateways []catalog.Gateway `json:"gateways"`
	// Datasets are the latest versions of the member's own datasets,
	// without documents or fields.
	Datasets []Dataset `json:"datasets"`
	// Trust holds the roots and the revoked serials and systems.
	Trust *Trust `json:"trust"`
}

// Dataset is a dataset as its provider's gateway needs to know it.
type Dataset struct {
	Provider     string `json:"provider"`
	Code         string `json:"code"`
	Version      int    `json:"version"`
	Digest       string `json:"digest"`
	RecordSchema string `json:"recordSchema"`
}

// Trust is what gateways pull to decide whom to accept: the roots to chain
// peers to and what is revoked, at a catalog revision.
type Trust struct {
	// Revision is the catalog revision the revocation lists are read at.
	Revision int64 `json:"revision"`
	// TrustDomain is the SPIFFE trust domain; enrolment clients need it to
	// write their certificate request.
	TrustDomain string `json:"trustDomain"`
	// RootsPEM holds the trusted roots: one normally, two during a CA
	// rotation.
	RootsPEM string `json:"rootsPem"`
	// RevokedSerials are the serials (certs.SerialHex) of revoked
	// certificates that have not expired yet; expired ones fail on their own.
	RevokedSerials []string `json:"revokedSerials"`
	// RevokedSystems are the ids of revoked systems.
	RevokedSystems []string `json:"revokedSystems"`
	// ETag identifies this content (quoted, for the HTTP header): the
	// revision and a digest of the rest, so an expired serial leaving the
	// list or a root rotated inside Vault changes it too.
	ETag string `json:"-"`
}

// Trust is the snapshot's trust configuration at time now: rootsPEM are the
// authority's current roots (they live outside the catalog).
func (s *Snapshot) Trust(trustDomain, rootsPEM string, now time.Time) (*Trust, error) {
	t := &Trust{
		Revision:       s.Revision,
		TrustDomain:    trustDomain,
		RootsPEM:       rootsPEM,
		RevokedSerials: []string{},
		RevokedSystems: []string{},
	}
	for _, r := range s.Revoked {
		if now.Before(r.NotAfter) {
			t.RevokedSerials = append(t.RevokedSerials, r.Serial)
		}
	}
	for _, sys := range s.Systems {
		if sys.RevokedAt != nil {
			t.RevokedSystems = append(t.RevokedSystems, sys.ID)
		}
	}
	slices.Sort(t.RevokedSystems)
	body, err := json.Marshal(t)
	if err != nil {
		return nil, fmt.Errorf("trust: %w", err)
	}
	sum := sha256.Sum256(body)
	t.ETag = fmt.Sprintf(`"%d-%s"`, s.Revision, hex.EncodeToString(sum[:8]))
	return t, nil
}

// Config is the configuration of member's gateway ("" for every dataset of
// the federation, which only the operator gets), with Content set and
// IssuedAt left for Issue.
func (s *Snapshot) Config(member string, trust *Trust) (*Config, error) {
	cfg := &Config{Revision: s.Revision, Member: member, Gateways: s.Gateways, Datasets: []Dataset{}, Trust: trust}
	for _, d := range s.Datasets {
		if member != "" && MemberOf(d.System) != member {
			continue
		}
		cfg.Datasets = append(cfg.Datasets, Dataset{Provider: d.System, Code: d.Code, Version: d.Version, Digest: d.Digest, RecordSchema: d.RecordSchema})
	}
	// The content without its issue time names the configuration.
	content, err := json.Marshal(cfg)
	if err != nil {
		return nil, fmt.Errorf("gateway config: %w", err)
	}
	sum := sha256.Sum256(content)
	cfg.Content = hex.EncodeToString(sum[:16])
	return cfg, nil
}

// ETag is the entity tag the configuration names itself by ("" when it
// names none: then every poll downloads it).
func (c *Config) ETag() string {
	if c.Content == "" {
		return ""
	}
	return ETag(c.Content)
}

// ETag is the HTTP entity tag of a configuration with the given content
// digest (Config.Content).
func ETag(content string) string { return `"` + content + `"` }
