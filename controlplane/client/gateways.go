package client

import (
	"context"
	"net/http"
	"net/url"

	"github.com/lienthong/lienthong/catalog"
	"github.com/lienthong/lienthong/federation"
	"github.com/lienthong/lienthong/federation/pull"
	"github.com/lienthong/lienthong/policies"
)

// RegisterGateway records a member's gateway address and identity system.
func (c *Client) RegisterGateway(ctx context.Context, member, system, address string) (*catalog.Gateway, error) {
	var g catalog.Gateway
	body := map[string]string{"system": system, "address": address}
	return &g, c.Do(ctx, http.MethodPut, "/v1/gateways/"+url.PathEscape(member), body, &g)
}

// Gateways lists registered gateways.
func (c *Client) Gateways(ctx context.Context) ([]catalog.Gateway, error) {
	return getList[catalog.Gateway](ctx, c, "/v1/gateways")
}

// VerificationKey fetches the key that signs bundles and gateway configuration.
func (c *Client) VerificationKey(ctx context.Context) (policies.VerificationKey, error) {
	var vk struct {
		KeyID        string `json:"keyId"`
		PublicKeyPem string `json:"publicKeyPem"`
	}
	if err := c.Do(ctx, http.MethodGet, "/v1/policy/verification-key", nil, &vk); err != nil {
		return policies.VerificationKey{}, err
	}
	return policies.VerificationKeyFromPEM(vk.KeyID, []byte(vk.PublicKeyPem))
}

// ErrBadSignature means a signed document did not verify (the same error
// as federation.ErrBadSignature).
var ErrBadSignature = federation.ErrBadSignature

// GatewayConfig fetches the signed gateway configuration and returns its
// body only after the signature verifies with key.
func (c *Client) GatewayConfig(ctx context.Context, key policies.VerificationKey) ([]byte, error) {
	cfg, err := c.GatewayConfigIfChanged(ctx, key, "")
	if err != nil {
		return nil, err
	}
	return cfg.Body, nil
}

// GatewayConfigIfChanged fetches the signed configuration of the caller's
// member unless etag names its current content; then the answer is
// NotModified, with the control plane's signed statement that the content is
// current at FreshAt. Either signature is verified with key before anything
// is returned (federation/pull does it, for gateways and this client alike).
func (c *Client) GatewayConfigIfChanged(ctx context.Context, key policies.VerificationKey, etag string) (*federation.Signed, error) {
	return c.pull().Config(ctx, key.KeyID, key.Key, etag)
}

// pull is the data-plane client over this client's connection and token.
func (c *Client) pull() *pull.Client {
	return pull.New(c.base, c.http).WithBearerToken(c.token)
}
