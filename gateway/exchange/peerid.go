package exchange

import (
	"crypto/x509"
	"sync"

	"github.com/lienthong/lienthong/certs"
)

// maxPeerIDs bounds the SPIFFE ids peerIDs keeps; past it the cache starts
// over, so certificates of closed connections are not kept for ever.
const maxPeerIDs = 1024

// peerIDs remembers the SPIFFE id read from each client certificate. A
// caller's certificate is the same parsed *x509.Certificate for every
// request of its TLS connection, and reading the id re-parses the SAN
// extension (certs.SPIFFEID), a measurable part of every exchange. Only the
// id is cached: expiry, revocation and the trust domain are checked on every
// request. The map holds the certificate, so its address cannot be reused
// by another certificate while it is a key.
type peerIDs struct {
	mu  sync.Mutex
	ids map[*x509.Certificate]string
}

// spiffeID returns certs.SPIFFEID(leaf), from the cache when it was read
// before. Failures are not cached.
func (p *peerIDs) spiffeID(leaf *x509.Certificate) (string, error) {
	p.mu.Lock()
	id, ok := p.ids[leaf]
	p.mu.Unlock()
	if ok {
		return id, nil
	}
	id, err := certs.SPIFFEID(leaf)
	if err != nil {
		return "", err
	}
	p.mu.Lock()
	if p.ids == nil || len(p.ids) >= maxPeerIDs {
		p.ids = make(map[*x509.Certificate]string)
	}
	p.ids[leaf] = id
	p.mu.Unlock()
	return id, nil
}
