package ir

import (
	"hash"
	"hash/fnv"
	"strconv"
)

// Versions name the content of an edge per resource type. Equal content
// gives equal versions, in any process, so the server sets a new snapshot
// only for a node whose edge changed, and Envoy is sent only the types
// that did.
type Versions struct {
	Listeners, Routes, Clusters, Secrets string
}

// Versions hashes the edge's parts (FNV-1a, 64 bits, over every field).
func (e *Edge) Versions() Versions {
	var v Versions
	h := fnv.New64a()
	for _, l := range e.Listeners {
		w(h, l.Name, l.Address, u(l.Port), l.RouteTable, l.TLS.CertificateSecret, l.TLS.TrustSecret, l.TLS.PeerSPIFFEPrefix)
		w(h, l.TLS.PeerSPIFFE...)
		w(h, l.ExtAuthz.Cluster, strconv.FormatBool(l.ExtAuthz.IncludePeerCertificate))
		w(h, l.ExtAuthz.DisallowedHeaders...)
		if l.ExtProc != nil {
			w(h, "ext_proc", l.ExtProc.Cluster)
			w(h, l.ExtProc.ForwardNamespaces...)
		}
	}
	v.Listeners = sum(h)
	for _, r := range e.Routes {
		w(h, r.Name)
		w(h, r.RemoveRequestHeaders...)
		for _, rt := range r.Routes {
			w(h, rt.Name, rt.Prefix, rt.Cluster, rt.Provider, rt.Dataset)
		}
	}
	v.Routes = sum(h)
	for _, c := range e.Clusters {
		w(h, c.Name, c.Host, u(c.Port), strconv.FormatBool(c.HTTP2), c.Upstream.CertificateSecret, c.Upstream.TrustSecret, c.Upstream.PeerSPIFFE)
	}
	v.Clusters = sum(h)
	for _, s := range e.Secrets {
		w(h, s.Name, s.TrustPEM)
		if s.Certificate != nil {
			w(h, s.Certificate.Dir, s.Certificate.CertFile, s.Certificate.KeyFile)
		}
	}
	v.Secrets = sum(h)
	return v
}

// w writes each string with its length, so that field boundaries count.
func w(h hash.Hash64, ss ...string) {
	var n [8]byte
	for _, s := range ss {
		h.Write(strconv.AppendInt(n[:0], int64(len(s)), 10))
		h.Write([]byte{0})
		h.Write([]byte(s))
	}
	h.Write([]byte{1})
}

func u(n uint32) string { return strconv.FormatUint(uint64(n), 10) }

func sum(h hash.Hash64) string {
	s := strconv.FormatUint(h.Sum64(), 16)
	h.Reset()
	return s
}
