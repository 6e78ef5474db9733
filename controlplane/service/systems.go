package service

import (
	"context"
	"errors"
	"fmt"

	"github.com/lienthong/lienthong/catalog"
	"github.com/lienthong/lienthong/controlplane/auth"
)

// SystemView is a system as shown to users: always with its connectivity, so
// a lapsed assessment is visible wherever the system appears.
type SystemView struct {
	catalog.System
	Connectivity catalog.Connectivity `json:"connectivity"`
}

func (s *Service) view(sys catalog.System) SystemView {
	return SystemView{System: sys, Connectivity: sys.ConnectivityAt(s.Now(), sys.SecurityLevel)}
}

// AddSystem registers an information system of a member. The member's own
// member-admin or the platform operator may do it.
func (s *Service) AddSystem(ctx context.Context, p auth.Principal, sys catalog.System) (*SystemView, error) {
	if id, err := catalog.ParseSystemID(sys.ID); err == nil && sys.Member == "" {
		sys.Member = id.Member
	}
	if err := sys.Validate(); err != nil {
		return nil, err
	}
	if err := p.RequireMemberAdmin("add system", sys.Member); err != nil {
		return nil, err
	}
	sys.Assessment, sys.RevokedAt, sys.RevokeReason = nil, nil, ""
	sys.CreatedAt = s.Now()
	err := s.store.Update(ctx, func(tx catalog.Tx) error {
		if _, err := tx.GetMember(ctx, sys.Member); err != nil {
			if errors.Is(err, catalog.ErrNotFound) {
				return catalog.Invalid("system", "/member", "member %s is not registered; add it first", sys.Member)
			}
			return err
		}
		if err := tx.CreateSystem(ctx, &sys); err != nil {
			return err
		}
		return s.record(ctx, tx, p, change{action: "system.create", object: sys.ID, member: sys.Member, after: sys})
	})
	if err != nil {
		return nil, fmt.Errorf("add system %s: %w", sys.ID, err)
	}
	v := s.view(sys)
	return &v, nil
}

// Assess records a security assessment. It is the platform operator's act:
// the assessment is what makes a system connectable.
func (s *Service) Assess(ctx context.Context, p auth.Principal, systemID string, a catalog.Assessment) (*SystemView, error) {
	if err := p.RequirePlatformAdmin("record an assessment"); err != nil {
		return nil, err
	}
	if err := a.Validate(s.Now()); err != nil {
		return nil, err
	}
	a.RecordedAt = s.Now()
	var after *catalog.System
	err := s.store.Update(ctx, func(tx catalog.Tx) error {
		before, err := tx.GetSystem(ctx, systemID)
		if err != nil {
			return err
		}
		if err := tx.SetAssessment(ctx, systemID, a); err != nil {
			return err
		}
		if after, err = tx.GetSystem(ctx, systemID); err != nil {
			return err
		}
		return s.record(ctx, tx, p, change{action: "system.assess", object: systemID, member: before.Member, before: before.Assessment, after: a})
	})
	if err != nil {
		return nil, fmt.Errorf("assess system %s: %w", systemID, err)
	}
	v := s.view(*after)
	return &v, nil
}

// System returns one system with its connectivity.
func (s *Service) System(ctx context.Context, id string) (*SystemView, error) {
	sys, err := s.store.GetSystem(ctx, id)
	if err != nil {
		return nil, fmt.Errorf("system %s: %w", id, err)
	}
	v := s.view(*sys)
	return &v, nil
}

// Systems lists systems with their connectivity.
func (s *Service) Systems(ctx context.Context, f catalog.SystemFilter) ([]SystemView, error) {
	list, err := s.store.ListSystems(ctx, f)
	if err != nil {
		return nil, fmt.Errorf("list systems: %w", err)
	}
	out := make([]SystemView, len(list))
	for i, sys := range list {
		out[i] = s.view(sys)
	}
	return out, nil
}
