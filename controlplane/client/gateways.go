package client

import (
	"context"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"time"

	"github.com/lienthong/lienthong/catalog"
	"github.com/lienthong/lienthong/federation"
	"github.com/lienthong/lienthong/internal/problem"
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
// gateway unless etag names its current content; then the answer is
// NotModified, with the control plane's signed statement that the content is
// current at FreshAt. Either signature is verified with key before anything
// is returned.
func (c *Client) GatewayConfigIfChanged(ctx context.Context, key policies.VerificationKey, etag string) (*federation.Signed, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, c.base+"/v1/gateway-config", nil)
	if err != nil {
		return nil, err
	}
	if c.token != "" {
		req.Header.Set("Authorization", "Bearer "+c.token)
	}
	if etag != "" {
		req.Header.Set("If-None-Match", etag)
	}
	resp, err := c.http.Do(req)
	if err != nil {
		return nil, fmt.Errorf("gateway config: %w", err)
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(io.LimitReader(resp.Body, 32<<20))
	if err != nil {
		return nil, fmt.Errorf("gateway config: %w", err)
	}
	out := &federation.Signed{ETag: resp.Header.Get("ETag"), Signature: resp.Header.Get("X-LT-Signature")}
	switch resp.StatusCode {
	case http.StatusOK:
		out.Body = body
		// The ETag is the one the signed body names, whatever the header
		// says: it is what later not-modified statements are bound to.
		cfg, err := federation.VerifyConfig(key.KeyID, key.Key, body, out.Signature)
		if err != nil {
			return nil, fmt.Errorf("gateway config: %w", err)
		}
		out.ETag = cfg.ETag()
		return out, nil
	case http.StatusNotModified:
		out.NotModified = true
		if etag == "" || out.ETag != etag {
			return nil, fmt.Errorf("gateway config: not modified, but for ETag %s, not %s", out.ETag, etag)
		}
		if out.FreshAt, err = time.Parse(time.RFC3339Nano, resp.Header.Get("X-LT-Fresh-At")); err != nil {
			return nil, fmt.Errorf("gateway config: not modified without a valid X-LT-Fresh-At: %w", err)
		}
		if err := federation.Verify(key.KeyID, key.Key, federation.FreshnessMessage(out.ETag, out.FreshAt), out.Signature); err != nil {
			return nil, fmt.Errorf("gateway config freshness: %w", err)
		}
		return out, nil
	}
	return nil, problem.Read(resp, body)
}
