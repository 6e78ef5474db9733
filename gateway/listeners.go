package gateway

import "net"

// WithListeners serves the outbound and inbound doors on listeners the
// caller has already bound; a nil one leaves its door to the configured
// address. A process that runs several gateways on ports the system picks
// ("127.0.0.1:0"), as `lienthong up` does, binds them first, so it knows and
// registers every address before any gateway starts, and no other process
// can take a port between the choosing and the listening. Run closes them
// when it stops; if Run fails before serving, the caller closes them.
func WithListeners(outbound, inbound net.Listener) Option {
	return func(g *Gateway) { g.bound = map[string]net.Listener{"outbound": outbound, "inbound": inbound} }
}
