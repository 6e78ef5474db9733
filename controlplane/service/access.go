package service

import (
	"context"
	"errors"
	"fmt"
	"regexp"
	"slices"
	"strings"
	"time"

	"github.com/lienthong/lienthong/catalog"
	"github.com/lienthong/lienthong/controlplane/auth"
)

// DefaultMaxGrantPeriod is the longest period a grant may cover unless the
// platform configures another: a year, after which the need is re-examined.
const DefaultMaxGrantPeriod = 365 * 24 * time.Hour

// WithMaxGrantPeriod sets the longest period an access request may ask for.
func WithMaxGrantPeriod(d time.Duration) Option { return func(s *Service) { s.maxGrant = d } }

// purposeCodePattern is a public-service procedure code such as 1.001234.
var purposeCodePattern = regexp.MustCompile(`^[0-9A-Za-z][0-9A-Za-z._-]{0,63}$`)

// AccessRequestInput is what an integrator submits.
type AccessRequestInput struct {
	Consumer   string             `json:"consumer"`
	Provider   string             `json:"provider"`
	Dataset    string             `json:"dataset"`
	Fields     []string           `json:"fields"`
	Purpose    catalog.Purpose    `json:"purpose"`
	LegalBasis catalog.LegalBasis `json:"legalBasis"`
	// ValidFrom defaults to now.
	ValidFrom  time.Time         `json:"validFrom"`
	ValidUntil time.Time         `json:"validUntil"`
	RowScope   *catalog.RowScope `json:"rowScope,omitempty"`
	Modes      []catalog.Mode    `json:"modes"`
}

func memberOf(systemID string) string {
	id, err := catalog.ParseSystemID(systemID)
	if err != nil {
		return ""
	}
	return id.Member
}

func (s *Service) event(p auth.Principal, action, detail string) catalog.RequestEvent {
	return catalog.RequestEvent{At: s.Now(), Actor: p.Actor(), Action: action, Detail: detail}
}

// RequestAccess files an access request for a consumer system of the
// caller's member. It is checked against the dataset as published now, so
// the provider never reviews a request for fields that do not exist.
func (s *Service) RequestAccess(ctx context.Context, p auth.Principal, in AccessRequestInput) (*catalog.AccessRequest, error) {
	consumerMember := memberOf(in.Consumer)
	if consumerMember == "" {
		return nil, catalog.Invalid("access request", "/consumer", "%q is not a system id like VN:GOV:000.00.00.G14:BHXH", in.Consumer)
	}
	if err := p.RequireRoleOf("request access", consumerMember, catalog.RoleIntegrator, catalog.RoleMemberAdmin); err != nil {
		return nil, err
	}
	now := s.Now()
	if d := in.LegalBasis.DiscloseAfter; d != nil {
		utc := d.UTC()
		in.LegalBasis.DiscloseAfter = &utc
	}
	if in.ValidFrom.IsZero() {
		in.ValidFrom = now
	}
	var out *catalog.AccessRequest
	err := s.store.Update(ctx, func(tx catalog.Tx) error {
		consumer, err := tx.GetSystem(ctx, in.Consumer)
		if errors.Is(err, catalog.ErrNotFound) {
			return catalog.Invalid("access request", "/consumer", "system %s is not registered", in.Consumer)
		} else if err != nil {
			return err
		}
		ds, err := tx.GetDataset(ctx, in.Provider, in.Dataset, 0)
		if errors.Is(err, catalog.ErrNotFound) {
			return catalog.Invalid("access request", "/dataset", "system %s publishes no dataset %q", in.Provider, in.Dataset)
		} else if err != nil {
			return err
		}
		if err := s.validateRequest(in, ds, now); err != nil {
			return err
		}
		if c := consumer.ConnectivityAt(now, ds.MinConsumerLevel); !c.Connectable {
			return fmt.Errorf("%w: consumer %s cannot be granted %s: %s (not secure, not connected)", catalog.ErrForbidden, in.Consumer, ds.Ref(), c.Reason)
		}
		r := &catalog.AccessRequest{
			ID: catalog.NewID("req"), Consumer: in.Consumer, Provider: in.Provider, Dataset: in.Dataset,
			Fields: in.Fields, Purpose: in.Purpose, LegalBasis: in.LegalBasis,
			ValidFrom: in.ValidFrom.UTC(), ValidUntil: in.ValidUntil.UTC(), RowScope: in.RowScope, Modes: in.Modes,
			State: catalog.RequestPending, RequestedBy: p.Actor(), CreatedAt: now, UpdatedAt: now,
			History: []catalog.RequestEvent{s.event(p, "requested", fmt.Sprintf("%d fields for purpose %s", len(in.Fields), in.Purpose.Code))},
		}
		if err := tx.CreateAccessRequest(ctx, r); err != nil {
			return err
		}
		out = r
		return s.record(ctx, tx, p, change{action: "access.request", object: r.ID, member: consumerMember, after: r})
	})
	if err != nil {
		return nil, fmt.Errorf("request access to %s/%s: %w", in.Provider, in.Dataset, err)
	}
	return out, nil
}

