package federation

import (
	"context"
	"fmt"
	"slices"
	"strings"
	"time"

	"github.com/lienthong/lienthong/catalog"
)

// Snapshot is the catalog at one revision, as everything issued to the data
// plane needs it. Read fills it inside one catalog.Store.View, so its parts
// are consistent with each other and with Revision. It is never changed
// after Read: builders share it.
type Snapshot struct {
	// Revision is the catalog revision (catalog.Reader.Revision) read.
	Revision int64
	// Systems are every registered system, revoked ones included (their
	// state is what lets a gateway refuse them).
	Systems []catalog.System
	// Datasets are the latest version of each dataset, without documents.
	Datasets []catalog.Dataset
	// Grants are the active grants.
	Grants []catalog.Grant
	// Modules are the providers' own policy modules.
	Modules []catalog.AgencyModule
	// Gateways are the registered gateways, ordered by member.
	Gateways []catalog.Gateway
	// Revoked are the revoked certificates, by serial.
	Revoked []RevokedCertificate
}

// RevokedCertificate is one revoked certificate as the trust lists need it.
type RevokedCertificate struct {
	Serial string
	// NotAfter is when it would have expired: past it, it fails on its own
	// and leaves the list.
	NotAfter time.Time
}

// Read reads a snapshot through r. Call it inside catalog.Store.View: on a
// plain store each list would be read at its own moment.
func Read(ctx context.Context, r catalog.Reader) (*Snapshot, error) {
	var (
		s   = &Snapshot{}
		err error
	)
	if s.Revision, err = r.Revision(ctx); err != nil {
		return nil, fmt.Errorf("federation snapshot: %w", err)
	}
	if s.Systems, err = r.ListSystems(ctx, catalog.SystemFilter{}); err != nil {
		return nil, fmt.Errorf("federation snapshot: systems: %w", err)
	}
	if s.Datasets, err = r.ListDatasets(ctx, catalog.DatasetFilter{}); err != nil {
		return nil, fmt.Errorf("federation snapshot: datasets: %w", err)
	}
	if s.Grants, err = r.ListGrants(ctx, catalog.GrantFilter{State: catalog.GrantActive}); err != nil {
		return nil, fmt.Errorf("federation snapshot: grants: %w", err)
	}
	if s.Modules, err = r.ListAgencyModules(ctx); err != nil {
		return nil, fmt.Errorf("federation snapshot: policy modules: %w", err)
	}
	if s.Gateways, err = r.ListGateways(ctx); err != nil {
		return nil, fmt.Errorf("federation snapshot: gateways: %w", err)
	}
	certs, err := r.ListCertificates(ctx, catalog.CertificateFilter{})
	if err != nil {
		return nil, fmt.Errorf("federation snapshot: certificates: %w", err)
	}
	s.Revoked = []RevokedCertificate{}
	for _, c := range certs {
		if c.RevokedAt != nil {
			s.Revoked = append(s.Revoked, RevokedCertificate{Serial: c.Serial, NotAfter: c.NotAfter})
		}
	}
	slices.SortFunc(s.Revoked, func(a, b RevokedCertificate) int { return strings.Compare(a.Serial, b.Serial) })
	return s, nil
}

// MemberOf returns the member of a system id ("" when it is not one).
func MemberOf(system string) string {
	id, err := catalog.ParseSystemID(system)
	if err != nil {
		return ""
	}
	return id.Member
}

// Gateway returns the registered gateway of member, if any.
func (s *Snapshot) Gateway(member string) (catalog.Gateway, bool) {
	for _, g := range s.Gateways {
		if g.Member == member {
			return g, true
		}
	}
	return catalog.Gateway{}, false
}
