package certs

import (
	"context"
	"crypto"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"math/rand/v2"
	"sync"
	"sync/atomic"
	"time"
)

// RotatorConfig configures a Rotator.
type RotatorConfig struct {
	// Renew obtains a fresh certificate. A gateway passes a function that
	// makes a new key locally (GenerateKeyAndCSR), sends the CSR to the
	// control plane and pairs the answer with the key. Required.
	Renew func(ctx context.Context) (tls.Certificate, error)
	// Initial is a certificate to start with, e.g. one kept on disk from the
	// last run; it must not have expired. When nil, NewRotator calls Renew
	// once.
	Initial *tls.Certificate
	// RenewFraction is how far into its lifetime a certificate is renewed;
	// zero means 2/3, which leaves a third of the lifetime (a day for the
	// default 72 hours) to ride out a control-plane outage.
	RenewFraction float64
	// MinBackoff and MaxBackoff bound the wait between failed renewals; the
	// wait doubles from MinBackoff (default 1s) up to MaxBackoff (default
	// 5m), with jitter so that many gateways do not retry in step.
	MinBackoff, MaxBackoff time.Duration
	// OnRenew, if set, is called after each swap with the new leaf.
	OnRenew func(leaf *x509.Certificate)
	// OnError, if set, is called after each failed renewal with the error
	// and the wait before the next try, for logs and metrics.
	OnError func(err error, retryIn time.Duration)
}

// Rotator holds a gateway's current certificate and renews it in the
// background before it expires. Its GetCertificate and GetClientCertificate
// plug into tls.Config: each new handshake picks up the certificate current
// at that moment, while connections already open keep theirs, so a swap
// drops nothing. Make one with NewRotator.
type Rotator struct {
	cfg     RotatorConfig
	current atomic.Pointer[heldCert]
	renewMu sync.Mutex    // one renewal at a time
	kick    chan struct{} // wakes Run after RenewNow
}

type heldCert struct {
	cert    *tls.Certificate
	leaf    *x509.Certificate
	renewAt time.Time
}

// NewRotator checks cfg and loads the first certificate: cfg.Initial, or
// one from cfg.Renew. Call Run to keep it fresh.
func NewRotator(ctx context.Context, cfg RotatorConfig) (*Rotator, error) {
	if cfg.Renew == nil {
		return nil, errors.New("certs: rotator needs a Renew function")
	}
	if cfg.RenewFraction == 0 {
		cfg.RenewFraction = 2.0 / 3
	}
	if cfg.RenewFraction <= 0 || cfg.RenewFraction >= 1 {
		return nil, fmt.Errorf("certs: renew fraction %v must be between 0 and 1", cfg.RenewFraction)
	}
	if cfg.MinBackoff <= 0 {
		cfg.MinBackoff = time.Second
	}
	if cfg.MaxBackoff <= 0 {
		cfg.MaxBackoff = 5 * time.Minute
	}
	if cfg.MaxBackoff < cfg.MinBackoff {
		cfg.MaxBackoff = cfg.MinBackoff
	}
	r := &Rotator{cfg: cfg, kick: make(chan struct{}, 1)}
	if cfg.Initial != nil {
		held, err := r.hold(*cfg.Initial, time.Time{})
		if err != nil {
			return nil, fmt.Errorf("certs: initial certificate: %w", err)
		}
		r.current.Store(held)
		return r, nil
	}
	if err := r.RenewNow(ctx); err != nil {
		return nil, err
	}
	return r, nil
}

