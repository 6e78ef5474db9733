// Package embedded is Liên Thông's built-in certificate authority: a root
// and an issuing intermediate with EC P-256 keys kept in a directory on the
// control plane's disk, optionally sealed with a passphrase. It serves the
// one-process deployment; larger ones point at Vault (package certs/vault)
// through the same certs.Authority interface.
//
// # Files
//
// The directory (mode 0700) holds, every file mode 0600:
//
//	state.json             which generation signs ("current") and which
//	                       one's root is still trusted ("previous")
//	g0001/root.pem         self-signed root certificate, 10 years
//	g0001/root.key         its private key (PKCS #8 PEM, or sealed)
//	g0001/issuing.pem      issuing intermediate signed by the root, 2 years
//	g0001/issuing.key      its private key
//	g0002/...              the next generation after a rotation
//
// Keys are sealed with scrypt and AES-256-GCM when a passphrase is set,
// from the LIENTHONG_CA_PASSPHRASE environment variable by default.
//
// # Rotation
//
// Rotate makes a new generation and signs with it from then on, while the
// old root stays in the trust bundle so certificates issued before keep
// working until gateways have renewed (72 hours by default). RetireOldRoot
// then drops the old root from the bundle and deletes its keys. Both steps
// are written to state.json before they take effect, so they survive a
// restart.
//
// One process owns the directory at a time; Open does not lock it.
package embedded

import (
	"context"
	"crypto"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/lienthong/lienthong/certs"
	"github.com/lienthong/lienthong/internal/durable"
)

// PassphraseEnv names the environment variable Open reads the key
// passphrase from when WithPassphrase is not given. Unset or empty means the
// keys are stored unencrypted, protected by file permissions only.
const PassphraseEnv = "LIENTHONG_CA_PASSPHRASE"

// Default lifetimes. The root outlives many intermediates, so gateways'
// trust bundles rarely change; the intermediate is the key in daily use, so
// it is replaced more often.
const (
	DefaultRootLifetime    = 10 * 365 * 24 * time.Hour
	DefaultIssuingLifetime = 2 * 365 * 24 * time.Hour
	// DefaultMaxTTL caps the lifetime of issued certificates whatever a
	// request asks for.
	DefaultMaxTTL = 30 * 24 * time.Hour
)

// Name is what CA.Name returns and issued records carry as their authority.
const Name = "embedded"

// Errors of the rotation steps, for callers that map them to API answers.
var (
	// ErrRotationPending is returned by Rotate while the previous root is
	// still trusted: a second rotation would leave three roots in the
	// bundle, or drop one that live certificates chain to.
	ErrRotationPending = errors.New("embedded CA: the previous root is still trusted; retire it before rotating again")
	// ErrNoPreviousRoot is returned by RetireOldRoot when no rotation is
	// under way.
	ErrNoPreviousRoot = errors.New("embedded CA: there is no previous root to retire")
)

// Option adjusts Open.
type Option func(*options)

type options struct {
	passphrase      []byte
	passphraseSet   bool
	rootLifetime    time.Duration
	issuingLifetime time.Duration
	maxTTL          time.Duration
	now             func() time.Time
}

// WithPassphrase seals (and unseals) the key files with p instead of the
// value of PassphraseEnv. An empty p means unencrypted keys.
func WithPassphrase(p []byte) Option {
	return func(o *options) { o.passphrase, o.passphraseSet = append([]byte(nil), p...), true }
}

// WithLifetimes sets the lifetimes of roots and intermediates created from
// now on (defaults DefaultRootLifetime and DefaultIssuingLifetime).
func WithLifetimes(root, issuing time.Duration) Option {
	return func(o *options) { o.rootLifetime, o.issuingLifetime = root, issuing }
}

// WithMaxTTL caps the lifetime of issued certificates (default DefaultMaxTTL).
func WithMaxTTL(d time.Duration) Option { return func(o *options) { o.maxTTL = d } }

// WithClock replaces time.Now, for tests.
func WithClock(now func() time.Time) Option { return func(o *options) { o.now = now } }

// CA is the embedded certificate authority. It implements certs.Authority
// and is safe for concurrent use.
type CA struct {
	dir  string
	opts options

	rotateMu sync.Mutex   // serialises Rotate and RetireOldRoot
	mu       sync.RWMutex // guards the two fields below; Sign takes it briefly
	current  *generation
	previous *generation // nil unless a rotation is under way
}

// generation is one root and its issuing intermediate.
type generation struct {
	id         string
	root       *x509.Certificate
	issuing    *x509.Certificate
	issuingKey crypto.Signer // nil for the previous generation: it no longer signs
}

