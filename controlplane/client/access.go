package client

import (
	"context"
	"net/http"
	"net/url"

	"github.com/lienthong/lienthong/catalog"
	"github.com/lienthong/lienthong/controlplane/service"
)

// Grant is a grant with its effective state, as the API shows it.
type Grant = service.GrantView

// RequestAccess files an access request.
func (c *Client) RequestAccess(ctx context.Context, in service.AccessRequestInput) (*catalog.AccessRequest, error) {
	var out catalog.AccessRequest
	return &out, c.Do(ctx, http.MethodPost, "/v1/access-requests", in, &out)
}

// AccessRequests lists requests visible to the token.
func (c *Client) AccessRequests(ctx context.Context, f catalog.AccessRequestFilter) ([]catalog.AccessRequest, error) {
	return getList[catalog.AccessRequest](ctx, c, "/v1/access-requests"+query("member", f.Member, "consumer", f.Consumer, "provider", f.Provider, "state", string(f.State)))
}

// AccessRequest shows one request.
func (c *Client) AccessRequest(ctx context.Context, id string) (*catalog.AccessRequest, error) {
	var out catalog.AccessRequest
	return &out, c.Do(ctx, http.MethodGet, "/v1/access-requests/"+url.PathEscape(id), nil, &out)
}

// Approve grants all or some requested fields.
func (c *Client) Approve(ctx context.Context, id string, a service.Approval) (*Grant, error) {
	var out Grant
	return &out, c.Do(ctx, http.MethodPost, "/v1/access-requests/"+url.PathEscape(id)+"/approve", a, &out)
}

type reason struct {
	Reason string `json:"reason"`
}

// Refuse refuses a pending request with a written reason.
func (c *Client) Refuse(ctx context.Context, id, why string) (*catalog.AccessRequest, error) {
	var out catalog.AccessRequest
	return &out, c.Do(ctx, http.MethodPost, "/v1/access-requests/"+url.PathEscape(id)+"/refuse", reason{why}, &out)
}

// Withdraw withdraws a pending request.
func (c *Client) Withdraw(ctx context.Context, id, why string) (*catalog.AccessRequest, error) {
	var out catalog.AccessRequest
	return &out, c.Do(ctx, http.MethodPost, "/v1/access-requests/"+url.PathEscape(id)+"/withdraw", reason{why}, &out)
}

// Grants lists grants visible to the token.
func (c *Client) Grants(ctx context.Context, f catalog.GrantFilter) ([]Grant, error) {
	return getList[Grant](ctx, c, "/v1/grants"+query("member", f.Member, "consumer", f.Consumer, "provider", f.Provider, "dataset", f.Dataset, "state", string(f.State)))
}

// Grant shows one grant.
func (c *Client) Grant(ctx context.Context, id string) (*Grant, error) {
	var out Grant
	return &out, c.Do(ctx, http.MethodGet, "/v1/grants/"+url.PathEscape(id), nil, &out)
}

// RevokeGrant revokes a grant with a reason.
func (c *Client) RevokeGrant(ctx context.Context, id, why string) (*Grant, error) {
	var out Grant
	return &out, c.Do(ctx, http.MethodPost, "/v1/grants/"+url.PathEscape(id)+"/revoke", reason{why}, &out)
}
