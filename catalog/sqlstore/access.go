package sqlstore

import (
	"context"
	"fmt"

	"github.com/lienthong/lienthong/catalog"
)

const requestCols = `id, consumer, provider, dataset, state, fields, purpose, legal_basis, valid_from, valid_until,
	row_scope, modes, approved, reason, grant_id, requested_by, created_at, updated_at, history`

func scanRequest(r rowScanner) (catalog.AccessRequest, error) {
	var a catalog.AccessRequest
	err := r.Scan(&a.ID, &a.Consumer, &a.Provider, &a.Dataset, &a.State, scanJSON(&a.Fields), scanJSON(&a.Purpose),
		scanJSON(&a.LegalBasis), scanTime(&a.ValidFrom), scanTime(&a.ValidUntil), scanJSON(&a.RowScope),
		scanJSON(&a.Modes), scanJSON(&a.Approved), &a.Reason, &a.GrantID, &a.RequestedBy,
		scanTime(&a.CreatedAt), scanTime(&a.UpdatedAt), scanJSON(&a.History))
	return a, err
}

// requestArgs are the values of every column but id, in the order of the
// INSERT and UPDATE statements below ($2…$21).
func (t *tx) requestArgs(a *catalog.AccessRequest) ([]any, error) {
	js, err := jsonArgs("access request", a.Fields, a.Purpose, a.LegalBasis, a.RowScope, a.Modes, a.Approved, normEvents(a.History))
	if err != nil {
		return nil, err
	}
	return []any{
		a.Consumer, memberOf(a.Consumer), a.Provider, memberOf(a.Provider), a.Dataset, string(a.State),
		js[0], js[1], js[2], t.d.time(a.ValidFrom), t.d.time(a.ValidUntil), js[3], js[4], js[5],
		a.Reason, a.GrantID, a.RequestedBy, t.d.time(a.CreatedAt), t.d.time(a.UpdatedAt), js[6],
	}, nil
}

// GetAccessRequest returns the request with the id, or ErrNotFound.
func (r reader) GetAccessRequest(ctx context.Context, id string) (*catalog.AccessRequest, error) {
	a, err := scanRequest(r.q.QueryRowContext(ctx, "SELECT "+requestCols+" FROM access_requests WHERE id = $1", id))
	if err != nil {
		return nil, fmt.Errorf("get access request %s: %w", id, notFoundErr(err))
	}
	return &a, nil
}

// ListAccessRequests returns the requests matching f, oldest first. Member
// matches requests whose consumer or provider system belongs to it.
func (r reader) ListAccessRequests(ctx context.Context, f catalog.AccessRequestFilter) ([]catalog.AccessRequest, error) {
	var w where
	if f.Member != "" {
		p := w.arg(f.Member)
		w.add("(consumer_member = " + p + " OR provider_member = " + p + ")")
	}
	w.eq("consumer", f.Consumer)
	w.eq("provider", f.Provider)
	w.eq("state", string(f.State))
	as, err := queryList(ctx, r.q, scanRequest,
		"SELECT "+requestCols+" FROM access_requests"+w.sql()+" ORDER BY created_at, id", w.args...)
	if err != nil {
		return nil, fmt.Errorf("list access requests: %w", err)
	}
	return as, nil
}

// CreateAccessRequest stores a new request; ErrConflict if the id is taken,
// ErrNotFound if the consumer or provider system does not exist.
func (t *tx) CreateAccessRequest(ctx context.Context, a *catalog.AccessRequest) error {
	err := t.write(ctx, func() error {
		args, err := t.requestArgs(a)
		if err != nil {
			return err
		}
		_, err = t.q.ExecContext(ctx, `INSERT INTO access_requests
			(id, consumer, consumer_member, provider, provider_member, dataset, state, fields, purpose, legal_basis,
			 valid_from, valid_until, row_scope, modes, approved, reason, grant_id, requested_by, created_at, updated_at, history)
			VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15, $16, $17, $18, $19, $20, $21)`,
			append([]any{a.ID}, args...)...)
		return t.d.insertErr(err, "consumer or provider system does not exist")
	})
	if err != nil {
		return fmt.Errorf("create access request %s: %w", a.ID, err)
	}
	return nil
}

// UpdateAccessRequest replaces every stored field of the request but its
// id; ErrNotFound if it does not exist.
func (t *tx) UpdateAccessRequest(ctx context.Context, a *catalog.AccessRequest) error {
	err := t.write(ctx, func() error {
		args, err := t.requestArgs(a)
		if err != nil {
			return err
		}
		res, err := t.q.ExecContext(ctx, `UPDATE access_requests SET
			consumer = $2, consumer_member = $3, provider = $4, provider_member = $5, dataset = $6, state = $7,
			fields = $8, purpose = $9, legal_basis = $10, valid_from = $11, valid_until = $12, row_scope = $13,
			modes = $14, approved = $15, reason = $16, grant_id = $17, requested_by = $18, created_at = $19,
			updated_at = $20, history = $21
			WHERE id = $1`, append([]any{a.ID}, args...)...)
		return mustAffect(res, t.d.insertErr(err, "consumer or provider system does not exist"))
	})
	if err != nil {
		return fmt.Errorf("update access request %s: %w", a.ID, err)
	}
	return nil
}