// validateRequest collects every problem of a request against its dataset.
func (s *Service) validateRequest(in AccessRequestInput, ds *catalog.Dataset, now time.Time) error {
	v := &catalog.ValidationError{What: "access request"}
	if len(in.Fields) == 0 {
		v.Add("/fields", "name at least one field of %s", ds.Ref())
	}
	var unknown []string
	sensitive := false
	seen := map[string]bool{}
	for i, path := range in.Fields {
		if seen[path] {
			v.Add(fmt.Sprintf("/fields/%d", i), "field %q is named twice", path)
		}
		seen[path] = true
		f, ok := ds.Field(path)
		if !ok {
			unknown = append(unknown, path)
			continue
		}
		if f.Classification == catalog.Sensitive || hasSensitiveDescendant(ds, path) {
			sensitive = true
		}
	}
	if len(unknown) > 0 {
		v.Add("/fields", "%s has no field %s", ds.Ref(), strings.Join(quoteAll(unknown), ", "))
	}
	if !purposeCodePattern.MatchString(in.Purpose.Code) {
		v.Add("/purpose/code", "a public-service procedure code such as 1.001234 is required")
	}
	if sensitive && strings.TrimSpace(in.LegalBasis.Reference) == "" {
		v.Add("/legalBasis/reference", "sensitive fields need a legal basis: name the legal document (e.g. Decree 13/2023/ND-CP art. 11)")
	}
	if d := in.LegalBasis.DiscloseAfter; d != nil {
		switch {
		case strings.TrimSpace(in.LegalBasis.Reference) == "":
			v.Add("/legalBasis/reference", "deferring disclosure to the data subject needs the legal document that allows it")
		case !d.After(in.ValidFrom) || !d.After(now):
			v.Add("/legalBasis/discloseAfter", "the disclosure date %s must lie after the period starts and in the future", d.UTC().Format(time.RFC3339))
		case !in.ValidUntil.IsZero() && d.After(in.ValidUntil.Add(catalog.MaxDisclosureDeferral)):
			v.Add("/legalBasis/discloseAfter", "the disclosure date may lie at most %d days after the period ends", int(catalog.MaxDisclosureDeferral.Hours()/24))
		}
	}
	maxPeriod := s.maxGrant
	if maxPeriod == 0 {
		maxPeriod = DefaultMaxGrantPeriod
	}
	switch {
	case in.ValidUntil.IsZero():
		v.Add("/validUntil", "an end of the period is required")
	case !in.ValidUntil.After(now):
		v.Add("/validUntil", "the period ends %s, in the past", in.ValidUntil.UTC().Format(time.RFC3339))
	case !in.ValidUntil.After(in.ValidFrom):
		v.Add("/validUntil", "the period must end after it starts (%s)", in.ValidFrom.UTC().Format(time.RFC3339))
	case in.ValidUntil.Sub(in.ValidFrom) > maxPeriod:
		v.Add("/validUntil", "the period is longer than the platform maximum of %d days", int(maxPeriod.Hours()/24))
	}
	if in.ValidFrom.Before(now.Add(-time.Minute)) {
		v.Add("/validFrom", "the period may not start in the past")
	}
	if len(in.Modes) == 0 {
		v.Add("/modes", "name at least one mode: query, verify or feed")
	}
	for i, m := range in.Modes {
		if !m.Valid() {
			v.Add(fmt.Sprintf("/modes/%d", i), "mode %q must be query, verify or feed", m)
		}
	}
	if rs := in.RowScope; rs != nil {
		f, ok := ds.Field(rs.Field)
		switch {
		case !ok:
			v.Add("/rowScope/field", "%s has no field %q to scope rows by", ds.Ref(), rs.Field)
		case f.Type == "object" || f.Type == "array" || f.Array:
			v.Add("/rowScope/field", "rows can only be scoped by a single-valued field; %q is %s", rs.Field, describeType(f))
		}
		if len(rs.Values) == 0 {
			v.Add("/rowScope/values", "name at least one allowed value")
		}
	}
	return v.Err()
}