// state is state.json.
type state struct {
	Version  int    `json:"version"`
	Current  string `json:"current"`
	Previous string `json:"previous,omitempty"`
}

const stateFile = "state.json"

// Open loads the CA kept in dir, creating the directory and a first
// generation on first use. When a passphrase is set and keys on disk are
// still unencrypted, Open seals them.
func Open(dir string, opts ...Option) (*CA, error) {
	o := options{
		rootLifetime:    DefaultRootLifetime,
		issuingLifetime: DefaultIssuingLifetime,
		maxTTL:          DefaultMaxTTL,
		now:             time.Now,
	}
	for _, opt := range opts {
		opt(&o)
	}
	if !o.passphraseSet {
		o.passphrase = []byte(os.Getenv(PassphraseEnv))
	}
	if o.rootLifetime <= 0 || o.issuingLifetime <= 0 || o.maxTTL <= 0 {
		return nil, errors.New("embedded CA: lifetimes must be positive")
	}
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return nil, fmt.Errorf("embedded CA: create %s: %w", dir, err)
	}
	// The directory is the CA's own: close it to other users if it was made
	// (by an installer, say) with a looser mode. Key files are not fixed up
	// silently but refused, since one that was readable may have leaked.
	if fi, err := os.Stat(dir); err != nil {
		return nil, fmt.Errorf("embedded CA: %w", err)
	} else if fi.Mode().Perm()&0o077 != 0 {
		if err := os.Chmod(dir, 0o700); err != nil {
			return nil, fmt.Errorf("embedded CA: restrict %s to its owner: %w", dir, err)
		}
	}
	c := &CA{dir: dir, opts: o}
	st, err := c.readState()
	if errors.Is(err, fs.ErrNotExist) {
		g, err := c.newGeneration()
		if err != nil {
			return nil, err
		}
		if err := c.writeState(state{Version: 1, Current: g.id}); err != nil {
			return nil, err
		}
		c.current = g
		return c, nil
	}
	if err != nil {
		return nil, err
	}
	if c.current, err = c.loadGeneration(st.Current, true); err != nil {
		return nil, err
	}
	if st.Previous != "" {
		if c.previous, err = c.loadGeneration(st.Previous, false); err != nil {
			return nil, err
		}
	}
	if len(c.opts.passphrase) > 0 {
		for _, g := range []*generation{c.current, c.previous} {
			if g != nil {
				if err := c.sealPlainKeys(g.id); err != nil {
					return nil, err
				}
			}
		}
	}
	return c, nil
}

// Name implements certs.Authority.
func (c *CA) Name() string { return Name }

// Sign implements certs.Authority. The lifetime is capped by WithMaxTTL and
// by the issuing intermediate's own expiry.
func (c *CA) Sign(ctx context.Context, req certs.SignRequest) (*certs.Issued, error) {
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	csr, err := certs.ValidateCSR(req.CSR, req.System, req.TrustDomain)
	if err != nil {
		return nil, err
	}
	ttl, err := req.Lifetime()
	if err != nil {
		return nil, err
	}
	c.mu.RLock()
	g := c.current
	c.mu.RUnlock()

	now := c.opts.now()
	notAfter := now.Add(min(ttl, c.opts.maxTTL))
	if notAfter.After(g.issuing.NotAfter) {
		notAfter = g.issuing.NotAfter
	}
	if !notAfter.After(now) {
		return nil, fmt.Errorf("embedded CA: issuing CA %s expired on %s; rotate the CA", g.id, g.issuing.NotAfter.UTC().Format(time.RFC3339))
	}
	serial, err := certs.NewSerial()
	if err != nil {
		return nil, err
	}
	tmpl, err := certs.LeafTemplate(serial, req.SPIFFEID(), req.System.String(), now.Add(-certs.ClockSkew), notAfter)
	if err != nil {
		return nil, err
	}
	tmpl.SignatureAlgorithm = x509.ECDSAWithSHA256
	der, err := x509.CreateCertificate(rand.Reader, tmpl, g.issuing, csr.PublicKey, g.issuingKey)
	if err != nil {
		return nil, fmt.Errorf("embedded CA: sign certificate for %s: %w", req.System, err)
	}
	leaf, err := x509.ParseCertificate(der)
	if err != nil {
		return nil, fmt.Errorf("embedded CA: parse issued certificate: %w", err)
	}
	return &certs.Issued{Leaf: leaf, Chain: []*x509.Certificate{g.issuing}, Authority: Name}, nil
}

