package gateway

import (
	"crypto/x509"
	"sync/atomic"

	"github.com/lienthong/lienthong/certs"
)

// ownSPIFFECached returns ownSPIFFE read once per certificate the rotator
// holds: the Envoy doors ask for it on every call, and the certificate
// changes only at a renewal (a new parsed leaf, so a new pointer).
func (g *Gateway) ownSPIFFECached() func() string {
	type leafID struct {
		leaf *x509.Certificate
		id   string
	}
	var last atomic.Pointer[leafID]
	return func() string {
		leaf := g.rotator.Leaf()
		if c := last.Load(); c != nil && c.leaf == leaf {
			return c.id
		}
		if leaf == nil {
			return ""
		}
		id, err := certs.SPIFFEID(leaf)
		if err != nil {
			return ""
		}
		last.Store(&leafID{leaf: leaf, id: id})
		return id
	}
}