func describeType(f catalog.Field) string {
	if f.Array && f.Type != "array" {
		return "inside an array"
	}
	return "an " + f.Type
}

func hasSensitiveDescendant(ds *catalog.Dataset, path string) bool {
	for _, f := range ds.Fields {
		if f.Classification == catalog.Sensitive && strings.HasPrefix(f.Path, path+".") {
			return true
		}
	}
	return false
}

func quoteAll(xs []string) []string {
	out := make([]string, len(xs))
	for i, x := range xs {
		out[i] = fmt.Sprintf("%q", x)
	}
	return out
}

// Approval is the provider's decision to grant: all or some of the requested
// fields, each with an optional mask. Empty Fields grants every requested
// field unmasked.
type Approval struct {
	Fields []catalog.GrantedField `json:"fields,omitempty"`
	Note   string                 `json:"note,omitempty"`
}

// Approve turns a pending request into a grant. Only an approver (or the
// member-admin) of the provider's member may approve, and only fields the
// consumer asked for (or narrower ones inside them) can be granted.
func (s *Service) Approve(ctx context.Context, p auth.Principal, requestID string, a Approval) (*catalog.Grant, error) {
	var grant *catalog.Grant
	err := s.store.Update(ctx, func(tx catalog.Tx) error {
		r, err := tx.GetAccessRequest(ctx, requestID)
		if err != nil {
			return err
		}
		if err := p.RequireRoleOf("approve an access request", memberOf(r.Provider), catalog.RoleApprover, catalog.RoleMemberAdmin); err != nil {
			return err
		}
		if r.State != catalog.RequestPending {
			return fmt.Errorf("%w: request %s is %s, not pending", catalog.ErrConflict, r.ID, r.State)
		}
		now := s.Now()
		if !now.Before(r.ValidUntil) {
			return fmt.Errorf("%w: request %s lapsed: its period ended %s", catalog.ErrConflict, r.ID, r.ValidUntil.Format(time.RFC3339))
		}
		ds, err := tx.GetDataset(ctx, r.Provider, r.Dataset, 0)
		if err != nil {
			return err
		}
		consumer, err := tx.GetSystem(ctx, r.Consumer)
		if err != nil {
			return err
		}
		if c := consumer.ConnectivityAt(now, ds.MinConsumerLevel); !c.Connectable {
			return fmt.Errorf("%w: consumer %s cannot be granted %s: %s (not secure, not connected)", catalog.ErrForbidden, r.Consumer, ds.Ref(), c.Reason)
		}
		fields := a.Fields
		if len(fields) == 0 {
			for _, f := range r.Fields {
				fields = append(fields, catalog.GrantedField{Path: f})
			}
		}
		if err := validateApproval(r, ds, fields); err != nil {
			return err
		}
		g := &catalog.Grant{
			ID: catalog.NewID("grt"), RequestID: r.ID, Consumer: r.Consumer, Provider: r.Provider, Dataset: r.Dataset,
			Fields: fields, Purposes: []catalog.Purpose{r.Purpose}, LegalBasis: r.LegalBasis, Modes: r.Modes,
			RowScope: r.RowScope, ValidFrom: r.ValidFrom, ValidUntil: r.ValidUntil, State: catalog.GrantActive,
			ApprovedBy: p.Actor(), CreatedAt: now,
			History: []catalog.RequestEvent{s.event(p, "granted", approvalDetail(r, fields, a.Note))},
		}
		if err := tx.CreateGrant(ctx, g); err != nil {
			return err
		}
		before := *r
		r.State, r.Approved, r.GrantID, r.UpdatedAt = catalog.RequestApproved, fields, g.ID, now
		r.History = append(slices.Clone(r.History), s.event(p, "approved", approvalDetail(r, fields, a.Note)))
		if err := tx.UpdateAccessRequest(ctx, r); err != nil {
			return err
		}
		grant = g
		return s.record(ctx, tx, p, change{action: "access.approve", object: r.ID, member: memberOf(r.Provider), before: before, after: g})
	})
	if err != nil {
		return nil, fmt.Errorf("approve request %s: %w", requestID, err)
	}
	return grant, nil
}