// TrustBundle implements certs.Authority: the current root, then the
// previous one while a rotation is under way.
func (c *CA) TrustBundle(ctx context.Context) ([]*x509.Certificate, error) {
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	c.mu.RLock()
	defer c.mu.RUnlock()
	out := []*x509.Certificate{c.current.root}
	if c.previous != nil {
		out = append(out, c.previous.root)
	}
	return out, nil
}

// Generation describes one root and its issuing intermediate, for status
// pages and alerts (the issuing CA must be rotated before it expires).
type Generation struct {
	// ID is the generation's directory name, e.g. "g0002".
	ID string
	// Root is its self-signed root, Issuing the intermediate that signs.
	Root, Issuing *x509.Certificate
}

// Current returns the generation that signs.
func (c *CA) Current() Generation {
	c.mu.RLock()
	defer c.mu.RUnlock()
	return Generation{ID: c.current.id, Root: c.current.root, Issuing: c.current.issuing}
}

// Previous returns the generation whose root is still trusted during a
// rotation, if any.
func (c *CA) Previous() (Generation, bool) {
	c.mu.RLock()
	defer c.mu.RUnlock()
	if c.previous == nil {
		return Generation{}, false
	}
	return Generation{ID: c.previous.id, Root: c.previous.root, Issuing: c.previous.issuing}, true
}

// Rotate creates a new root and intermediate and signs with them from now
// on; the old root stays in the trust bundle until RetireOldRoot. Gateways
// must pull the two-root bundle before they meet certificates of the new
// generation, so the control plane publishes the bundle first and lets
// certificates renew at their own pace.
func (c *CA) Rotate() error {
	c.rotateMu.Lock()
	defer c.rotateMu.Unlock()
	c.mu.RLock()
	cur, pending := c.current, c.previous != nil
	c.mu.RUnlock()
	if pending {
		return ErrRotationPending
	}
	// Key generation, sealing and fsync happen without blocking Sign.
	g, err := c.newGeneration()
	if err != nil {
		return err
	}
	if err := c.writeState(state{Version: 1, Current: g.id, Previous: cur.id}); err != nil {
		return err
	}
	old := *cur
	old.issuingKey = nil
	c.mu.Lock()
	c.previous, c.current = &old, g
	c.mu.Unlock()
	return nil
}

// RetireOldRoot removes the previous root from the trust bundle and deletes
// its private keys (its certificates stay on disk for the record). Call it
// once every certificate of the old generation has expired or been renewed:
// after it, they no longer verify.
func (c *CA) RetireOldRoot() error {
	c.rotateMu.Lock()
	defer c.rotateMu.Unlock()
	c.mu.RLock()
	cur, old := c.current, c.previous
	c.mu.RUnlock()
	if old == nil {
		return ErrNoPreviousRoot
	}
	if err := c.writeState(state{Version: 1, Current: cur.id}); err != nil {
		return err
	}
	c.mu.Lock()
	c.previous = nil
	c.mu.Unlock()
	for _, name := range []string{"root.key", "issuing.key"} {
		if err := os.Remove(filepath.Join(c.dir, old.id, name)); err != nil && !errors.Is(err, fs.ErrNotExist) {
			return fmt.Errorf("embedded CA: root %s retired, but deleting its key failed: %w", old.id, err)
		}
	}
	return nil
}

