package main

import (
	"encoding/json"
	"fmt"
	"io"
	"net"
	"strings"
	"text/tabwriter"

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
	// ControlPlaneMetrics is the control plane's operations listener
	// (/metrics, /healthz, /readyz); FeedRouterMetrics each feed router's,
	// by the member whose provider system it routes.
	ControlPlaneMetrics string            `json:"controlPlaneMetrics"`
	FeedRouterMetrics   map[string]string `json:"feedRouterMetrics,omitempty"`
}

// upGatewayAddrs are one gateway's doors: where its systems call, where
// peer gateways call, and its operations listener.
type upGatewayAddrs struct {
	Outbound string `json:"outbound"`
	Inbound  string `json:"inbound"`
	Metrics  string `json:"metrics"`
}

// readyAddrs collects the addresses in force.
func readyAddrs(cpURL string, o upOptions, ops upOps) upReady {
	r := upReady{ControlPlane: cpURL, Gateways: map[string]upGatewayAddrs{}, Kafka: o.kafkaListen,
		ControlPlaneMetrics: ops.controlPlane, FeedRouterMetrics: ops.routers}
	if o.populationDSN == "" {
		r.Backend = o.backend
	}
	for _, a := range upAgencies {
		r.Gateways[a.member] = upGatewayAddrs{Outbound: a.outbound(o), Inbound: a.inbound(o), Metrics: ops.gateways[a.member]}
	}
	return r
}

// upMetricsListen is where each process of `up` serves its operations
// listener: loopback, on a port the system picks (printOps shows it).
const upMetricsListen = "127.0.0.1:0"

// upOps are the operations listeners of the processes `up` runs: the
// control plane's, and each gateway's and feed router's by member code.
type upOps struct {
	controlPlane      string
	gateways, routers map[string]string
}

// printOps shows where Prometheus scrapes each process, after the curl
// commands.
func printOps(out io.Writer, ops upOps) {
	fmt.Fprintln(out, "Metrics, health and readiness of each process (GET /metrics, /healthz, /readyz; alert rules and a dashboard in deploy/observability):")
	tw := tabwriter.NewWriter(out, 0, 0, 2, ' ', 0)
	if ops.controlPlane != "" {
		fmt.Fprintf(tw, "  control plane\t\thttp://%s/metrics\n", ops.controlPlane)
	}
	for _, a := range upAgencies {
		if addr := ops.gateways[a.member]; addr != "" {
			fmt.Fprintf(tw, "  gateway\t%s\thttp://%s/metrics\n", a.member, addr)
		}
	}
	for _, a := range upAgencies {
		if addr := ops.routers[a.member]; addr != "" {
			fmt.Fprintf(tw, "  feed router\t%s\thttp://%s/metrics\n", a.member, addr)
		}
	}
	tw.Flush()
	fmt.Fprintln(out)
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