func approvalDetail(r *catalog.AccessRequest, fields []catalog.GrantedField, note string) string {
	masked := 0
	for _, f := range fields {
		if f.Mask != catalog.MaskNone {
			masked++
		}
	}
	d := fmt.Sprintf("%d of %d requested fields granted, %d masked", len(fields), len(r.Fields), masked)
	if note != "" {
		d += ": " + note
	}
	return d
}

// validateApproval checks that every granted field was asked for (itself or
// an object containing it), exists, and carries a mask that fits it.
func validateApproval(r *catalog.AccessRequest, ds *catalog.Dataset, fields []catalog.GrantedField) error {
	v := &catalog.ValidationError{What: "approval"}
	seen := map[string]bool{}
	for i, gf := range fields {
		at := fmt.Sprintf("/fields/%d", i)
		f, ok := ds.Field(gf.Path)
		if !ok {
			v.Add(at+"/path", "%s has no field %q", ds.Ref(), gf.Path)
			continue
		}
		if !requested(r.Fields, gf.Path) {
			v.Add(at+"/path", "field %q was not requested; an approval may grant fewer fields than asked, never more", gf.Path)
		}
		if seen[gf.Path] {
			v.Add(at+"/path", "field %q is granted twice", gf.Path)
		}
		seen[gf.Path] = true
		if !gf.Mask.Valid() {
			v.Add(at+"/mask", "mask %q must be hash, partial or nullify (or none)", gf.Mask)
		} else if gf.Mask != catalog.MaskNone && (f.Type == "object" || f.Type == "array") {
			v.Add(at+"/mask", "masks apply to single values; %q is an %s, so grant and mask its fields one by one", gf.Path, f.Type)
		}
	}
	return v.Err()
}

// requested reports whether path, or an object containing it, was requested.
func requested(asked []string, path string) bool {
	for _, a := range asked {
		if path == a || strings.HasPrefix(path, a+".") {
			return true
		}
	}
	return false
}

// Refuse closes a pending request with a written reason, which the law
// requires of a refusal.
func (s *Service) Refuse(ctx context.Context, p auth.Principal, requestID, reason string) (*catalog.AccessRequest, error) {
	if strings.TrimSpace(reason) == "" {
		return nil, catalog.Invalid("refusal", "/reason", "a refusal needs a written reason (and the legal basis for it)")
	}
	return s.closeRequest(ctx, p, requestID, catalog.RequestRefused, reason, "refuse an access request", func(r *catalog.AccessRequest) error {
		return p.RequireRoleOf("refuse an access request", memberOf(r.Provider), catalog.RoleApprover, catalog.RoleMemberAdmin)
	})
}

// Withdraw lets the consumer take back its own pending request.
func (s *Service) Withdraw(ctx context.Context, p auth.Principal, requestID, reason string) (*catalog.AccessRequest, error) {
	return s.closeRequest(ctx, p, requestID, catalog.RequestWithdrawn, reason, "withdraw an access request", func(r *catalog.AccessRequest) error {
		return p.RequireRoleOf("withdraw an access request", memberOf(r.Consumer), catalog.RoleIntegrator, catalog.RoleMemberAdmin)
	})
}

func (s *Service) closeRequest(ctx context.Context, p auth.Principal, id string, to catalog.RequestState, reason, what string, allowed func(*catalog.AccessRequest) error) (*catalog.AccessRequest, error) {
	var out *catalog.AccessRequest
	err := s.store.Update(ctx, func(tx catalog.Tx) error {
		r, err := tx.GetAccessRequest(ctx, id)
		if err != nil {
			return err
		}
		if err := allowed(r); err != nil {
			return err
		}
		if r.State != catalog.RequestPending {
			return fmt.Errorf("%w: request %s is %s, not pending", catalog.ErrConflict, r.ID, r.State)
		}
		before := *r
		r.State, r.Reason, r.UpdatedAt = to, reason, s.Now()
		r.History = append(slices.Clone(r.History), s.event(p, string(to), reason))
		if err := tx.UpdateAccessRequest(ctx, r); err != nil {
			return err
		}
		out = r
		member := memberOf(r.Provider)
		if to == catalog.RequestWithdrawn {
			member = memberOf(r.Consumer)
		}
		return s.record(ctx, tx, p, change{action: "access." + string(to), object: r.ID, member: member, before: before, after: r})
	})
	if err != nil {
		return nil, fmt.Errorf("%s %s: %w", what, id, err)
	}
	return out, nil
}