// newGeneration creates, writes and returns the next generation.
func (c *CA) newGeneration() (*generation, error) {
	id, err := c.nextGenerationID()
	if err != nil {
		return nil, err
	}
	now := c.opts.now()
	rootKey, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return nil, fmt.Errorf("embedded CA: root key: %w", err)
	}
	issKey, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return nil, fmt.Errorf("embedded CA: issuing key: %w", err)
	}
	// A random tag tells apart the roots of separate installations (or of
	// a CA rebuilt from scratch), which would otherwise share a name.
	tag := make([]byte, 4)
	if _, err := rand.Read(tag); err != nil {
		return nil, fmt.Errorf("embedded CA: %w", err)
	}
	label := strings.ToUpper(id) + " " + hex.EncodeToString(tag)
	rootSerial, err := certs.NewSerial()
	if err != nil {
		return nil, err
	}
	rootTmpl := &x509.Certificate{
		SerialNumber:          rootSerial,
		Subject:               pkix.Name{Organization: []string{"Liên Thông"}, CommonName: "Liên Thông Root CA " + label},
		NotBefore:             now.Add(-certs.ClockSkew),
		NotAfter:              now.Add(c.opts.rootLifetime),
		KeyUsage:              x509.KeyUsageCertSign | x509.KeyUsageCRLSign,
		BasicConstraintsValid: true,
		IsCA:                  true,
		MaxPathLen:            1,
		SignatureAlgorithm:    x509.ECDSAWithSHA256,
	}
	rootDER, err := x509.CreateCertificate(rand.Reader, rootTmpl, rootTmpl, rootKey.Public(), rootKey)
	if err != nil {
		return nil, fmt.Errorf("embedded CA: create root: %w", err)
	}
	root, err := x509.ParseCertificate(rootDER)
	if err != nil {
		return nil, fmt.Errorf("embedded CA: parse root: %w", err)
	}
	issNotAfter := now.Add(c.opts.issuingLifetime)
	if issNotAfter.After(root.NotAfter) {
		issNotAfter = root.NotAfter
	}
	issSerial, err := certs.NewSerial()
	if err != nil {
		return nil, err
	}
	issTmpl := &x509.Certificate{
		SerialNumber: issSerial,
		Subject:      pkix.Name{Organization: []string{"Liên Thông"}, CommonName: "Liên Thông Issuing CA " + label},
		NotBefore:    now.Add(-certs.ClockSkew),
		NotAfter:     issNotAfter,
		KeyUsage:     x509.KeyUsageCertSign | x509.KeyUsageCRLSign,
		// Limiting the intermediate to TLS authentication makes certificates
		// under it useless for anything else, even if a bug issued one.
		ExtKeyUsage:           []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth, x509.ExtKeyUsageClientAuth},
		BasicConstraintsValid: true,
		IsCA:                  true,
		MaxPathLenZero:        true,
		SignatureAlgorithm:    x509.ECDSAWithSHA256,
	}
	issDER, err := x509.CreateCertificate(rand.Reader, issTmpl, root, issKey.Public(), rootKey)
	if err != nil {
		return nil, fmt.Errorf("embedded CA: create issuing CA: %w", err)
	}
	iss, err := x509.ParseCertificate(issDER)
	if err != nil {
		return nil, fmt.Errorf("embedded CA: parse issuing CA: %w", err)
	}

	gdir := filepath.Join(c.dir, id)
	if err := os.Mkdir(gdir, 0o700); err != nil {
		return nil, fmt.Errorf("embedded CA: create %s: %w", gdir, err)
	}
	rootKeyPEM, err := encodeKey(rootKey, c.opts.passphrase)
	if err != nil {
		return nil, fmt.Errorf("embedded CA: root key: %w", err)
	}
	issKeyPEM, err := encodeKey(issKey, c.opts.passphrase)
	if err != nil {
		return nil, fmt.Errorf("embedded CA: issuing key: %w", err)
	}
	files := []struct {
		name string
		data []byte
	}{
		{"root.key", rootKeyPEM},
		{"root.pem", certs.EncodeCertificatesPEM([]*x509.Certificate{root})},
		{"issuing.key", issKeyPEM},
		{"issuing.pem", certs.EncodeCertificatesPEM([]*x509.Certificate{iss})},
	}
	for _, f := range files {
		if err := writeFileAtomic(filepath.Join(gdir, f.name), f.data); err != nil {
			return nil, err
		}
	}
	return &generation{id: id, root: root, issuing: iss, issuingKey: issKey}, nil
}

// nextGenerationID returns g<n+1> for the highest g<n> in the directory,
// so a generation left half-written by a crash is never reused.
func (c *CA) nextGenerationID() (string, error) {
	entries, err := os.ReadDir(c.dir)
	if err != nil {
		return "", fmt.Errorf("embedded CA: read %s: %w", c.dir, err)
	}
	highest := 0
	for _, e := range entries {
		if n, ok := generationNumber(e.Name()); ok && n > highest {
			highest = n
		}
	}
	return fmt.Sprintf("g%04d", highest+1), nil
}

func generationNumber(name string) (int, bool) {
	if len(name) < 2 || name[0] != 'g' {
		return 0, false
	}
	n, err := strconv.Atoi(name[1:])
	return n, err == nil && n > 0
}

