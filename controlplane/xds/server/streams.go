package server

import (
	"context"
	"log/slog"
	"slices"
	"strings"
	"sync"
	"time"

	corev3 "github.com/envoyproxy/go-control-plane/envoy/config/core/v3"
	discoveryv3 "github.com/envoyproxy/go-control-plane/envoy/service/discovery/v3"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials"
	"google.golang.org/grpc/peer"
	"google.golang.org/grpc/status"

	"github.com/lienthong/lienthong/certs"
)

// NodeStatus is what the console shows of one Envoy node: per resource
// type, the version last sent and the version it acknowledged, and its
// last refusal.
type NodeStatus struct {
	Node  string                `json:"node"`
	Types map[string]TypeStatus `json:"types"`
	// Connected is the number of open streams of the node.
	Connected int `json:"connected"`
}

// TypeStatus is one resource type of one node.
type TypeStatus struct {
	Sent  string `json:"sent,omitempty"`
	Acked string `json:"acked,omitempty"`
	// Nacked is the last version the node refused, and NackError why;
	// the node keeps running on Acked.
	Nacked    string    `json:"nacked,omitempty"`
	NackError string    `json:"nackError,omitempty"`
	At        time.Time `json:"at"`
}

// stream is one open ADS stream: the member its certificate names and,
// per type, the nonce and version of the last response.
type stream struct {
	member string
	node   string
	sent   map[string]sent
}

type sent struct{ nonce, version string }

// streams implements go-control-plane's callbacks: it authorises each
// stream by its TLS peer and keeps the per-node status.
type streams struct {
	log         *slog.Logger
	trustDomain string

	mu    sync.Mutex
	open  map[int64]*stream
	nodes map[string]*NodeStatus
}

func newStreams(log *slog.Logger, trustDomain string) *streams {
	return &streams{log: log, trustDomain: trustDomain, open: map[int64]*stream{}, nodes: map[string]*NodeStatus{}}
}

// peerMember names the member of the stream's client certificate. The
// chain was verified in the handshake (TLSConfig); here it is only read.
func (s *streams) peerMember(ctx context.Context) (string, error) {
	p, ok := peer.FromContext(ctx)
	if !ok {
		return "", status.Error(codes.Unauthenticated, "no peer")
	}
	info, ok := p.AuthInfo.(credentials.TLSInfo)
	if !ok || len(info.State.PeerCertificates) == 0 {
		return "", status.Error(codes.Unauthenticated, "a client certificate is required")
	}
	id, err := certs.SPIFFEID(info.State.PeerCertificates[0])
	if err != nil {
		return "", status.Errorf(codes.Unauthenticated, "client certificate: %v", err)
	}
	member, err := memberOfSPIFFE(id, s.trustDomain)
	if err != nil {
		return "", status.Errorf(codes.PermissionDenied, "client certificate: %v", err)
	}
	return member, nil
}

func (s *streams) opened(ctx context.Context, id int64) error {
	member, err := s.peerMember(ctx)
	if err != nil {
		s.log.Warn("xds stream refused", "stream", id, "reason", err.Error())
		return err
	}
	s.mu.Lock()
	s.open[id] = &stream{member: member, sent: map[string]sent{}}
	s.mu.Unlock()
	return nil
}

func (s *streams) closed(id int64) {
	s.mu.Lock()
	defer s.mu.Unlock()
	st, ok := s.open[id]
	if !ok {
		return
	}
	delete(s.open, id)
	if n := s.nodes[st.node]; n != nil && n.Connected > 0 {
		n.Connected--
	}
}

// authorise checks that the node id of a request is the member the
// stream's certificate names: a node gets only its own member's edge, and
// a node claiming another member's id gets nothing at all.
func (s *streams) authorise(id int64, node *corev3.Node) (*stream, error) {
	st, ok := s.open[id]
	if !ok {
		return nil, status.Error(codes.Unauthenticated, "stream not authorised")
	}
	if node.GetId() != st.member {
		s.log.Warn("xds node refused: node id is not the certificate's member", "stream", id, "node", node.GetId(), "member", st.member)
		return nil, status.Errorf(codes.PermissionDenied, "node id %q is not the member %s of the client certificate", node.GetId(), st.member)
	}
	if st.node == "" {
		st.node = st.member
		s.node(st.node).Connected++
	}
	return st, nil
}

func (s *streams) node(id string) *NodeStatus {
	n := s.nodes[id]
	if n == nil {
		n = &NodeStatus{Node: id, Types: map[string]TypeStatus{}}
		s.nodes[id] = n
	}
	return n
}

