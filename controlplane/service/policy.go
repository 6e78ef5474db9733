package service

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"

	"github.com/lienthong/lienthong/catalog"
	"github.com/lienthong/lienthong/controlplane/auth"
	"github.com/lienthong/lienthong/controlplane/bundles"
	"github.com/lienthong/lienthong/policies"
)

// WithPolicySigningKey enables signed policy bundles (and the explanation of
// decisions, which uses the same snapshot).
func WithPolicySigningKey(key policies.SigningKey) Option {
	return func(s *Service) { s.bundleKey = &key }
}

var errNoBundles = errors.New("policy bundles are not configured on this control plane")

// PolicyBundle returns the signed bundle of the current catalog revision.
func (s *Service) PolicyBundle(ctx context.Context) (*bundles.Bundle, error) {
	if s.bundles == nil {
		return nil, errNoBundles
	}
	return s.bundles.Current(ctx)
}

// PolicyBundleFor returns the bundle the caller may pull: a gateway (by its
// certificate) or its member's admin gets its member's share
// (bundles.ForMember) and is refused any other member's; the operator gets
// the whole bundle, or a member's share when member is given.
func (s *Service) PolicyBundleFor(ctx context.Context, p auth.Principal, member string) (*bundles.Bundle, error) {
	member, err := shareOf(p, "pull the policy bundle", member)
	if err != nil {
		return nil, err
	}
	if s.bundles == nil {
		return nil, errNoBundles
	}
	if member == "" {
		return s.bundles.Current(ctx)
	}
	return s.bundles.ForMember(ctx, member)
}

// PolicyVerificationKey returns the key id and PEM public key gateways verify
// bundles with.
func (s *Service) PolicyVerificationKey() (string, []byte, error) {
	if s.bundleKey == nil {
		return "", nil, errNoBundles
	}
	pem, err := policies.PublicKeyPEM(s.bundleKey.Key.Public())
	return s.bundleKey.KeyID, pem, err
}

// ExplainInput asks what the policy would decide for one exchange.
type ExplainInput struct {
	Consumer string       `json:"consumer"`
	Provider string       `json:"provider"`
	Dataset  string       `json:"dataset"`
	Purpose  string       `json:"purpose"`
	Fields   []string     `json:"fields,omitempty"`
	Mode     catalog.Mode `json:"mode,omitempty"`
}

// Explain evaluates the current policy revision for one exchange, exactly as
// a gateway holding that revision would. Parties to the exchange (consumer or
// provider member) and the platform operator may ask.
func (s *Service) Explain(ctx context.Context, p auth.Principal, in ExplainInput) (*policies.Decision, error) {
	if !party(p, in.Consumer, in.Provider) {
		return nil, fmt.Errorf("%w: token %s acts for member %s, which is neither consumer nor provider of this exchange", catalog.ErrForbidden, p.TokenID, p.Member)
	}
	v := &catalog.ValidationError{What: "explanation request"}
	if _, err := catalog.ParseSystemID(in.Consumer); err != nil {
		v.Add("/consumer", "%v", err)
	}
	if _, err := catalog.ParseSystemID(in.Provider); err != nil {
		v.Add("/provider", "%v", err)
	}
	if in.Dataset == "" {
		v.Add("/dataset", "the dataset code is required")
	}
	if in.Mode == "" {
		in.Mode = catalog.ModeQuery
	}
	if !in.Mode.Valid() {
		v.Add("/mode", "mode %q must be query, verify or feed", in.Mode)
	}
	if err := v.Err(); err != nil {
		return nil, err
	}
	b, err := s.PolicyBundle(ctx)
	if err != nil {
		return nil, err
	}
	d, err := b.Engine.Decide(ctx, policies.Input{
		Consumer: policies.Consumer{ID: in.Consumer}, Provider: in.Provider, Dataset: in.Dataset,
		Fields: in.Fields, Mode: in.Mode, Purpose: in.Purpose, Time: s.Now(),
	})
	if err != nil {
		return nil, fmt.Errorf("explain: %w", err)
	}
	return &d, nil
}

// SetAgencyModule stores a provider's own Rego module after checking that it
// compiles and stays inside its namespace. It can only narrow decisions: the
// engine intersects it with the base decision.
func (s *Service) SetAgencyModule(ctx context.Context, p auth.Principal, provider string, src []byte) (*catalog.AgencyModule, error) {
	member := memberOf(provider)
	if member == "" {
		return nil, catalog.Invalid("policy module", "/provider", "%q is not a system id", provider)
	}
	if err := p.RequireMemberAdmin("upload a policy module", member); err != nil {
		return nil, err
	}
	if err := policies.CompileAgencyModule(provider, src); err != nil {
		var me *policies.ModuleError
		if errors.As(err, &me) {
			return nil, catalog.Invalid("policy module", "/source", "line %d, column %d: %s", me.Line, me.Column, me.Message)
		}
		return nil, catalog.Invalid("policy module", "/source", "%v", err)
	}
	sum := sha256.Sum256(src)
	m := &catalog.AgencyModule{Provider: provider, Source: src, Digest: hex.EncodeToString(sum[:]), UpdatedAt: s.Now(), UpdatedBy: p.Actor()}
	err := s.store.Update(ctx, func(tx catalog.Tx) error {
		if _, err := tx.GetSystem(ctx, provider); err != nil {
			return err
		}
		before, err := tx.GetAgencyModule(ctx, provider)
		if err != nil && !errors.Is(err, catalog.ErrNotFound) {
			return err
		}
		if err := tx.PutAgencyModule(ctx, m); err != nil {
			return err
		}
		summary := func(x *catalog.AgencyModule) any {
			if x == nil {
				return nil
			}
			return map[string]any{"digest": x.Digest, "bytes": len(x.Source)}
		}
		return s.record(ctx, tx, p, change{action: "policy.module.put", object: provider, member: member, before: summary(before), after: summary(m)})
	})
	if err != nil {
		return nil, fmt.Errorf("set policy module of %s: %w", provider, err)
	}
	return m, nil
}

// AgencyModule returns a provider's module; modules are visible to every
// authenticated caller, since consumers must be able to see what narrows them.
func (s *Service) AgencyModule(ctx context.Context, provider string) (*catalog.AgencyModule, error) {
	m, err := s.store.GetAgencyModule(ctx, provider)
	if err != nil {
		return nil, fmt.Errorf("policy module of %s: %w", provider, err)
	}
	return m, nil
}

// DeleteAgencyModule removes a provider's module.
func (s *Service) DeleteAgencyModule(ctx context.Context, p auth.Principal, provider string) error {
	member := memberOf(provider)
	if err := p.RequireMemberAdmin("remove a policy module", member); err != nil {
		return err
	}
	err := s.store.Update(ctx, func(tx catalog.Tx) error {
		before, err := tx.GetAgencyModule(ctx, provider)
		if err != nil {
			return err
		}
		if err := tx.DeleteAgencyModule(ctx, provider); err != nil {
			return err
		}
		return s.record(ctx, tx, p, change{action: "policy.module.delete", object: provider, member: member, before: map[string]any{"digest": before.Digest}})
	})
	if err != nil {
		return fmt.Errorf("delete policy module of %s: %w", provider, err)
	}
	return nil
}