// loadGeneration reads a generation; withKey also unseals the issuing key.
func (c *CA) loadGeneration(id string, withKey bool) (*generation, error) {
	if _, ok := generationNumber(id); !ok {
		return nil, fmt.Errorf("embedded CA: %s names generation %q, which is not of the form g0001", stateFile, id)
	}
	gdir := filepath.Join(c.dir, id)
	root, err := readCert(filepath.Join(gdir, "root.pem"))
	if err != nil {
		return nil, err
	}
	iss, err := readCert(filepath.Join(gdir, "issuing.pem"))
	if err != nil {
		return nil, err
	}
	if !certs.IsSelfSigned(root) || !root.IsCA {
		return nil, fmt.Errorf("embedded CA: %s/root.pem is not a self-signed CA certificate", id)
	}
	if err := iss.CheckSignatureFrom(root); err != nil {
		return nil, fmt.Errorf("embedded CA: %s/issuing.pem is not signed by %s/root.pem: %w", id, id, err)
	}
	g := &generation{id: id, root: root, issuing: iss}
	if !withKey {
		return g, nil
	}
	keyPath := filepath.Join(gdir, "issuing.key")
	if err := checkPrivate(keyPath); err != nil {
		return nil, err
	}
	data, err := os.ReadFile(keyPath)
	if err != nil {
		return nil, fmt.Errorf("embedded CA: %w", err)
	}
	key, _, err := decodeKey(data, c.opts.passphrase)
	if err != nil {
		return nil, fmt.Errorf("embedded CA: %s: %w", keyPath, err)
	}
	pub, ok := key.Public().(interface{ Equal(crypto.PublicKey) bool })
	if !ok || !pub.Equal(iss.PublicKey) {
		return nil, fmt.Errorf("embedded CA: %s does not match %s/issuing.pem", keyPath, id)
	}
	g.issuingKey = key
	return g, nil
}

// sealPlainKeys encrypts a generation's unencrypted key files in place.
func (c *CA) sealPlainKeys(id string) error {
	for _, name := range []string{"root.key", "issuing.key"} {
		path := filepath.Join(c.dir, id, name)
		data, err := os.ReadFile(path)
		if errors.Is(err, fs.ErrNotExist) {
			continue
		}
		if err != nil {
			return fmt.Errorf("embedded CA: %w", err)
		}
		if isEncrypted(data) {
			continue
		}
		key, _, err := decodeKey(data, nil)
		if err != nil {
			return fmt.Errorf("embedded CA: %s: %w", path, err)
		}
		sealed, err := encodeKey(key, c.opts.passphrase)
		if err != nil {
			return fmt.Errorf("embedded CA: seal %s: %w", path, err)
		}
		if err := writeFileAtomic(path, sealed); err != nil {
			return err
		}
	}
	return nil
}

func (c *CA) readState() (state, error) {
	var st state
	data, err := os.ReadFile(filepath.Join(c.dir, stateFile))
	if err != nil {
		return st, err
	}
	if err := json.Unmarshal(data, &st); err != nil {
		return st, fmt.Errorf("embedded CA: %s: %w", stateFile, err)
	}
	if st.Version != 1 || st.Current == "" || st.Current == st.Previous {
		return st, fmt.Errorf("embedded CA: %s is not a version 1 state with a current generation", stateFile)
	}
	return st, nil
}

func (c *CA) writeState(st state) error {
	data, err := json.MarshalIndent(st, "", "  ")
	if err != nil {
		return fmt.Errorf("embedded CA: encode state: %w", err)
	}
	return writeFileAtomic(filepath.Join(c.dir, stateFile), append(data, '\n'))
}

func readCert(path string) (*x509.Certificate, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("embedded CA: %w", err)
	}
	list, err := certs.ParseCertificatesPEM(data)
	if err != nil {
		return nil, fmt.Errorf("embedded CA: %s: %w", path, err)
	}
	if len(list) != 1 {
		return nil, fmt.Errorf("embedded CA: %s holds %d certificates, want one", path, len(list))
	}
	return list[0], nil
}

// checkPrivate refuses key files other users can reach, as ssh does for its
// keys: a CA key readable by others is a CA key given away.
func checkPrivate(path string) error {
	fi, err := os.Stat(path)
	if err != nil {
		return fmt.Errorf("embedded CA: %w", err)
	}
	if !fi.Mode().IsRegular() {
		return fmt.Errorf("embedded CA: %s is not a regular file", path)
	}
	if perm := fi.Mode().Perm(); perm&0o077 != 0 {
		return fmt.Errorf("embedded CA: %s has mode %#o, open to other users; chmod 600 it", path, perm)
	}
	return nil
}

// writeFileAtomic writes data with mode 0600 durably (internal/durable), so
// a crash leaves the old file or the new one, never a torn one.
func writeFileAtomic(path string, data []byte) error {
	if err := durable.WriteFile(path, data, 0o600); err != nil {
		return fmt.Errorf("embedded CA: %w", err)
	}
	return nil
}

var _ certs.Authority = (*CA)(nil)
