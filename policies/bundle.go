package policies

import (
	"bytes"
	"crypto"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rsa"
	"crypto/x509"
	"encoding/json"
	"encoding/pem"
	"errors"
	"fmt"
	"io"
	"maps"
	"slices"
	"strings"
	"time"

	"github.com/open-policy-agent/opa/v1/ast"
	"github.com/open-policy-agent/opa/v1/bundle"
	"github.com/open-policy-agent/opa/v1/util"
)

// SigningKey is the control plane's bundle signing key. Key is an
// *ecdsa.PrivateKey (P-256 signs ES256, P-384 ES384, P-521 ES512) or an
// *rsa.PrivateKey (RS256). KeyID names it in the signature so gateways can
// hold several verification keys across a rotation.
type SigningKey struct {
	KeyID string
	Key   crypto.Signer
}

// VerificationKey is the public half gateways verify bundles with. KeyID must
// match the SigningKey's: a bundle signed under another id is refused.
type VerificationKey struct {
	KeyID string
	Key   crypto.PublicKey
}

// SigningKeyFromPEM reads a PKCS#8, SEC 1 (EC) or PKCS#1 (RSA) private key.
func SigningKeyFromPEM(keyID string, pemBytes []byte) (SigningKey, error) {
	block, _ := pem.Decode(pemBytes)
	if block == nil {
		return SigningKey{}, errors.New("policies: signing key: no PEM block")
	}
	var key any
	var err error
	switch block.Type {
	case "EC PRIVATE KEY":
		key, err = x509.ParseECPrivateKey(block.Bytes)
	case "RSA PRIVATE KEY":
		key, err = x509.ParsePKCS1PrivateKey(block.Bytes)
	default:
		key, err = x509.ParsePKCS8PrivateKey(block.Bytes)
	}
	if err != nil {
		return SigningKey{}, fmt.Errorf("policies: signing key: %w", err)
	}
	signer, ok := key.(crypto.Signer)
	if !ok {
		return SigningKey{}, fmt.Errorf("policies: signing key: %T cannot sign", key)
	}
	return SigningKey{KeyID: keyID, Key: signer}, nil
}

// VerificationKeyFromPEM reads a PKIX public key ("PUBLIC KEY") or the public
// key of a certificate.
func VerificationKeyFromPEM(keyID string, pemBytes []byte) (VerificationKey, error) {
	block, _ := pem.Decode(pemBytes)
	if block == nil {
		return VerificationKey{}, errors.New("policies: verification key: no PEM block")
	}
	switch block.Type {
	case "CERTIFICATE":
		cert, err := x509.ParseCertificate(block.Bytes)
		if err != nil {
			return VerificationKey{}, fmt.Errorf("policies: verification key: %w", err)
		}
		return VerificationKey{KeyID: keyID, Key: cert.PublicKey}, nil
	default:
		pub, err := x509.ParsePKIXPublicKey(block.Bytes)
		if err != nil {
			return VerificationKey{}, fmt.Errorf("policies: verification key: %w", err)
		}
		return VerificationKey{KeyID: keyID, Key: pub}, nil
	}
}

// PublicKeyPEM encodes a verification key as PKIX PEM, the form the control
// plane publishes to gateways.
func PublicKeyPEM(pub crypto.PublicKey) ([]byte, error) {
	der, err := x509.MarshalPKIXPublicKey(pub)
	if err != nil {
		return nil, fmt.Errorf("policies: encode public key: %w", err)
	}
	return pem.EncodeToMemory(&pem.Block{Type: "PUBLIC KEY", Bytes: der}), nil
}

// algorithm picks the JWS algorithm for a key.
func algorithm(pub crypto.PublicKey) (string, error) {
	switch k := pub.(type) {
	case *ecdsa.PublicKey:
		switch k.Curve {
		case elliptic.P256():
			return "ES256", nil
		case elliptic.P384():
			return "ES384", nil
		case elliptic.P521():
			return "ES512", nil
		}
		return "", fmt.Errorf("unsupported ECDSA curve %s", k.Curve.Params().Name)
	case *rsa.PublicKey:
		return "RS256", nil
	}
	return "", fmt.Errorf("unsupported key type %T (use ECDSA or RSA)", pub)
}

