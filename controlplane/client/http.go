package client

import "net/http"

// HTTPClient returns the client's transport (its TLS trust and, once
// gateways use mTLS, their identity), for callers of control plane APIs
// that live below this package, such as the audit shipper.
func (c *Client) HTTPClient() *http.Client { return c.http }

// Token returns the bearer token the client sends, "" if none.
func (c *Client) Token() string { return c.token }
