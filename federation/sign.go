package federation

import (
	"crypto"
	"crypto/ecdsa"
	"crypto/rand"
	"crypto/rsa"
	"crypto/sha256"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"time"
)

// ErrBadSignature means a signed document did not verify.
var ErrBadSignature = errors.New("signature does not verify")

// Signed is the gateway configuration as served: the signed body, or, when
// the gateway already holds the current content, a signed statement that
// its copy is still current. Gateways poll every few seconds; the statement
// spares them downloading, parsing and storing an unchanged configuration
// while it still renews their freshness, which is what keeps them answering
// (a gateway past its staleness limit denies).
type Signed struct {
	// Body is the configuration as JSON (empty when NotModified).
	Body []byte
	// Signature is "<key id>.<base64url signature over SHA-256(message)>",
	// made with the policy bundle key, so gateways need one verification
	// key. The message is Body, or FreshnessMessage(ETag, FreshAt) when
	// NotModified.
	Signature string
	// ETag names the content apart from its issue time (ETag of
	// Config.Content). A client takes it from the signed body, not from a
	// header.
	ETag string
	// NotModified says the ETag asked for is current; FreshAt is when.
	NotModified bool
	FreshAt     time.Time
}

// FreshnessMessage is what a not-modified answer signs: that the
// configuration named by etag is current at time at. Its prefix keeps it from
// ever being read as a configuration body.
func FreshnessMessage(etag string, at time.Time) []byte {
	return []byte("lienthong gateway-config current\n" + etag + "\n" + at.UTC().Format(time.RFC3339Nano))
}

// Issue signs cfg as issued at now, or, when ifNoneMatch names its content,
// a statement that it is current at now.
func Issue(cfg *Config, ifNoneMatch string, now time.Time, keyID string, key crypto.Signer) (*Signed, error) {
	out := &Signed{ETag: cfg.ETag(), FreshAt: now.UTC()}
	var msg []byte
	if ifNoneMatch != "" && ifNoneMatch == out.ETag {
		out.NotModified = true
		msg = FreshnessMessage(out.ETag, out.FreshAt)
	} else {
		issued := *cfg
		issued.IssuedAt = out.FreshAt
		var err error
		if out.Body, err = json.Marshal(issued); err != nil {
			return nil, fmt.Errorf("gateway config: %w", err)
		}
		msg = out.Body
	}
	var err error
	if out.Signature, err = Sign(keyID, key, msg); err != nil {
		return nil, fmt.Errorf("sign gateway config: %w", err)
	}
	return out, nil
}

// Sign signs SHA-256 of msg with key, as "<key id>.<base64url signature>".
func Sign(keyID string, key crypto.Signer, msg []byte) (string, error) {
	digest := sha256.Sum256(msg)
	sig, err := key.Sign(rand.Reader, digest[:], crypto.SHA256)
	if err != nil {
		return "", err
	}
	return keyID + "." + base64.RawURLEncoding.EncodeToString(sig), nil
}

// Verify checks a signature made by Sign over msg (a configuration, or a
// freshness statement) with the public key known under keyID. A signature
// under another key id is refused before any cryptography.
func Verify(keyID string, key crypto.PublicKey, msg []byte, signature string) error {
	id, sig, ok := strings.Cut(signature, ".")
	if !ok || id != keyID {
		return fmt.Errorf("%w: signed by key %q, expected %q", ErrBadSignature, id, keyID)
	}
	sum := sha256.Sum256(msg)
	raw, err := base64.RawURLEncoding.DecodeString(sig)
	if err != nil || !verifyDigest(key, sum[:], raw) {
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

// VerifyConfig checks a signed configuration body and decodes it. It is the
// one way a gateway reads a configuration, from the network or from disk.
func VerifyConfig(keyID string, key crypto.PublicKey, body []byte, signature string) (*Config, error) {
	if err := Verify(keyID, key, body, signature); err != nil {
		return nil, err
	}
	var cfg Config
	if err := json.Unmarshal(body, &cfg); err != nil {
		return nil, fmt.Errorf("gateway config: %w", err)
	}
	return &cfg, nil
}
