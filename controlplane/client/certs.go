package client

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/url"

	"github.com/lienthong/lienthong/catalog"
	"github.com/lienthong/lienthong/controlplane/service"
	"github.com/lienthong/lienthong/federation"
	"github.com/lienthong/lienthong/internal/problem"
)

// Enroll sends a certificate request for a system and returns the issued
// chain and the trust bundle. csrPEM comes from certs.GenerateKeyAndCSR; the
// private key stays with the caller. Renewal is the same call.
func (c *Client) Enroll(ctx context.Context, systemID string, csrPEM []byte) (*service.Enrolment, error) {
	var out service.Enrolment
	body := struct {
		CSR string `json:"csr"`
	}{string(csrPEM)}
	return &out, c.Do(ctx, http.MethodPost, "/v1/systems/"+url.PathEscape(systemID)+"/certificates", body, &out)
}

// Certificates lists certificate records visible to the token.
func (c *Client) Certificates(ctx context.Context, f catalog.CertificateFilter) ([]service.CertificateView, error) {
	return getList[service.CertificateView](ctx, c, "/v1/certificates"+query("system", f.System, "member", f.Member))
}

// Certificate shows one certificate record by serial.
func (c *Client) Certificate(ctx context.Context, serial string) (*service.CertificateView, error) {
	var out service.CertificateView
	return &out, c.Do(ctx, http.MethodGet, "/v1/certificates/"+url.PathEscape(serial), nil, &out)
}

// RevokeCertificate revokes one certificate with a written reason.
func (c *Client) RevokeCertificate(ctx context.Context, serial, why string) (*service.CertificateView, error) {
	var out service.CertificateView
	return &out, c.Do(ctx, http.MethodPost, "/v1/certificates/"+url.PathEscape(serial)+"/revoke", revokeBody{why}, &out)
}

// RevokeSystem cuts a system off the network, revoking its certificates.
func (c *Client) RevokeSystem(ctx context.Context, systemID, why string) (*service.SystemRevocation, error) {
	var out service.SystemRevocation
	return &out, c.Do(ctx, http.MethodPost, "/v1/systems/"+url.PathEscape(systemID)+"/revoke", revokeBody{why}, &out)
}

// revokeBody is the body of the revoke calls: a revocation always says why.
type revokeBody struct {
	Reason string `json:"reason"`
}

// Trust fetches the trust configuration gateways apply. With etag set to
// the ETag of the copy already held, an unchanged configuration answers
// notModified true and a nil *federation.Trust, so polling costs almost
// nothing. The returned tag is what to send next time.
func (c *Client) Trust(ctx context.Context, etag string) (trust *federation.Trust, newETag string, notModified bool, err error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, c.base+"/v1/trust", nil)
	if err != nil {
		return nil, "", false, fmt.Errorf("GET /v1/trust: %w", err)
	}
	req.Header.Set("Accept", "application/json")
	if c.token != "" {
		req.Header.Set("Authorization", "Bearer "+c.token)
	}
	if etag != "" {
		req.Header.Set("If-None-Match", etag)
	}
	resp, err := c.http.Do(req)
	if err != nil {
		return nil, "", false, fmt.Errorf("GET /v1/trust: %w", err)
	}
	defer resp.Body.Close()
	data, err := io.ReadAll(io.LimitReader(resp.Body, 64<<20))
	if err != nil {
		return nil, "", false, fmt.Errorf("GET /v1/trust: read answer: %w", err)
	}
	switch {
	case resp.StatusCode == http.StatusNotModified:
		return nil, etag, true, nil
	case resp.StatusCode != http.StatusOK:
		return nil, "", false, problem.Read(resp, data)
	}
	var t federation.Trust
	if err := json.Unmarshal(data, &t); err != nil {
		return nil, "", false, fmt.Errorf("GET /v1/trust: decode answer: %w", err)
	}
	t.ETag = resp.Header.Get("ETag")
	return &t, t.ETag, false, nil
}

// CA reports the certificate authority and its trusted roots.
func (c *Client) CA(ctx context.Context) (*service.CAStatus, error) {
	var out service.CAStatus
	return &out, c.Do(ctx, http.MethodGet, "/v1/ca", nil, &out)
}

// RotateCA starts a CA rotation (embedded CA, platform-admin).
func (c *Client) RotateCA(ctx context.Context) (*service.CAStatus, error) {
	var out service.CAStatus
	return &out, c.Do(ctx, http.MethodPost, "/v1/ca/rotate", nil, &out)
}

// RetireCA ends a CA rotation by dropping the previous root.
func (c *Client) RetireCA(ctx context.Context) (*service.CAStatus, error) {
	var out service.CAStatus
	return &out, c.Do(ctx, http.MethodPost, "/v1/ca/retire", nil, &out)
}