// Paths of the modules inside a bundle.
const (
	bundleBaseDir   = "/" + Root + "/"
	bundleAgencyDir = "/" + Root + "/agency/"
	issuedAtKey     = "issued_at"
)

// BuildBundle writes snap as a signed OPA bundle (tar.gz): data.json holding
// data.lienthong, the base modules under lienthong/, each provider module
// under lienthong/agency/<agency key>.rego, a .manifest with the revision,
// the single root "lienthong", Rego v1 and the issue time, and a
// .signatures.json whose JWT covers the SHA-256 of every file, signed as OPA
// specifies. Any OPA (or LoadBundle) with the verification key can check it.
func BuildBundle(snap *Snapshot, revision string, key SigningKey) ([]byte, error) {
	if snap == nil || snap.Data == nil {
		return nil, errors.New("policies: build bundle: snapshot has no data")
	}
	if revision == "" {
		return nil, errors.New("policies: build bundle: revision is required")
	}
	if key.Key == nil || key.KeyID == "" {
		return nil, errors.New("policies: build bundle: signing key and key id are required")
	}
	alg, err := algorithm(key.Key.Public())
	if err != nil {
		return nil, fmt.Errorf("policies: build bundle: %w", err)
	}
	der, err := x509.MarshalPKCS8PrivateKey(key.Key)
	if err != nil {
		return nil, fmt.Errorf("policies: build bundle: encode signing key: %w", err)
	}
	keyPEM := string(pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: der}))

	doc, err := dataDocument(snap.Data)
	if err != nil {
		return nil, fmt.Errorf("policies: build bundle: %w", err)
	}
	regoV1 := ast.RegoV1.Int()
	issued := snap.IssuedAt
	if issued.IsZero() {
		issued = time.Now()
	}
	b := bundle.Bundle{
		Manifest: bundle.Manifest{
			Revision:    revision,
			Roots:       &[]string{Root},
			RegoVersion: &regoV1,
			Metadata:    map[string]any{issuedAtKey: issued.UTC().Format(time.RFC3339Nano)},
		},
		Data: map[string]any{Root: doc},
	}
	addModule := func(path string, src []byte) error {
		mod, err := ast.ParseModuleWithOpts(path, string(src), ast.ParserOptions{RegoVersion: ast.RegoV1})
		if err != nil {
			return moduleError(path, err)
		}
		b.Modules = append(b.Modules, bundle.ModuleFile{URL: path, Path: path, Raw: src, Parsed: mod})
		return nil
	}
	for _, name := range slices.Sorted(maps.Keys(snap.Base)) {
		if strings.Contains(name, "/") || !strings.HasSuffix(name, ".rego") {
			return nil, fmt.Errorf("policies: build bundle: base module name %q must be a plain .rego file name", name)
		}
		if err := addModule(bundleBaseDir+name, snap.Base[name]); err != nil {
			return nil, fmt.Errorf("policies: build bundle: %w", err)
		}
	}
	for _, provider := range slices.Sorted(maps.Keys(snap.Agency)) {
		if err := CompileAgencyModule(provider, snap.Agency[provider]); err != nil {
			return nil, fmt.Errorf("policies: build bundle: agency module of %s: %w", provider, err)
		}
		if err := addModule(bundleAgencyDir+AgencyKey(provider)+".rego", snap.Agency[provider]); err != nil {
			return nil, fmt.Errorf("policies: build bundle: %w", err)
		}
	}
	if err := b.GenerateSignature(bundle.NewSigningConfig(keyPEM, alg, ""), key.KeyID, false); err != nil {
		return nil, fmt.Errorf("policies: build bundle: sign: %w", err)
	}
	var buf bytes.Buffer
	if err := bundle.NewWriter(&buf).DisableFormat(true).Write(b); err != nil {
		return nil, fmt.Errorf("policies: build bundle: write: %w", err)
	}
	return buf.Bytes(), nil
}

// maxBundleBytes bounds what LoadBundle reads (gzip bombs included).
const maxBundleBytes = 512 << 20

