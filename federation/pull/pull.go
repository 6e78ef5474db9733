// Package pull is a data-plane node's side of the federation API: how a
// gateway (and later Envoy's node agent and the feed router) fetches its
// share of configuration, policy bundle and dataset documents from the
// control plane, and renews its certificate. The node authenticates with its
// certificate, set in the http.Client's TLS configuration; it holds no token.
//
// Every signature is checked here, with federation.Verify, before anything
// is returned: a caller never sees an unverified configuration. The package
// depends on federation and net/http only, so the data plane depends on no
// part of the control plane.
package pull

import (
	"bytes"
	"context"
	"crypto"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"time"

	"github.com/lienthong/lienthong/federation"
	"github.com/lienthong/lienthong/internal/problem"
)

// Limits of what the control plane may send.
const (
	maxConfig   = 32 << 20
	maxBundle   = 512 << 20
	maxDocument = 2*4<<20 + 64<<10
	maxSmall    = 1 << 20
)

// Client pulls from one control plane.
type Client struct {
	base  string
	http  *http.Client
	token string
}

// New returns a client for baseURL (https://host:port) over hc, whose TLS
// configuration presents the node's certificate and pins the control plane.
func New(baseURL string, hc *http.Client) *Client {
	return &Client{base: strings.TrimRight(baseURL, "/"), http: hc}
}

// WithBearerToken returns a copy that sends a bearer token: for people and
// tools (the CLI) pulling a member's share. Gateways never use it.
func (c *Client) WithBearerToken(token string) *Client {
	cp := *c
	cp.token = token
	return &cp
}

// HTTPClient is the client's transport, carrying the gateway's certificate,
// for the other calls a gateway makes to the control plane with the same
// identity (such as shipping its audit log).
func (c *Client) HTTPClient() *http.Client { return c.http }

// CloseIdleConnections closes kept-alive connections, so the next request
// makes a handshake with the certificate the node holds now.
func (c *Client) CloseIdleConnections() { c.http.CloseIdleConnections() }

// get sends a GET with an optional If-None-Match and returns the response
// and its body, read up to limit.
func (c *Client) get(ctx context.Context, path, etag string, limit int64) (*http.Response, []byte, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, c.base+path, nil)
	if err != nil {
		return nil, nil, err
	}
	if etag != "" {
		req.Header.Set("If-None-Match", etag)
	}
	return c.send(req, limit)
}