const grantCols = `id, request_id, consumer, provider, dataset, fields, purposes, legal_basis, modes, row_scope,
	valid_from, valid_until, state, approved_by, revoked_at, revoke_reason, created_at, history`

func scanGrant(r rowScanner) (catalog.Grant, error) {
	var g catalog.Grant
	err := r.Scan(&g.ID, &g.RequestID, &g.Consumer, &g.Provider, &g.Dataset, scanJSON(&g.Fields), scanJSON(&g.Purposes),
		scanJSON(&g.LegalBasis), scanJSON(&g.Modes), scanJSON(&g.RowScope), scanTime(&g.ValidFrom), scanTime(&g.ValidUntil),
		&g.State, &g.ApprovedBy, scanTimePtr(&g.RevokedAt), &g.RevokeReason, scanTime(&g.CreatedAt), scanJSON(&g.History))
	return g, err
}

// grantArgs are the values of every column but id ($2…$20).
func (t *tx) grantArgs(g *catalog.Grant) ([]any, error) {
	js, err := jsonArgs("grant", g.Fields, g.Purposes, g.LegalBasis, g.Modes, g.RowScope, normEvents(g.History))
	if err != nil {
		return nil, err
	}
	return []any{
		g.RequestID, g.Consumer, memberOf(g.Consumer), g.Provider, memberOf(g.Provider), g.Dataset,
		js[0], js[1], js[2], js[3], js[4], t.d.time(g.ValidFrom), t.d.time(g.ValidUntil), string(g.State),
		g.ApprovedBy, t.d.timePtr(g.RevokedAt), g.RevokeReason, t.d.time(g.CreatedAt), js[5],
	}, nil
}

// GetGrant returns the grant with the id, or ErrNotFound.
func (r reader) GetGrant(ctx context.Context, id string) (*catalog.Grant, error) {
	g, err := scanGrant(r.q.QueryRowContext(ctx, "SELECT "+grantCols+" FROM grants WHERE id = $1", id))
	if err != nil {
		return nil, fmt.Errorf("get grant %s: %w", id, notFoundErr(err))
	}
	return &g, nil
}

// ListGrants returns the grants matching f, oldest first. Member matches
// either side; Dataset is a dataset code (pair it with Provider to name one
// dataset); State compares the stored state, so an active grant past its
// ValidUntil still matches GrantActive.
func (r reader) ListGrants(ctx context.Context, f catalog.GrantFilter) ([]catalog.Grant, error) {
	var w where
	if f.Member != "" {
		p := w.arg(f.Member)
		w.add("(consumer_member = " + p + " OR provider_member = " + p + ")")
	}
	w.eq("consumer", f.Consumer)
	w.eq("provider", f.Provider)
	w.eq("dataset", f.Dataset)
	w.eq("state", string(f.State))
	gs, err := queryList(ctx, r.q, scanGrant, "SELECT "+grantCols+" FROM grants"+w.sql()+" ORDER BY created_at, id", w.args...)
	if err != nil {
		return nil, fmt.Errorf("list grants: %w", err)
	}
	return gs, nil
}

// CreateGrant stores a new grant; ErrConflict if the id is taken,
// ErrNotFound if the consumer or provider system does not exist.
func (t *tx) CreateGrant(ctx context.Context, g *catalog.Grant) error {
	err := t.write(ctx, func() error {
		args, err := t.grantArgs(g)
		if err != nil {
			return err
		}
		_, err = t.q.ExecContext(ctx, `INSERT INTO grants
			(id, request_id, consumer, consumer_member, provider, provider_member, dataset, fields, purposes, legal_basis,
			 modes, row_scope, valid_from, valid_until, state, approved_by, revoked_at, revoke_reason, created_at, history)
			VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15, $16, $17, $18, $19, $20)`,
			append([]any{g.ID}, args...)...)
		return t.d.insertErr(err, "consumer or provider system does not exist")
	})
	if err != nil {
		return fmt.Errorf("create grant %s: %w", g.ID, err)
	}
	return nil
}

// UpdateGrant replaces every stored field of the grant but its id;
// ErrNotFound if it does not exist.
func (t *tx) UpdateGrant(ctx context.Context, g *catalog.Grant) error {
	err := t.write(ctx, func() error {
		args, err := t.grantArgs(g)
		if err != nil {
			return err
		}
		res, err := t.q.ExecContext(ctx, `UPDATE grants SET
			request_id = $2, consumer = $3, consumer_member = $4, provider = $5, provider_member = $6, dataset = $7,
			fields = $8, purposes = $9, legal_basis = $10, modes = $11, row_scope = $12, valid_from = $13,
			valid_until = $14, state = $15, approved_by = $16, revoked_at = $17, revoke_reason = $18,
			created_at = $19, history = $20
			WHERE id = $1`, append([]any{g.ID}, args...)...)
		return mustAffect(res, t.d.insertErr(err, "consumer or provider system does not exist"))
	})
	if err != nil {
		return fmt.Errorf("update grant %s: %w", g.ID, err)
	}
	return nil
}