// RevokeGrant ends a grant before its time. The next policy bundle no longer
// carries it, so gateways deny from their next configuration pull.
func (s *Service) RevokeGrant(ctx context.Context, p auth.Principal, grantID, reason string) (*catalog.Grant, error) {
	if strings.TrimSpace(reason) == "" {
		return nil, catalog.Invalid("revocation", "/reason", "a revocation needs a written reason")
	}
	var out *catalog.Grant
	err := s.store.Update(ctx, func(tx catalog.Tx) error {
		g, err := tx.GetGrant(ctx, grantID)
		if err != nil {
			return err
		}
		if err := p.RequireRoleOf("revoke a grant", memberOf(g.Provider), catalog.RoleApprover, catalog.RoleMemberAdmin); err != nil {
			return err
		}
		if g.State == catalog.GrantRevoked {
			return fmt.Errorf("%w: grant %s is already revoked", catalog.ErrConflict, g.ID)
		}
		before := *g
		now := s.Now()
		g.State, g.RevokedAt, g.RevokeReason = catalog.GrantRevoked, &now, reason
		g.History = append(slices.Clone(g.History), s.event(p, "revoked", reason))
		if err := tx.UpdateGrant(ctx, g); err != nil {
			return err
		}
		out = g
		return s.record(ctx, tx, p, change{action: "grant.revoke", object: g.ID, member: memberOf(g.Provider), before: before, after: g})
	})
	if err != nil {
		return nil, fmt.Errorf("revoke grant %s: %w", grantID, err)
	}
	return out, nil
}

// GrantView is a grant with its effective state at the time of the answer:
// expiry is computed, never stored.
type GrantView struct {
	catalog.Grant
	EffectiveState catalog.GrantState `json:"effectiveState"`
}

// View adds the effective state now.
func (s *Service) View(g catalog.Grant) GrantView {
	return GrantView{Grant: g, EffectiveState: g.StateAt(s.Now())}
}

// AccessRequests lists requests the caller may see: those where its member is
// consumer or provider (all for platform-admin).
func (s *Service) AccessRequests(ctx context.Context, p auth.Principal, f catalog.AccessRequestFilter) ([]catalog.AccessRequest, error) {
	f.Member = scopeMember(p, f.Member)
	return s.store.ListAccessRequests(ctx, f)
}

// AccessRequest shows one request if the caller's member is a party to it.
func (s *Service) AccessRequest(ctx context.Context, p auth.Principal, id string) (*catalog.AccessRequest, error) {
	r, err := s.store.GetAccessRequest(ctx, id)
	if err != nil {
		return nil, fmt.Errorf("access request %s: %w", id, err)
	}
	if !party(p, r.Consumer, r.Provider) {
		return nil, fmt.Errorf("access request %s: %w", id, catalog.ErrNotFound)
	}
	return r, nil
}

// Grants lists grants the caller may see.
func (s *Service) Grants(ctx context.Context, p auth.Principal, f catalog.GrantFilter) ([]catalog.Grant, error) {
	f.Member = scopeMember(p, f.Member)
	return s.store.ListGrants(ctx, f)
}

// Grant shows one grant if the caller's member is a party to it.
func (s *Service) Grant(ctx context.Context, p auth.Principal, id string) (*catalog.Grant, error) {
	g, err := s.store.GetGrant(ctx, id)
	if err != nil {
		return nil, fmt.Errorf("grant %s: %w", id, err)
	}
	if !party(p, g.Consumer, g.Provider) {
		return nil, fmt.Errorf("grant %s: %w", id, catalog.ErrNotFound)
	}
	return g, nil
}

// scopeMember forces a non-admin's listing to its own member.
func scopeMember(p auth.Principal, asked string) string {
	if p.IsPlatformAdmin() {
		return asked
	}
	return p.Member
}

// party reports whether p may see an exchange agreement between consumer and
// provider. Others get "not found", so ids of other agencies' requests leak nothing.
func party(p auth.Principal, consumer, provider string) bool {
	return p.IsPlatformAdmin() || memberOf(consumer) == p.Member || memberOf(provider) == p.Member
}
