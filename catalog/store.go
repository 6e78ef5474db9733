package catalog

import (
	"context"
	"time"
)

// Store persists the catalog. Implementations (SQLite for the embedded
// default, PostgreSQL in production) pass one conformance suite, so the rest
// of the code never knows which it has.
//
// Reads go straight to the store, each on its own; View runs several reads
// against one snapshot. Every write runs inside Update so that the change and
// its admin-trail entry commit together or not at all. Updates are
// serialised (one writer at a time, across processes on PostgreSQL), so trail
// Seq order is commit order and Revision is a safe watermark. A failed Tx
// method leaves the transaction usable. Parents must exist before children:
// a write that names a missing member or system fails with ErrNotFound.
type Store interface {
	Reader
	// Update runs fn in one transaction. If fn returns an error nothing it
	// wrote is kept and the error is returned unchanged (still wrapped-able
	// with errors.Is).
	Update(ctx context.Context, fn func(tx Tx) error) error
	// View runs fn with a Reader that sees one consistent snapshot of the
	// catalog: every read inside fn sees the same committed state, at one
	// Revision, whatever commits meanwhile. Whatever is built from one
	// catalog revision (the gateway configuration, the policy bundles,
	// later the xDS resources) reads through View, so its parts never
	// disagree. View does not wait for writers nor block them. fn's error is
	// returned unchanged.
	View(ctx context.Context, fn func(r Reader) error) error
	// Close releases the store.
	Close() error
}

// Reader is the read side, available both on the store and inside a transaction.
// Get methods return an error wrapping ErrNotFound when nothing matches; List
// methods return an empty (non-nil) slice.
type Reader interface {
	GetMember(ctx context.Context, code string) (*Member, error)
	ListMembers(ctx context.Context) ([]Member, error)

	GetSystem(ctx context.Context, id string) (*System, error)
	ListSystems(ctx context.Context, f SystemFilter) ([]System, error)

	// GetDataset returns one version with its Document; version 0 means the latest.
	GetDataset(ctx context.Context, system, code string, version int) (*Dataset, error)
	// ListDatasets returns the latest version of each dataset, without Document.
	ListDatasets(ctx context.Context, f DatasetFilter) ([]Dataset, error)
	// ListDatasetVersions returns every version of one dataset, oldest first, without Document.
	ListDatasetVersions(ctx context.Context, system, code string) ([]Dataset, error)

	GetToken(ctx context.Context, id string) (*Token, error)
	ListTokens(ctx context.Context, f TokenFilter) ([]Token, error)

	GetAccessRequest(ctx context.Context, id string) (*AccessRequest, error)
	ListAccessRequests(ctx context.Context, f AccessRequestFilter) ([]AccessRequest, error)
	GetGrant(ctx context.Context, id string) (*Grant, error)
	ListGrants(ctx context.Context, f GrantFilter) ([]Grant, error)

	GetCertificate(ctx context.Context, serial string) (*Certificate, error)
	ListCertificates(ctx context.Context, f CertificateFilter) ([]Certificate, error)

	// GetGateway returns a member's gateway registration.
	GetGateway(ctx context.Context, member string) (*Gateway, error)
	// ListGateways returns every registered gateway, ordered by member.
	ListGateways(ctx context.Context) ([]Gateway, error)

	// GetAgencyModule returns a provider system's own policy module.
	GetAgencyModule(ctx context.Context, provider string) (*AgencyModule, error)
	// ListAgencyModules returns every provider's module, ordered by provider.
	ListAgencyModules(ctx context.Context) ([]AgencyModule, error)

	// ListTrail returns trail entries in ascending Seq.
	ListTrail(ctx context.Context, f TrailFilter) ([]TrailEntry, error)
	// Revision is the Seq of the newest trail entry (0 when empty). Every
	// write appends to the trail, so it changes whenever the catalog does and
	// serves as the revision of policy bundles and gateway configuration.
	Revision(ctx context.Context) (int64, error)
}

// Tx is a transaction: reads see its own writes. Create methods return an
// error wrapping ErrConflict when the key exists; update methods return one
// wrapping ErrNotFound when it does not.
type Tx interface {
	Reader

	CreateMember(ctx context.Context, m *Member) error
	CreateSystem(ctx context.Context, s *System) error
	// SetAssessment records a new assessment as the system's current one.
	SetAssessment(ctx context.Context, systemID string, a Assessment) error
	// RevokeSystem marks a system revoked.
	RevokeSystem(ctx context.Context, systemID string, at time.Time, reason string) error

	// InsertDataset stores a new version. d.Version must be one more than the
	// latest stored version (1 for a new dataset), else ErrConflict.
	InsertDataset(ctx context.Context, d *Dataset) error

	CreateToken(ctx context.Context, t *Token) error
	RevokeToken(ctx context.Context, id string, at time.Time) error

	CreateAccessRequest(ctx context.Context, r *AccessRequest) error
	// UpdateAccessRequest replaces the stored request (state, approval, reason, history).
	UpdateAccessRequest(ctx context.Context, r *AccessRequest) error
	CreateGrant(ctx context.Context, g *Grant) error
	// UpdateGrant replaces the stored grant (state, revocation, history).
	UpdateGrant(ctx context.Context, g *Grant) error

	// PutGateway creates or replaces a member's gateway registration;
	// ErrNotFound if the member or the gateway system does not exist.
	PutGateway(ctx context.Context, g *Gateway) error

	// PutAgencyModule creates or replaces a provider's module; ErrNotFound if
	// the provider system does not exist.
	PutAgencyModule(ctx context.Context, m *AgencyModule) error
	DeleteAgencyModule(ctx context.Context, provider string) error

	InsertCertificate(ctx context.Context, c *Certificate) error
	RevokeCertificate(ctx context.Context, serial string, at time.Time, reason string) error

	// AppendTrail stores e and sets e.Seq.
	AppendTrail(ctx context.Context, e *TrailEntry) error
}

// SystemFilter narrows ListSystems; zero values match everything.
type SystemFilter struct {
	Member string
}

// DatasetFilter narrows ListDatasets.
type DatasetFilter struct {
	Member string
	System string
}

// TokenFilter narrows ListTokens.
type TokenFilter struct {
	Member string
}

// AccessRequestFilter narrows ListAccessRequests. Member matches requests
// whose consumer or provider system belongs to that member.
type AccessRequestFilter struct {
	Member   string
	Consumer string
	Provider string
	State    RequestState
}

// GrantFilter narrows ListGrants; Member matches consumer or provider side;
// Dataset is a dataset code (pair it with Provider to name one dataset).
type GrantFilter struct {
	Member   string
	Consumer string
	Provider string
	Dataset  string
	State    GrantState
}

// CertificateFilter narrows ListCertificates.
type CertificateFilter struct {
	System string
	Member string
}

// TrailFilter narrows ListTrail. AfterSeq pages; Limit 0 means the store's default (1000).
type TrailFilter struct {
	Member   string
	Object   string
	AfterSeq int64
	Limit    int
}
