package client

import (
	"context"
	"net/http"
	"net/url"

	"github.com/lienthong/lienthong/controlplane/service"
	"github.com/lienthong/lienthong/policies"
)

// Explain asks what the current policy decides for one exchange.
func (c *Client) Explain(ctx context.Context, in service.ExplainInput) (*policies.Decision, error) {
	var d policies.Decision
	return &d, c.Do(ctx, http.MethodPost, "/v1/policy/explain", in, &d)
}

// AgencyModule is a provider's own policy module as the API shows it.
type AgencyModule struct {
	Provider  string `json:"provider"`
	Source    string `json:"source"`
	Digest    string `json:"digest"`
	UpdatedAt string `json:"updatedAt"`
	UpdatedBy string `json:"updatedBy"`
}

func policyPath(provider string) string { return "/v1/systems/" + url.PathEscape(provider) + "/policy" }

// PutAgencyModule uploads a provider's module.
func (c *Client) PutAgencyModule(ctx context.Context, provider, source string) (*AgencyModule, error) {
	var m AgencyModule
	return &m, c.Do(ctx, http.MethodPut, policyPath(provider), map[string]string{"source": source}, &m)
}

// GetAgencyModule reads a provider's module.
func (c *Client) GetAgencyModule(ctx context.Context, provider string) (*AgencyModule, error) {
	var m AgencyModule
	return &m, c.Do(ctx, http.MethodGet, policyPath(provider), nil, &m)
}

// DeleteAgencyModule removes a provider's module.
func (c *Client) DeleteAgencyModule(ctx context.Context, provider string) error {
	return c.Do(ctx, http.MethodDelete, policyPath(provider), nil, nil)
}

// PolicyBundle downloads the signed bundle of the current revision.
func (c *Client) PolicyBundle(ctx context.Context) ([]byte, error) {
	var b []byte
	return b, c.Do(ctx, http.MethodGet, "/v1/policy/bundle", nil, &b)
}

// PolicyBundleIfChanged downloads the bundle unless its ETag still matches
// etag, in which case notModified is true and nothing is transferred.
func (c *Client) PolicyBundleIfChanged(ctx context.Context, etag string) (archive []byte, newETag string, notModified bool, err error) {
	return c.pull().Bundle(ctx, etag)
}

// DatasetDocument fetches a dataset version's OpenAPI document as published.
func (c *Client) DatasetDocument(ctx context.Context, system, code string, version int) ([]byte, error) {
	var b []byte
	return b, c.Do(ctx, http.MethodGet, datasetPath(system, code)+"/document"+versionQuery(version), nil, &b)
}