func (c *Client) send(req *http.Request, limit int64) (*http.Response, []byte, error) {
	if c.token != "" {
		req.Header.Set("Authorization", "Bearer "+c.token)
	}
	resp, err := c.http.Do(req)
	if err != nil {
		return nil, nil, err
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(io.LimitReader(resp.Body, limit+1))
	if err != nil {
		return nil, nil, err
	}
	if int64(len(body)) > limit {
		return nil, nil, fmt.Errorf("the answer exceeds %d bytes", limit)
	}
	return resp, body, nil
}

// VerificationKey fetches the key id and PEM public key that sign
// configuration and bundles. The caller pins it: only the first fetch (over
// the pinned management TLS connection) is trusted.
func (c *Client) VerificationKey(ctx context.Context) (keyID string, publicKeyPEM []byte, err error) {
	resp, body, err := c.get(ctx, "/v1/policy/verification-key", "", maxSmall)
	if err != nil {
		return "", nil, fmt.Errorf("verification key: %w", err)
	}
	if resp.StatusCode != http.StatusOK {
		return "", nil, problem.Read(resp, body)
	}
	var vk struct {
		KeyID        string `json:"keyId"`
		PublicKeyPem string `json:"publicKeyPem"`
	}
	if err := json.Unmarshal(body, &vk); err != nil {
		return "", nil, fmt.Errorf("verification key: %w", err)
	}
	return vk.KeyID, []byte(vk.PublicKeyPem), nil
}

// Config fetches the signed configuration of the node's member unless etag
// names its current content; then the answer is NotModified, with the
// control plane's signed statement that the content is current at FreshAt.
// Either signature is verified with the key before anything is returned,
// and the ETag is the one the signed body names, whatever the header says.
func (c *Client) Config(ctx context.Context, keyID string, key crypto.PublicKey, etag string) (*federation.Signed, error) {
	return c.ConfigOf(ctx, "", keyID, key, etag)
}

// ConfigOf is Config for the share of member (the operator's view; "" for
// the caller's own).
func (c *Client) ConfigOf(ctx context.Context, member, keyID string, key crypto.PublicKey, etag string) (*federation.Signed, error) {
	path := "/v1/gateway-config"
	if member != "" {
		path += "?member=" + url.QueryEscape(member)
	}
	resp, body, err := c.get(ctx, path, etag, maxConfig)
	if err != nil {
		return nil, fmt.Errorf("gateway config: %w", err)
	}
	out := &federation.Signed{ETag: resp.Header.Get("ETag"), Signature: resp.Header.Get("X-LT-Signature")}
	switch resp.StatusCode {
	case http.StatusOK:
		cfg, err := federation.VerifyConfig(keyID, key, body, out.Signature)
		if err != nil {
			return nil, fmt.Errorf("gateway config: %w", err)
		}
		out.Body, out.ETag = body, cfg.ETag()
		return out, nil
	case http.StatusNotModified:
		out.NotModified = true
		if etag == "" || out.ETag != etag {
			return nil, fmt.Errorf("gateway config: not modified, but for ETag %s, not %s", out.ETag, etag)
		}
		if out.FreshAt, err = time.Parse(time.RFC3339Nano, resp.Header.Get("X-LT-Fresh-At")); err != nil {
			return nil, fmt.Errorf("gateway config: not modified without a valid X-LT-Fresh-At: %w", err)
		}
		if err := federation.Verify(keyID, key, federation.FreshnessMessage(out.ETag, out.FreshAt), out.Signature); err != nil {
			return nil, fmt.Errorf("gateway config freshness: %w", err)
		}
		return out, nil
	}
	return nil, problem.Read(resp, body)
}

// Bundle downloads the node's share of the signed policy bundle unless its
// ETag still matches etag (then notModified, and nothing is transferred).
// The caller verifies the archive (policies.LoadBundle).
func (c *Client) Bundle(ctx context.Context, etag string) (archive []byte, newETag string, notModified bool, err error) {
	resp, body, err := c.get(ctx, "/v1/policy/bundle", etag, maxBundle)
	if err != nil {
		return nil, "", false, fmt.Errorf("policy bundle: %w", err)
	}
	switch resp.StatusCode {
	case http.StatusNotModified:
		return nil, etag, true, nil
	case http.StatusOK:
		return body, resp.Header.Get("ETag"), false, nil
	}
	return nil, "", false, problem.Read(resp, body)
}

// Document fetches a dataset version's document as published (version 0:
// the latest). The caller checks it against the digest its signed
// configuration names.
func (c *Client) Document(ctx context.Context, system, code string, version int) ([]byte, error) {
	path := "/v1/datasets/" + url.PathEscape(system) + "/" + url.PathEscape(code) + "/document"
	if version > 0 {
		path += "?version=" + strconv.Itoa(version)
	}
	resp, body, err := c.get(ctx, path, "", maxDocument)
	if err != nil {
		return nil, fmt.Errorf("dataset document: %w", err)
	}
	if resp.StatusCode != http.StatusOK {
		return nil, problem.Read(resp, body)
	}
	return body, nil
}

// Renewed is what a renewal returns: the chain to present (leaf first) and
// the roots to trust now.
type Renewed struct {
	ChainPEM       string `json:"chainPem"`
	TrustBundlePEM string `json:"trustBundlePem"`
}

// Renew sends a certificate request (PEM) for the node's own system; the
// control plane signs it while the system's assessment is current, and only
// for the system the presented certificate names.
func (c *Client) Renew(ctx context.Context, system string, csrPEM []byte) (*Renewed, error) {
	raw, err := json.Marshal(map[string]string{"csr": string(csrPEM)})
	if err != nil {
		return nil, err
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, c.base+"/v1/systems/"+url.PathEscape(system)+"/certificates", bytes.NewReader(raw))
	if err != nil {
		return nil, err
	}
	req.Header.Set("Content-Type", "application/json")
	resp, body, err := c.send(req, maxSmall)
	if err != nil {
		return nil, fmt.Errorf("renew certificate: %w", err)
	}
	if resp.StatusCode != http.StatusCreated {
		return nil, problem.Read(resp, body)
	}
	var out Renewed
	if err := json.Unmarshal(body, &out); err != nil {
		return nil, fmt.Errorf("renew certificate: %w", err)
	}
	return &out, nil
}
