package sqlstore

import (
	"context"
	"fmt"
	"time"

	"github.com/lienthong/lienthong/catalog"
)

const memberCols = "code, name, contacts, created_at"

func scanMember(r rowScanner) (catalog.Member, error) {
	var m catalog.Member
	err := r.Scan(&m.Code, &m.Name, scanJSON(&m.Contacts), scanTime(&m.CreatedAt))
	return m, err
}

// GetMember returns the member with the agency code, or ErrNotFound.
func (r reader) GetMember(ctx context.Context, code string) (*catalog.Member, error) {
	m, err := scanMember(r.q.QueryRowContext(ctx, "SELECT "+memberCols+" FROM members WHERE code = $1", code))
	if err != nil {
		return nil, fmt.Errorf("get member %s: %w", code, notFoundErr(err))
	}
	return &m, nil
}

// ListMembers returns every member, ordered by code.
func (r reader) ListMembers(ctx context.Context) ([]catalog.Member, error) {
	ms, err := queryList(ctx, r.q, scanMember, "SELECT "+memberCols+" FROM members ORDER BY code")
	if err != nil {
		return nil, fmt.Errorf("list members: %w", err)
	}
	return ms, nil
}

// CreateMember stores a new member; ErrConflict if the code is taken.
func (t *tx) CreateMember(ctx context.Context, m *catalog.Member) error {
	err := t.write(ctx, func() error {
		contacts, err := jsonArg(m.Contacts)
		if err != nil {
			return err
		}
		_, err = t.q.ExecContext(ctx, "INSERT INTO members ("+memberCols+") VALUES ($1, $2, $3, $4)",
			m.Code, m.Name, contacts, t.d.time(m.CreatedAt))
		return t.d.insertErr(err, "")
	})
	if err != nil {
		return fmt.Errorf("create member %s: %w", m.Code, err)
	}
	return nil
}

const systemCols = `s.id, s.name, s.member, s.security_level, s.revoked_at, s.revoke_reason, s.created_at,
	a.level, a.assessed_by, a.reference, a.valid_until, a.recorded_at`

// systemFrom joins each system with its current assessment.
const systemFrom = " FROM systems s LEFT JOIN assessments a ON a.id = s.assessment_id"

func scanSystem(r rowScanner) (catalog.System, error) {
	var (
		s          catalog.System
		level      *int64
		by, ref    *string
		until, rec *time.Time
	)
	err := r.Scan(&s.ID, &s.Name, &s.Member, &s.SecurityLevel, scanTimePtr(&s.RevokedAt), &s.RevokeReason,
		scanTime(&s.CreatedAt), &level, &by, &ref, scanTimePtr(&until), scanTimePtr(&rec))
	if err != nil {
		return s, err
	}
	if level != nil {
		s.Assessment = &catalog.Assessment{Level: int(*level), AssessedBy: *by, Reference: *ref, ValidUntil: *until, RecordedAt: *rec}
	}
	return s, nil
}

// GetSystem returns the system with its current assessment, or ErrNotFound.
func (r reader) GetSystem(ctx context.Context, id string) (*catalog.System, error) {
	s, err := scanSystem(r.q.QueryRowContext(ctx, "SELECT "+systemCols+systemFrom+" WHERE s.id = $1", id))
	if err != nil {
		return nil, fmt.Errorf("get system %s: %w", id, notFoundErr(err))
	}
	return &s, nil
}

// ListSystems returns the systems (of one member if f.Member is set), ordered by id.
func (r reader) ListSystems(ctx context.Context, f catalog.SystemFilter) ([]catalog.System, error) {
	var w where
	w.eq("s.member", f.Member)
	ss, err := queryList(ctx, r.q, scanSystem, "SELECT "+systemCols+systemFrom+w.sql()+" ORDER BY s.id", w.args...)
	if err != nil {
		return nil, fmt.Errorf("list systems: %w", err)
	}
	return ss, nil
}

// CreateSystem stores a new system; ErrConflict if the id is taken,
// ErrNotFound if its member does not exist. An empty s.Member is set from
// the id, so member filters find the system. An Assessment given here is
// recorded as the first one.
func (t *tx) CreateSystem(ctx context.Context, s *catalog.System) error {
	if s.Member == "" {
		s.Member = memberOf(s.ID)
	}
	err := t.write(ctx, func() error {
		_, err := t.q.ExecContext(ctx, `INSERT INTO systems
			(id, member, name, security_level, assessment_id, revoked_at, revoke_reason, created_at)
			VALUES ($1, $2, $3, $4, NULL, $5, $6, $7)`,
			s.ID, s.Member, s.Name, s.SecurityLevel, t.d.timePtr(s.RevokedAt), s.RevokeReason, t.d.time(s.CreatedAt))
		if err != nil {
			return t.d.insertErr(err, "member "+s.Member+" does not exist")
		}
		if s.Assessment != nil {
			return t.setAssessment(ctx, s.ID, *s.Assessment)
		}
		return nil
	})
	if err != nil {
		return fmt.Errorf("create system %s: %w", s.ID, err)
	}
	return nil
}

// SetAssessment adds a to the system's assessment history and makes it the
// current one; ErrNotFound if the system does not exist.
func (t *tx) SetAssessment(ctx context.Context, systemID string, a catalog.Assessment) error {
	if err := t.write(ctx, func() error { return t.setAssessment(ctx, systemID, a) }); err != nil {
		return fmt.Errorf("set assessment of system %s: %w", systemID, err)
	}
	return nil
}

func (t *tx) setAssessment(ctx context.Context, systemID string, a catalog.Assessment) error {
	var id int64
	err := t.q.QueryRowContext(ctx, `INSERT INTO assessments
		(system_id, level, assessed_by, reference, valid_until, recorded_at)
		VALUES ($1, $2, $3, $4, $5, $6) RETURNING id`,
		systemID, a.Level, a.AssessedBy, a.Reference, t.d.time(a.ValidUntil), t.d.time(a.RecordedAt)).Scan(&id)
	if err != nil {
		return t.d.insertErr(err, "system does not exist")
	}
	return mustAffect(t.q.ExecContext(ctx, "UPDATE systems SET assessment_id = $1 WHERE id = $2", id, systemID))
}

// RevokeSystem records the revocation; ErrNotFound if the system does not exist.
func (t *tx) RevokeSystem(ctx context.Context, systemID string, at time.Time, reason string) error {
	err := t.write(ctx, func() error {
		return mustAffect(t.q.ExecContext(ctx, "UPDATE systems SET revoked_at = $1, revoke_reason = $2 WHERE id = $3",
			t.d.time(at), reason, systemID))
	})
	if err != nil {
		return fmt.Errorf("revoke system %s: %w", systemID, err)
	}
	return nil
}
