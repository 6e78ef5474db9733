package ir

import (
	"github.com/cespare/xxhash/v2"
	"strconv"
)

// Versions name the content of an edge per resource type. Equal content
// gives equal versions, in any process, so the server sets a new snapshot
// only for a node whose edge changed, and Envoy is sent only the types
// that did.
type Versions struct {
	Listeners, Routes, Clusters, Secrets string
}

// Versions hashes the edge's parts (xxHash64 over every field).
func (e *Edge) Versions() Versions {
	var v Versions
	h := &hasher{d: xxhash.New()}
	for _, l := range e.Listeners {
		h.w(l.Name, l.Address, u(l.Port), l.RouteTable, l.TLS.CertificateSecret, l.TLS.TrustSecret, l.TLS.PeerSPIFFEPrefix)
		h.w(l.TLS.PeerSPIFFE...)
		h.w(l.ExtAuthz.Cluster, strconv.FormatBool(l.ExtAuthz.IncludePeerCertificate), u(l.ExtAuthz.BodyBytes))
		h.w(l.ExtAuthz.DisallowedHeaders...)
		if l.ExtProc != nil {
			h.w("ext_proc", l.ExtProc.Cluster)
			h.w(l.ExtProc.ForwardNamespaces...)
		}
	}
	v.Listeners = h.sum()
	for _, r := range e.Routes {
		h.w(r.Name)
		h.w(r.RemoveRequestHeaders...)
		for _, rt := range r.Routes {
			h.w(rt.Name, rt.Prefix, rt.Cluster, rt.Provider, rt.Dataset, strconv.FormatBool(rt.AnsweredByGateway), strconv.FormatBool(rt.SendBody), strconv.FormatBool(rt.Outbound))
		}
	}
	v.Routes = h.sum()
	for _, c := range e.Clusters {
		h.w(c.Name, c.Host, u(c.Port), strconv.FormatBool(c.HTTP2), c.Upstream.CertificateSecret, c.Upstream.TrustSecret, c.Upstream.PeerSPIFFE)
	}
	v.Clusters = h.sum()
	for _, s := range e.Secrets {
		h.w(s.Name, s.TrustPEM)
		if s.Certificate != nil {
			h.w(s.Certificate.Dir, s.Certificate.CertFile, s.Certificate.KeyFile)
		}
	}
	v.Secrets = h.sum()
	return v
}

// hasher streams fields into xxHash, each with its length so that field
// boundaries count, without building the text in memory.
type hasher struct {
	d       *xxhash.Digest
	scratch [24]byte
}

func (h *hasher) w(ss ...string) {
	for _, s := range ss {
		b := strconv.AppendInt(h.scratch[:0], int64(len(s)), 10)
		_, _ = h.d.Write(append(b, 0))
		_, _ = h.d.WriteString(s)
	}
	_, _ = h.d.Write([]byte{1})
}

func u(n uint32) string { return strconv.FormatUint(uint64(n), 10) }

func (h *hasher) sum() string {
	sum := h.d.Sum64()
	h.d.Reset()
	return strconv.FormatUint(sum, 16)
}