// hold checks a certificate and computes when to renew it. obtained is
// when it arrived from Renew, or zero for one loaded from elsewhere.
func (r *Rotator) hold(c tls.Certificate, obtained time.Time) (*heldCert, error) {
	if len(c.Certificate) == 0 {
		return nil, errors.New("no certificate in the key pair")
	}
	leaf := c.Leaf
	if leaf == nil {
		var err error
		if leaf, err = x509.ParseCertificate(c.Certificate[0]); err != nil {
			return nil, fmt.Errorf("parse leaf: %w", err)
		}
		c.Leaf = leaf
	}
	signer, ok := c.PrivateKey.(crypto.Signer)
	if !ok {
		return nil, errors.New("the key pair has no usable private key")
	}
	if pub, ok := signer.Public().(interface{ Equal(crypto.PublicKey) bool }); !ok || !pub.Equal(leaf.PublicKey) {
		return nil, errors.New("the private key does not match the certificate")
	}
	now := time.Now()
	if !now.Before(leaf.NotAfter) {
		return nil, fmt.Errorf("the certificate expired at %s", leaf.NotAfter.UTC().Format(time.RFC3339))
	}
	// The lifetime counts from when the certificate became usable here:
	// NotBefore is backdated for clock skew, which for very short lifetimes
	// would otherwise put the renewal time in the past at once.
	start := leaf.NotBefore
	if obtained.After(start) {
		start = obtained
	}
	life := leaf.NotAfter.Sub(start)
	renewAt := start.Add(time.Duration(float64(life) * r.cfg.RenewFraction))
	return &heldCert{cert: &c, leaf: leaf, renewAt: renewAt}, nil
}

// RenewNow renews at once, e.g. after the CA rotated or this gateway's
// certificate was revoked, and swaps the result in. Concurrent calls (and
// Run) are serialised.
func (r *Rotator) RenewNow(ctx context.Context) error {
	r.renewMu.Lock()
	defer r.renewMu.Unlock()
	c, err := r.cfg.Renew(ctx)
	if err != nil {
		return fmt.Errorf("certs: renew certificate: %w", err)
	}
	held, err := r.hold(c, time.Now())
	if err != nil {
		return fmt.Errorf("certs: renewed certificate refused: %w", err)
	}
	r.current.Store(held)
	select {
	case r.kick <- struct{}{}:
	default:
	}
	if r.cfg.OnRenew != nil {
		r.cfg.OnRenew(held.leaf)
	}
	return nil
}

// Run renews the certificate at RenewFraction of its lifetime until ctx is
// done, backing off after failures, and then returns nil. Start it once, in
// its own goroutine.
func (r *Rotator) Run(ctx context.Context) error {
	var backoff, wait time.Duration // backoff is the base, wait adds jitter
	timer := time.NewTimer(0)
	defer timer.Stop()
	for {
		if backoff == 0 {
			wait = time.Until(r.current.Load().renewAt)
		}
		timer.Reset(max(wait, 0))
		select {
		case <-ctx.Done():
			return nil
		case <-r.kick:
			backoff = 0
			timer.Stop() // since Go 1.23 this also discards a pending tick
			continue
		case <-timer.C:
		}
		if time.Now().Before(r.current.Load().renewAt) {
			// RenewNow ran meanwhile; wait for the new time.
			backoff = 0
			continue
		}
		if err := r.RenewNow(ctx); err != nil {
			if ctx.Err() != nil {
				return nil
			}
			backoff = min(max(backoff*2, r.cfg.MinBackoff), r.cfg.MaxBackoff)
			// Up to 20% jitter, so gateways that failed together do not
			// retry together.
			wait = backoff + time.Duration(rand.Int64N(int64(backoff)/5+1))
			if r.cfg.OnError != nil {
				r.cfg.OnError(err, wait)
			}
			continue
		}
		backoff = 0
	}
}

// Current returns the certificate in use now.
func (r *Rotator) Current() *tls.Certificate { return r.current.Load().cert }

// Leaf returns the parsed leaf of the certificate in use now.
func (r *Rotator) Leaf() *x509.Certificate { return r.current.Load().leaf }

// NextRenewal returns when Run will renew the current certificate.
func (r *Rotator) NextRenewal() time.Time { return r.current.Load().renewAt }

// GetCertificate is for tls.Config.GetCertificate on servers.
func (r *Rotator) GetCertificate(*tls.ClientHelloInfo) (*tls.Certificate, error) {
	return r.current.Load().cert, nil
}

// GetClientCertificate is for tls.Config.GetClientCertificate on clients.
func (r *Rotator) GetClientCertificate(*tls.CertificateRequestInfo) (*tls.Certificate, error) {
	return r.current.Load().cert, nil
}
