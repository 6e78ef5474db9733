package service

import (
	"context"
	"fmt"

	"github.com/lienthong/lienthong/catalog"
	"github.com/lienthong/lienthong/controlplane/auth"
)

// AddMember admits an agency. Only the platform operator admits members.
func (s *Service) AddMember(ctx context.Context, p auth.Principal, m catalog.Member) (*catalog.Member, error) {
	if err := p.RequirePlatformAdmin("add member"); err != nil {
		return nil, err
	}
	if m.Contacts == nil {
		m.Contacts = []catalog.Contact{}
	}
	if err := m.Validate(); err != nil {
		return nil, err
	}
	m.CreatedAt = s.Now()
	err := s.store.Update(ctx, func(tx catalog.Tx) error {
		if err := tx.CreateMember(ctx, &m); err != nil {
			return err
		}
		return s.record(ctx, tx, p, change{action: "member.create", object: m.Code, member: m.Code, after: m})
	})
	if err != nil {
		return nil, fmt.Errorf("add member %s: %w", m.Code, err)
	}
	return &m, nil
}

// Members lists every member; the member list is public within the federation.
func (s *Service) Members(ctx context.Context) ([]catalog.Member, error) {
	return s.store.ListMembers(ctx)
}

// Member returns one member.
func (s *Service) Member(ctx context.Context, code string) (*catalog.Member, error) {
	return s.store.GetMember(ctx, code)
}