// LoadBundle reads a bundle with OPA's reader, signature verification on: a
// missing, malformed or foreign signature, a file whose digest differs from
// the signed one, or a file the signature does not cover is an error. The
// verified bundle becomes a Snapshot (Revision and IssuedAt from the
// manifest) ready for Engine.Load; agency modules are checked again as at
// upload.
func LoadBundle(r io.Reader, key VerificationKey) (*Snapshot, error) {
	if key.Key == nil || key.KeyID == "" {
		return nil, errors.New("policies: load bundle: verification key and key id are required")
	}
	alg, err := algorithm(key.Key)
	if err != nil {
		return nil, fmt.Errorf("policies: load bundle: %w", err)
	}
	pubPEM, err := PublicKeyPEM(key.Key)
	if err != nil {
		return nil, fmt.Errorf("policies: load bundle: %w", err)
	}
	// No fixed key id in the config: OPA then looks the key up by the JWT's
	// kid, so a bundle signed under another id finds no key.
	vc := bundle.NewVerificationConfig(map[string]*bundle.KeyConfig{
		key.KeyID: {Key: string(pubPEM), Algorithm: alg},
	}, "", "", nil)
	b, err := bundle.NewReader(r).
		WithBundleVerificationConfig(vc).
		WithRegoVersion(ast.RegoV1).
		WithSizeLimitBytes(maxBundleBytes).
		Read()
	if err != nil {
		return nil, fmt.Errorf("policies: load bundle: %w", err)
	}
	if len(b.Signatures.Signatures) == 0 {
		// The reader requires a signature already; this guards against a
		// future change of its defaults.
		return nil, errors.New("policies: load bundle: bundle is not signed")
	}
	if b.Manifest.Revision == "" {
		return nil, errors.New("policies: load bundle: manifest has no revision")
	}
	if b.Manifest.Roots == nil || !slices.Equal(*b.Manifest.Roots, []string{Root}) {
		return nil, fmt.Errorf("policies: load bundle: manifest roots must be [%q]", Root)
	}
	snap := &Snapshot{Revision: b.Manifest.Revision, Base: map[string][]byte{}, Agency: map[string][]byte{}}
	if s, ok := b.Manifest.Metadata[issuedAtKey].(string); ok {
		if snap.IssuedAt, err = time.Parse(time.RFC3339Nano, s); err != nil {
			return nil, fmt.Errorf("policies: load bundle: manifest %s: %w", issuedAtKey, err)
		}
	}

	doc, ok := b.Data[Root]
	if !ok {
		return nil, fmt.Errorf("policies: load bundle: data.json has no %q document", Root)
	}
	raw, err := json.Marshal(doc)
	if err != nil {
		return nil, fmt.Errorf("policies: load bundle: data: %w", err)
	}
	snap.Data = &PolicyData{}
	if err := util.UnmarshalJSON(raw, snap.Data); err != nil {
		return nil, fmt.Errorf("policies: load bundle: data does not have the policy data shape: %w", err)
	}

	for _, m := range b.Modules {
		path := "/" + strings.TrimPrefix(m.Path, "/")
		switch {
		case strings.HasPrefix(path, bundleAgencyDir):
			key := strings.TrimSuffix(strings.TrimPrefix(path, bundleAgencyDir), ".rego")
			provider, ok := snap.Data.Agencies[key]
			if !ok {
				return nil, fmt.Errorf("policies: load bundle: module %s belongs to no registered provider", path)
			}
			if err := CompileAgencyModule(provider, m.Raw); err != nil {
				return nil, fmt.Errorf("policies: load bundle: agency module of %s: %w", provider, err)
			}
			snap.Agency[provider] = m.Raw
		case strings.HasPrefix(path, bundleBaseDir) && !strings.Contains(strings.TrimPrefix(path, bundleBaseDir), "/"):
			snap.Base[strings.TrimPrefix(path, bundleBaseDir)] = m.Raw
		default:
			return nil, fmt.Errorf("policies: load bundle: unexpected module %s", path)
		}
	}
	if len(snap.Base) == 0 {
		return nil, errors.New("policies: load bundle: no base policy module")
	}
	return snap, nil
}
