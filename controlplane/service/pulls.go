package service

import (
	"sort"
	"sync"
	"time"

	"github.com/lienthong/lienthong/controlplane/auth"
)

// GatewayPull is what the control plane last saw of one gateway's
// configuration pulls: the revision it was sent, the one it holds (the
// If-None-Match of its latest pull names the configuration it verified and
// applied, so it acknowledges it), and when. It is kept in memory: after a
// restart of the control plane a gateway shows again at its next pull.
type GatewayPull struct {
	Member string `json:"member"`
	// System is the gateway system whose certificate pulled.
	System string `json:"system"`
	// Certificate is the serial of that certificate.
	Certificate string `json:"certificate"`
	// Sent is the ETag (a digest of the configuration's content) last served.
	Sent string `json:"sent"`
	// Held is the ETag the gateway said it holds; empty on its first pull.
	Held string    `json:"held,omitempty"`
	At   time.Time `json:"at"`
}

// pullLog records gateways' pulls; its zero value is ready to use.
type pullLog struct {
	mu sync.Mutex
	m  map[string]GatewayPull
}

// notePull records a pull of a gateway known by its certificate; token
// holders pulling a member's share (an operator's check) are not the gateway.
func (s *Service) notePull(p auth.Principal, member, sent, held string) {
	if !p.IsGateway() {
		return
	}
	s.pulls.mu.Lock()
	defer s.pulls.mu.Unlock()
	if s.pulls.m == nil {
		s.pulls.m = map[string]GatewayPull{}
	}
	s.pulls.m[member] = GatewayPull{Member: member, System: p.System, Certificate: p.Certificate, Sent: sent, Held: held, At: s.Now()}
}

// GatewayPulls lists the last pull of each gateway p may see: every
// gateway's for the platform operator, its own member's for anyone else.
func (s *Service) GatewayPulls(p auth.Principal) []GatewayPull {
	scope := p.ReadScope()
	s.pulls.mu.Lock()
	defer s.pulls.mu.Unlock()
	out := []GatewayPull{}
	for m, g := range s.pulls.m {
		if scope == "" || scope == m {
			out = append(out, g)
		}
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Member < out[j].Member })
	return out
}
