package main

import (
	"encoding/json"
	"fmt"
	"net"
	"strings"

	"github.com/lienthong/lienthong/internal/durable"
)

// upListeners are the listeners `up` binds before anything starts: each
// gateway door and the population backend, by the address bound.
type upListeners map[string]net.Listener

// bindListeners binds every gateway door and (with the SQLite population
// database) the backend the flags name, and replaces each address in o by
// the one bound: a port 0 becomes the port the system picked. Binding
// first means the federation is registered with the addresses that listen,
// and no other process can take a port between its choosing and its
// listening. On an error every listener bound so far is closed.
func bindListeners(o *upOptions) (upListeners, error) {
	flags := []struct {
		name string
		addr *string
	}{
		{"--consumer-outbound", &o.outbound}, {"--provider-inbound", &o.inbound},
		{"--provider-outbound", &o.providerOutbound}, {"--consumer-inbound", &o.consumerInbound},
		{"--justice-inbound", &o.justiceInbound}, {"--justice-outbound", &o.justiceOutbound},
		{"--lgsp-inbound", &o.lgspInbound}, {"--lgsp-outbound", &o.lgspOutbound},
	}
	if o.populationDSN == "" {
		flags = append(flags, struct {
			name string
			addr *string
		}{"--backend", &o.backend})
	}
	ls := upListeners{}
	for _, f := range flags {
		ln, err := net.Listen("tcp", *f.addr)
		if err != nil {
			ls.close()
			return nil, fmt.Errorf("%s %s: %w", f.name, *f.addr, err)
		}
		*f.addr = ln.Addr().String()
		ls[*f.addr] = ln
	}
	return ls, nil
}

// take hands over the listener bound at addr (nil if none): its new owner
// closes it.
func (ls upListeners) take(addr string) net.Listener {
	ln := ls[addr]
	delete(ls, addr)
	return ln
}

// close closes the listeners not handed over.
func (ls upListeners) close() {
	for addr, ln := range ls {
		_ = ln.Close()
		delete(ls, addr)
	}
}

// upReady is what --ready-file holds once the federation is ready: the
// address of every listener `up` runs, as bound (a port 0 given on the
// command line is the port the system picked), for scripts and tests that
// start it on ports nobody has to guess.
type upReady struct {
	// ControlPlane is the management API's URL.
	ControlPlane string `json:"controlPlane"`
	// Gateways are each agency's two doors, by member code.
	Gateways map[string]upGatewayAddrs `json:"gateways"`
	// Backend is the population database's REST backend ("" with
	// --population-dsn); Kafka the embedded broker ("" without feeds).
	Backend string `json:"backend,omitempty"`
	Kafka   string `json:"kafka,omitempty"`
}

// upGatewayAddrs are one gateway's doors: where its systems call and where
// peer gateways call.
type upGatewayAddrs struct {
	Outbound string `json:"outbound"`
	Inbound  string `json:"inbound"`
}

// readyAddrs collects the addresses in force.
func readyAddrs(cpURL string, o upOptions) upReady {
	r := upReady{ControlPlane: cpURL, Gateways: map[string]upGatewayAddrs{}, Kafka: o.kafkaListen}
	if o.populationDSN == "" {
		r.Backend = o.backend
	}
	for _, a := range upAgencies {
		r.Gateways[a.member] = upGatewayAddrs{Outbound: a.outbound(o), Inbound: a.inbound(o)}
	}
	return r
}

// writeReadyFile writes r to path whole (a reader never sees half of it).
func writeReadyFile(path string, r upReady) error {
	raw, err := json.MarshalIndent(r, "", "  ")
	if err != nil {
		return err
	}
	if err := durable.WriteFile(path, append(raw, '\n'), 0o644); err != nil {
		return fmt.Errorf("--ready-file: %w", err)
	}
	return nil
}

// hostPort is the host:port of an https:// URL.
func hostPort(url string) string { return strings.TrimPrefix(url, "https://") }
