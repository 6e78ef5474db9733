// Package client is the Go client of the management API, used by the
// lienthong CLI and by tests. Errors from the server come back as
// *problem.Problem, so callers see the server's exact complaint.
package client

import (
	"bytes"
	"context"
	"crypto/tls"
	"crypto/x509"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"os"
	"strconv"
	"strings"
	"time"

	"github.com/lienthong/lienthong/catalog"
	"github.com/lienthong/lienthong/controlplane/service"
	"github.com/lienthong/lienthong/internal/problem"
)

// Client talks to one control plane with one token. (Gateways, which hold
// none, use federation/pull with their certificate.)
type Client struct {
	base  string
	token string
	http  *http.Client
}

// New returns a client for baseURL (https://host:port). caFile, when set,
// is the only CA trusted for the server's certificate.
func New(baseURL, token, caFile string) (*Client, error) {
	tlsCfg := &tls.Config{MinVersion: tls.VersionTLS12}
	if caFile != "" {
		pem, err := os.ReadFile(caFile)
		if err != nil {
			return nil, fmt.Errorf("read CA file: %w", err)
		}
		pool := x509.NewCertPool()
		if !pool.AppendCertsFromPEM(pem) {
			return nil, fmt.Errorf("CA file %s holds no PEM certificate", caFile)
		}
		tlsCfg.RootCAs = pool
	}
	return NewWithHTTP(baseURL, token, &http.Client{
		Timeout:   60 * time.Second,
		Transport: &http.Transport{TLSClientConfig: tlsCfg, Proxy: nil, MaxIdleConnsPerHost: 4},
	}), nil
}

// NewWithHTTP returns a client using hc, for tests that wrap the transport.
func NewWithHTTP(baseURL, token string, hc *http.Client) *Client {
	return &Client{base: strings.TrimRight(baseURL, "/"), token: token, http: hc}
}

// Do sends a JSON request and decodes a JSON answer into out (when non-nil).
// A non-2xx answer returns its *problem.Problem.
func (c *Client) Do(ctx context.Context, method, path string, body, out any) error {
	var rd io.Reader
	if body != nil {
		b, err := json.Marshal(body)
		if err != nil {
			return fmt.Errorf("%s %s: %w", method, path, err)
		}
		rd = bytes.NewReader(b)
	}
	req, err := http.NewRequestWithContext(ctx, method, c.base+path, rd)
	if err != nil {
		return fmt.Errorf("%s %s: %w", method, path, err)
	}
	if body != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	req.Header.Set("Accept", "application/json")
	if c.token != "" {
		req.Header.Set("Authorization", "Bearer "+c.token)
	}
	resp, err := c.http.Do(req)
	if err != nil {
		return fmt.Errorf("%s %s: %w", method, path, err)
	}
	defer resp.Body.Close()
	data, err := io.ReadAll(io.LimitReader(resp.Body, 64<<20))
	if err != nil {
		return fmt.Errorf("%s %s: read answer: %w", method, path, err)
	}
	if resp.StatusCode < 200 || resp.StatusCode > 299 {
		return problem.Read(resp, data)
	}
	if out == nil {
		return nil
	}
	if b, ok := out.(*[]byte); ok {
		*b = data
		return nil
	}
	if err := json.Unmarshal(data, out); err != nil {
		return fmt.Errorf("%s %s: decode answer: %w", method, path, err)
	}
	return nil
}

type list[T any] struct {
	Items []T `json:"items"`
}

func getList[T any](ctx context.Context, c *Client, path string) ([]T, error) {
	var l list[T]
	err := c.Do(ctx, http.MethodGet, path, nil, &l)
	return l.Items, err
}

func query(pairs ...string) string {
	v := url.Values{}
	for i := 0; i+1 < len(pairs); i += 2 {
		if pairs[i+1] != "" {
			v.Set(pairs[i], pairs[i+1])
		}
	}
	if len(v) == 0 {
		return ""
	}
	return "?" + v.Encode()
}

// WhoAmI describes the token in use.
type WhoAmI struct {
	TokenID string       `json:"tokenId"`
	Name    string       `json:"name"`
	Role    catalog.Role `json:"role"`
	Member  string       `json:"member,omitempty"`
}

// WhoAmI asks the server who the token is.
func (c *Client) WhoAmI(ctx context.Context) (*WhoAmI, error) {
	var w WhoAmI
	return &w, c.Do(ctx, http.MethodGet, "/v1/whoami", nil, &w)
}

// Members lists members.
func (c *Client) Members(ctx context.Context) ([]catalog.Member, error) {
	return getList[catalog.Member](ctx, c, "/v1/members")
}

// NewMember is what AddMember sends.
type NewMember struct {
	Code     string            `json:"code"`
	Name     string            `json:"name"`
	Contacts []catalog.Contact `json:"contacts,omitempty"`
}

// AddMember admits a member.
func (c *Client) AddMember(ctx context.Context, m NewMember) (*catalog.Member, error) {
	var out catalog.Member
	return &out, c.Do(ctx, http.MethodPost, "/v1/members", m, &out)
}