// request handles one discovery request: authorisation, then its meaning
// as an ACK or a NACK of the last response of its type.
func (s *streams) request(id int64, req *discoveryv3.DiscoveryRequest) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	st, err := s.authorise(id, req.GetNode())
	if err != nil {
		return err
	}
	typ := req.GetTypeUrl()
	last, ok := st.sent[typ]
	if !ok || req.GetResponseNonce() != last.nonce {
		return nil // a first request, or one about an older response
	}
	n := s.node(st.node)
	ts := n.Types[shortType(typ)]
	ts.At = time.Now().UTC()
	if d := req.GetErrorDetail(); d != nil {
		ts.Nacked, ts.NackError = last.version, d.GetMessage()
		s.log.Warn("xds configuration refused by node", "node", st.node, "type", shortType(typ),
			"refused_version", last.version, "running_version", req.GetVersionInfo(), "error", d.GetMessage())
		// Take the refusal as having seen the version: the cache then waits
		// for the next change instead of sending the same refused
		// configuration again, and the node keeps what it runs.
		req.VersionInfo = last.version
	} else {
		ts.Acked = req.GetVersionInfo()
	}
	n.Types[shortType(typ)] = ts
	return nil
}

func (s *streams) response(id int64, resp *discoveryv3.DiscoveryResponse) {
	s.mu.Lock()
	defer s.mu.Unlock()
	st, ok := s.open[id]
	if !ok {
		return
	}
	st.sent[resp.GetTypeUrl()] = sent{nonce: resp.GetNonce(), version: resp.GetVersionInfo()}
	n := s.node(st.node)
	ts := n.Types[shortType(resp.GetTypeUrl())]
	ts.Sent, ts.At = resp.GetVersionInfo(), time.Now().UTC()
	n.Types[shortType(resp.GetTypeUrl())] = ts
}

func (s *streams) status() []NodeStatus {
	s.mu.Lock()
	defer s.mu.Unlock()
	out := make([]NodeStatus, 0, len(s.nodes))
	for _, n := range s.nodes {
		c := *n
		c.Types = make(map[string]TypeStatus, len(n.Types))
		for k, v := range n.Types {
			c.Types[k] = v
		}
		out = append(out, c)
	}
	slices.SortFunc(out, func(a, b NodeStatus) int { return strings.Compare(a.Node, b.Node) })
	return out
}

// shortType is a type URL's message name, e.g. "Listener".
func shortType(typeURL string) string { return typeURL[strings.LastIndex(typeURL, ".")+1:] }

// The go-control-plane callbacks.

// OnStreamOpen authorises a state-of-the-world stream by its TLS peer.
func (s *streams) OnStreamOpen(ctx context.Context, id int64, _ string) error {
	return s.opened(ctx, id)
}

// OnStreamClosed forgets the stream.
func (s *streams) OnStreamClosed(id int64, _ *corev3.Node) { s.closed(id) }

// OnStreamRequest checks the node id and records ACKs and NACKs.
func (s *streams) OnStreamRequest(id int64, req *discoveryv3.DiscoveryRequest) error {
	return s.request(id, req)
}

// OnStreamResponse records the version sent.
func (s *streams) OnStreamResponse(_ context.Context, id int64, _ *discoveryv3.DiscoveryRequest, resp *discoveryv3.DiscoveryResponse) {
	s.response(id, resp)
}

// OnDeltaStreamOpen authorises a delta stream by its TLS peer.
func (s *streams) OnDeltaStreamOpen(ctx context.Context, id int64, _ string) error {
	return s.opened(ctx, id)
}

// OnDeltaStreamClosed forgets the stream.
func (s *streams) OnDeltaStreamClosed(id int64, _ *corev3.Node) { s.closed(id) }

// OnStreamDeltaRequest checks the node id of a delta request.
func (s *streams) OnStreamDeltaRequest(id int64, req *discoveryv3.DeltaDiscoveryRequest) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	_, err := s.authorise(id, req.GetNode())
	return err
}

// OnStreamDeltaResponse keeps no status: Envoy is configured for state of the world.
func (s *streams) OnStreamDeltaResponse(int64, *discoveryv3.DeltaDiscoveryRequest, *discoveryv3.DeltaDiscoveryResponse) {
}

// OnFetchRequest refuses REST fetches: they carry no TLS peer to authorise
// (the server registers no REST handler; this is the second lock).
func (s *streams) OnFetchRequest(context.Context, *discoveryv3.DiscoveryRequest) error {
	return status.Error(codes.PermissionDenied, "fetch is not served")
}

// OnFetchResponse is never called (fetches are refused).
func (s *streams) OnFetchResponse(*discoveryv3.DiscoveryRequest, *discoveryv3.DiscoveryResponse) {}
