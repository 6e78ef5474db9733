package gateway

import "net"

// WithListeners serves the outbound and inbound doors on listeners the
// caller has already bound; a nil one leaves its door to the configured
// address. A process that runs several gateways on ports the system picks
// ("127.0.0.1:0"), as `lienthong up` does, binds them first, so it knows and
// registers every address before any gateway starts, and no other process
// can take a port between the choosing and the listening.
//
// From New on the gateway owns them: New closes them if it fails, Run
// closes them when it stops or fails. The caller closes them only if it
// never calls New.
func WithListeners(outbound, inbound net.Listener) Option {
	return func(g *Gateway) { g.hand("outbound", outbound); g.hand("inbound", inbound) }
}

// WithEnvoyListener serves the Envoy doors (ext_authz and ext_proc) on a
// listener the caller has already bound, instead of envoy.listen, owned
// as WithListeners says.
func WithEnvoyListener(ln net.Listener) Option {
	return func(g *Gateway) { g.hand("envoy", ln) }
}

// WithHealthListener serves /readyz on a listener the caller has already
// bound, instead of health.listen, owned as WithListeners says.
func WithHealthListener(ln net.Listener) Option {
	return func(g *Gateway) { g.hand("health", ln) }
}

// WithMetricsListener serves the operations listener (/metrics, /healthz,
// /readyz) on a listener the caller has already bound, instead of
// metrics.listen, owned as WithListeners says.
func WithMetricsListener(ln net.Listener) Option {
	return func(g *Gateway) { g.hand("metrics", ln) }
}

// hand records a listener handed in for a door; nil leaves the door to
// its configured address.
func (g *Gateway) hand(door string, ln net.Listener) {
	if ln == nil {
		return
	}
	if g.bound == nil {
		g.bound = map[string]net.Listener{}
	}
	g.bound[door] = ln
}

// closeListeners closes the listeners handed in. A listener a server has
// already closed reports an error, which is of no interest here.
func (g *Gateway) closeListeners() {
	for _, ln := range g.bound {
		_ = ln.Close()
	}
}