// Member shows one member.
func (c *Client) Member(ctx context.Context, code string) (*catalog.Member, error) {
	var out catalog.Member
	return &out, c.Do(ctx, http.MethodGet, "/v1/members/"+url.PathEscape(code), nil, &out)
}

// Systems lists systems, optionally of one member.
func (c *Client) Systems(ctx context.Context, member string) ([]service.SystemView, error) {
	return getList[service.SystemView](ctx, c, "/v1/systems"+query("member", member))
}

// NewSystem is what AddSystem sends.
type NewSystem struct {
	ID            string `json:"id"`
	Name          string `json:"name"`
	SecurityLevel int    `json:"securityLevel"`
}

// AddSystem registers a system.
func (c *Client) AddSystem(ctx context.Context, s NewSystem) (*service.SystemView, error) {
	var out service.SystemView
	return &out, c.Do(ctx, http.MethodPost, "/v1/systems", s, &out)
}

// System shows one system.
func (c *Client) System(ctx context.Context, id string) (*service.SystemView, error) {
	var out service.SystemView
	return &out, c.Do(ctx, http.MethodGet, "/v1/systems/"+url.PathEscape(id), nil, &out)
}

// NewAssessment is what Assess sends.
type NewAssessment struct {
	Level      int       `json:"level"`
	AssessedBy string    `json:"assessedBy"`
	Reference  string    `json:"reference"`
	ValidUntil time.Time `json:"validUntil"`
}

// Assess records a security assessment.
func (c *Client) Assess(ctx context.Context, systemID string, a NewAssessment) (*service.SystemView, error) {
	var out service.SystemView
	return &out, c.Do(ctx, http.MethodPost, "/v1/systems/"+url.PathEscape(systemID)+"/assessments", a, &out)
}

// Datasets lists the latest version of each dataset.
func (c *Client) Datasets(ctx context.Context, member, system string) ([]catalog.Dataset, error) {
	return getList[catalog.Dataset](ctx, c, "/v1/datasets"+query("member", member, "system", system))
}

// PublishRequest is what Publish sends.
type PublishRequest struct {
	System           string `json:"system"`
	Code             string `json:"code,omitempty"`
	Document         string `json:"document"`
	MinConsumerLevel int    `json:"minConsumerLevel,omitempty"`
}

// Publish publishes a dataset version.
func (c *Client) Publish(ctx context.Context, p PublishRequest) (*service.PublishResult, error) {
	var out service.PublishResult
	return &out, c.Do(ctx, http.MethodPost, "/v1/datasets", p, &out)
}

func datasetPath(system, code string) string {
	return "/v1/datasets/" + url.PathEscape(system) + "/" + url.PathEscape(code)
}

func versionQuery(version int) string {
	if version <= 0 {
		return ""
	}
	return query("version", strconv.Itoa(version))
}

// Dataset shows one version (0: latest) of a dataset.
func (c *Client) Dataset(ctx context.Context, system, code string, version int) (*catalog.Dataset, error) {
	var out catalog.Dataset
	return &out, c.Do(ctx, http.MethodGet, datasetPath(system, code)+versionQuery(version), nil, &out)
}

// Fields lists a dataset's fields.
func (c *Client) Fields(ctx context.Context, system, code string, version int) ([]catalog.Field, error) {
	return getList[catalog.Field](ctx, c, datasetPath(system, code)+"/fields"+versionQuery(version))
}

// Versions lists every version of a dataset.
func (c *Client) Versions(ctx context.Context, system, code string) ([]catalog.Dataset, error) {
	return getList[catalog.Dataset](ctx, c, datasetPath(system, code)+"/versions")
}

// Tokens lists tokens.
func (c *Client) Tokens(ctx context.Context) ([]catalog.Token, error) {
	return getList[catalog.Token](ctx, c, "/v1/tokens")
}

// NewToken is what CreateToken sends.
type NewToken struct {
	Name   string       `json:"name"`
	Role   catalog.Role `json:"role"`
	Member string       `json:"member,omitempty"`
	TTL    string       `json:"ttl,omitempty"`
}

// CreatedToken holds a new token's secret, shown once.
type CreatedToken struct {
	Token  string        `json:"token"`
	Record catalog.Token `json:"record"`
}

// CreateToken mints a token.
func (c *Client) CreateToken(ctx context.Context, t NewToken) (*CreatedToken, error) {
	var out CreatedToken
	return &out, c.Do(ctx, http.MethodPost, "/v1/tokens", t, &out)
}

// RevokeToken revokes a token.
func (c *Client) RevokeToken(ctx context.Context, id string) (*catalog.Token, error) {
	var out catalog.Token
	return &out, c.Do(ctx, http.MethodDelete, "/v1/tokens/"+url.PathEscape(id), nil, &out)
}

// Trail reads the admin trail.
func (c *Client) Trail(ctx context.Context, f catalog.TrailFilter) ([]catalog.TrailEntry, error) {
	after, limit := "", ""
	if f.AfterSeq > 0 {
		after = strconv.FormatInt(f.AfterSeq, 10)
	}
	if f.Limit > 0 {
		limit = strconv.Itoa(f.Limit)
	}
	return getList[catalog.TrailEntry](ctx, c, "/v1/trail"+query("member", f.Member, "object", f.Object, "after", after, "limit", limit))
}
