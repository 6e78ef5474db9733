package client

import (
	"context"
	"crypto"
	"crypto/ecdsa"
	"crypto/rsa"
	"crypto/sha256"
	"encoding/base64"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strings"

	"github.com/lienthong/lienthong/catalog"
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

// ErrBadSignature means a signed document did not verify.
var ErrBadSignature = errors.New("signature does not verify")

// GatewayConfig fetches the signed gateway configuration and returns its
// body only after the signature verifies with key.
func (c *Client) GatewayConfig(ctx context.Context, key policies.VerificationKey) ([]byte, error) {
	body, _, err := c.GatewayConfigSigned(ctx, key)
	return body, err
}

// GatewayConfigSigned is GatewayConfig returning the signature too, so a
// gateway can keep both and verify its stored copy again after a restart.
func (c *Client) GatewayConfigSigned(ctx context.Context, key policies.VerificationKey) (body []byte, signature string, err error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, c.base+"/v1/gateway-config", nil)
	if err != nil {
		return nil, "", err
	}
	req.Header.Set("Authorization", "Bearer "+c.token)
	resp, err := c.http.Do(req)
	if err != nil {
		return nil, "", fmt.Errorf("gateway config: %w", err)
	}
	defer resp.Body.Close()
	body, err = io.ReadAll(io.LimitReader(resp.Body, 32<<20))
	if err != nil {
		return nil, "", fmt.Errorf("gateway config: %w", err)
	}
	if resp.StatusCode != http.StatusOK {
		return nil, "", problem.Read(resp, body)
	}
	signature = resp.Header.Get("X-LT-Signature")
	if err := VerifyGatewayConfig(key, body, signature); err != nil {
		return nil, "", fmt.Errorf("gateway config: %w", err)
	}
	return body, signature, nil
}

// VerifyGatewayConfig checks a signature "<key id>.<base64url signature>"
// over SHA-256 of body.
func VerifyGatewayConfig(key policies.VerificationKey, body []byte, signature string) error {
	keyID, sig, ok := strings.Cut(signature, ".")
	if !ok || keyID != key.KeyID {
		return fmt.Errorf("%w: signed by key %q, expected %q", ErrBadSignature, keyID, key.KeyID)
	}
	sum := sha256.Sum256(body)
	raw, err := base64.RawURLEncoding.DecodeString(sig)
	if err != nil || !verifyDigest(key.Key, sum[:], raw) {
		return ErrBadSignature
	}
	return nil
}

// verifyDigest checks a signature made by crypto.Signer.Sign over a SHA-256
// digest: ASN.1 ECDSA or PKCS #1 v1.5 RSA, the two key kinds bundles use.
func verifyDigest(pub crypto.PublicKey, digest, sig []byte) bool {
	switch k := pub.(type) {
	case *ecdsa.PublicKey:
		return ecdsa.VerifyASN1(k, digest, sig)
	case *rsa.PublicKey:
		return rsa.VerifyPKCS1v15(k, crypto.SHA256, digest, sig) == nil
	}
	return false
}
