package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"slices"
	"time"

	"github.com/spf13/cobra"

	"github.com/lienthong/lienthong/audit"
	"github.com/lienthong/lienthong/controlplane"
	"github.com/lienthong/lienthong/controlplane/client"
	"github.com/lienthong/lienthong/gateway"
	"github.com/lienthong/lienthong/gateway/feed/broker"
	"github.com/lienthong/lienthong/internal/problem"
)

type upOptions struct {
	dataDir, seed, logLevel string
	controlPlane, backend   string
	populationDSN           string
	// Each agency's gateway: where its own systems call (outbound) and
	// where peer gateways call (inbound).
	inbound, outbound                 string // Public Security in, Social Security out (the first two flags `up` had)
	providerOutbound, consumerInbound string
	justiceInbound, justiceOutbound   string
	lgspInbound, lgspOutbound         string
	kafkaListen                       string
	readyFile                         string
	citizens                          int
	trickleEvery                      time.Duration
	trickleMax                        int
}

func newUpCommand() *cobra.Command {
	var o upOptions
	cmd := &cobra.Command{
		Use:   "up",
		Short: "Run the whole demo federation in one process: control plane, four agencies' gateways, population database, joint-service feeds",
		Long: `Run the embedded federation of the two joint public services, all on loopback:
the control plane (seeded from examples/), and a gateway for each of four agencies:
the Ministry of Public Security with its national population database (synthetic
citizens in SQLite, or in PostgreSQL with --population-dsn), the Ministry of Justice
with its civil registry, Vietnam Social Security, and Hà Nội's provincial portal (LGSP).

On first start it registers and enrols every gateway and calling system, files the
access requests and decides them as the providers' approvers would (masks, a row
scope, a refused sensitive field, one request left pending), and starts the feed
routers. While it runs, the civil registry publishes a synthetic birth or death
registration every --trickle-every (at most --trickle-max per start); the population
database answers each with a personal id issued or a residence removed, and Social
Security's system follows its feeds and checks each newborn's mother with a query,
all through the agencies' gateways.

It prints one ready line with the time it took, then curl commands for an allowed,
a masked, a verify and a refused read, a row-scoped read, and the feeds. Later starts
reuse everything in --data-dir; the addresses given apply on every start. Any
address may have port 0: the system picks a free port, and the output (and
--ready-file, as JSON) names the one bound. A data
directory whose catalog is missing or damaged is never started over: the start
refuses and says how to restore (docs/operations.md). SIGTERM or Ctrl-C stops
cleanly; a second one at once.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error { return runUp(cmd.Context(), cmd.OutOrStdout(), o) },
	}
	f := cmd.Flags()
	f.StringVar(&o.dataDir, "data-dir", envOr("LIENTHONG_DATA_DIR", ".lienthong"), "directory for all state")
	f.StringVar(&o.seed, "seed", "examples/federation.json", "federation file loaded into an empty catalog")
	f.StringVar(&o.controlPlane, "listen", "127.0.0.1:8443", "control plane address")
	f.StringVar(&o.outbound, "consumer-outbound", "127.0.0.1:9443", "Social Security gateway, where its systems call")
	f.StringVar(&o.inbound, "provider-inbound", "127.0.0.1:9444", "Public Security gateway, where peer gateways call")
	f.StringVar(&o.providerOutbound, "provider-outbound", "127.0.0.1:9445", "Public Security gateway, where its own systems call")
	f.StringVar(&o.consumerInbound, "consumer-inbound", "127.0.0.1:9446", "Social Security gateway, where peer gateways call")
	f.StringVar(&o.justiceInbound, "justice-inbound", "127.0.0.1:9447", "Ministry of Justice gateway, where peer gateways call")
	f.StringVar(&o.justiceOutbound, "justice-outbound", "127.0.0.1:9448", "Ministry of Justice gateway, where its own systems call")
	f.StringVar(&o.lgspInbound, "lgsp-inbound", "127.0.0.1:9449", "Hà Nội LGSP gateway, where peer gateways call")
	f.StringVar(&o.lgspOutbound, "lgsp-outbound", "127.0.0.1:9450", "Hà Nội LGSP gateway, where its own systems call")
	f.StringVar(&o.backend, "backend", "127.0.0.1:9480", "population database's REST backend (loopback only; unused with --population-dsn)")
	f.StringVar(&o.populationDSN, "population-dsn", os.Getenv("LIENTHONG_POPULATION_DSN"), "serve the population database from this PostgreSQL database (table lienthong_citizens) instead of SQLite")
	f.StringVar(&o.kafkaListen, "kafka-listen", "127.0.0.1:9092", "embedded Kafka-protocol broker for change feeds (empty: no feeds)")
	f.IntVar(&o.citizens, "citizens", 100_000, "synthetic citizens generated into a new population database")
	f.DurationVar(&o.trickleEvery, "trickle-every", 3*time.Second, "how often the civil registry publishes a synthetic registration (0: never)")
	f.IntVar(&o.trickleMax, "trickle-max", 200, "at most this many synthetic registrations per start")
	f.StringVar(&o.readyFile, "ready-file", "", "once ready, write every listener's address (as bound: port 0 picks one) to this file as JSON")
	f.StringVar(&o.logLevel, "log-level", "warn", "log level: debug, info, warn, error")
	return cmd
}

func runUp(ctx context.Context, out io.Writer, o upOptions) (err error) {
	began := time.Now()
	var level slog.Level
	if err := level.UnmarshalText([]byte(o.logLevel)); err != nil {
		return fmt.Errorf("--log-level: %w", err)
	}
	log := slog.New(slog.NewJSONHandler(os.Stderr, &slog.HandlerOptions{Level: level}))
	if err := os.MkdirAll(o.dataDir, 0o700); err != nil {
		return err
	}
	if o.readyFile != "" { // a file from an earlier start names other ports
		if err := os.Remove(o.readyFile); err != nil && !errors.Is(err, os.ErrNotExist) {
			return fmt.Errorf("--ready-file: %w", err)
		}
	}

	// Each part runs until its own context ends, so a stop can take them
	// down in order: the trickle and the feed routers, the gateways (each
	// draining its exchanges and syncing its audit log), the broker, the
	// control plane (closing its store), then the population database.
	var stack stopStack
	errc := make(chan error, 16)
	// Every gateway door and the backend are bound first, so the addresses
	// registered and printed are the ones that listen, port 0 included.
	listeners, err := bindListeners(&o)
	if err != nil {
		return err
	}
	defer listeners.close() // those not handed over: a start that failed
	defer func() {
		stack.stopAll()
		// A part that failed while stopping (its audit log could not be
		// synced, say) makes the exit status say so.
		if err == nil {
			select {
			case err = <-errc:
			default:
			}
		}
	}()

	ready := make(chan controlplane.Ready, 1)
	cpCtx, cpStop := context.WithCancel(context.Background())
	cpDone := make(chan struct{})
	citizen := demoCitizen(cpCtx, log, "")
	go func() {
		defer close(cpDone)
		err := controlplane.Run(cpCtx, controlplane.Config{
			DataDir: o.dataDir, Listen: o.controlPlane, Seed: o.seed, Log: log, Citizen: citizen,
			MetricsListen: upMetricsListen,
		}, func(r controlplane.Ready) { ready <- r })
		if err != nil {
			errc <- fmt.Errorf("control plane: %w", err)
		}
	}()
	stack.push(func() { cpStop(); <-cpDone })
	var cp controlplane.Ready
	select {
	case cp = <-ready:
		o.controlPlane = hostPort(cp.URL) // as bound
	case err := <-errc:
		return err
	case <-ctx.Done():
		return nil
	}
	// The population database loads (on a first start, generating its
	// citizens) while the federation is set up; not before the control
	// plane has found the data directory sound, so a refused start
	// changes nothing in it.
	popc := make(chan populationResult, 1)
	go func() { popc <- openPopulation(ctx, o, log) }()
	var pop *population
	popTaken := false
	defer func() {
		if !popTaken { // still loading when the start failed: wait, then close
			if r := <-popc; r.pop != nil {
				r.pop.close()
			}
		}
	}()
	admin, err := client.New(cp.URL, cp.AdminToken, cp.CAFile)
	if err != nil {
		return err
	}
	// One key names data subjects in every gateway's audit records.
	if _, err := audit.CreateSubjectKey(filepath.Join(o.dataDir, auditSubjectKeyFile)); err != nil {
		return err
	}
	dir := filepath.Join(o.dataDir, "federation")
	fed, err := setUpFederation(ctx, admin, dir, o)
	if err != nil {
		if ctx.Err() != nil {
			return nil
		}
		return fmt.Errorf("set up the federation: %w", err)
	}

	select {
	case r := <-popc:
		pop, popTaken = r.pop, true
		if r.err != nil {
			return r.err
		}
	case <-ctx.Done():
		return nil
	}
	stack.push(pop.close) // pushed after the control plane: stops before it, after the gateways
	if err := pop.serve(listeners.take(o.backend), errc, &stack); err != nil {
		return err
	}
	// What the flags say applies on every start, not only the first.
	if err := applyAddresses(ctx, admin, dir, o, pop); err != nil {
		if ctx.Err() != nil {
			return nil
		}
		return fmt.Errorf("apply the addresses given: %w", err)
	}
	kafka, err := startBroker(o, &stack)
	if err != nil {
		return err
	}
	if kafka != nil {
		o.kafkaListen = kafka.Brokers[0] // as bound
	}
	ops := upOps{controlPlane: cp.MetricsAddress, gateways: map[string]string{}}
	for _, a := range upAgencies {
		outbound, inbound := listeners.take(a.outbound(o)), listeners.take(a.inbound(o))
		addrs, err := startGateway(ctx, dir, a.member, kafka, log, errc, &stack, outbound, inbound, gateway.WithMetricsListen(upMetricsListen))
		ops.gateways[a.member] = addrs.Metrics
		if err != nil {
			if ctx.Err() != nil {
				return nil // stopped while starting
			}
			return err
		}
	}
	if err := startFeeds(ctx, admin, dir, filepath.Join(o.dataDir, auditSubjectKeyFile), kafka, log, errc, &stack, &ops); err != nil {
		if ctx.Err() != nil {
			return nil
		}
		return err
	}
	if err := startPrograms(dir, o, kafka, pop, log, &stack); err != nil {
		return err
	}
	trickle, err := startTrickle(dir, o, kafka, pop, log, &stack)
	if err != nil {
		return err
	}

	if o.readyFile != "" {
		if err := writeReadyFile(o.readyFile, readyAddrs(cp.URL, o, ops)); err != nil {
			return err
		}
	}
	fmt.Fprintf(out, "lienthong federation ready in %.1fs\n\n", time.Since(began).Seconds())
	if err := printConsole(ctx, out, cp, citizen); err != nil {
		return err
	}
	if err := printUp(out, cp, dir, o, pop, fed, trickle); err != nil {
		return err
	}
	printOps(out, ops)
	select {
	case err := <-errc:
		return err
	case <-ctx.Done():
	}
	log.Info("stopping: draining exchanges, syncing audit logs, closing the store")
	return nil
}

// auditSubjectKeyFile is the federation's audit subject key, in the control
// plane's data directory.
const auditSubjectKeyFile = "audit-subject.key"

// stopStack runs stop functions in reverse order of their pushing, once.
type stopStack struct{ fns []func() }

func (s *stopStack) push(fn func()) { s.fns = append(s.fns, fn) }

func (s *stopStack) stopAll() {
	for i := len(s.fns) - 1; i >= 0; i-- {
		s.fns[i]()
	}
	s.fns = nil
}

// startGateway runs one agency's gateway from the configuration
// applyAddresses wrote, on the outbound and inbound listeners given (nil:
// the configured address), and returns once it listens, with the addresses
// it serves. It owns the listeners until it hands them to gateway.New,
// which owns them from then on, whether it fails or not.
func startGateway(ctx context.Context, dir, member string, kafka *broker.Config, log *slog.Logger, errc chan<- error, stack *stopStack, outbound, inbound net.Listener, opts ...gateway.Option) (gateway.Addrs, error) {
	cfg, err := gateway.LoadConfig(filepath.Join(dir, member, "gateway.json"))
	if err != nil {
		for _, ln := range []net.Listener{outbound, inbound} {
			if ln != nil {
				_ = ln.Close()
			}
		}
		return gateway.Addrs{}, err
	}
	withFeeds(cfg, kafka)
	opts = append(slices.Clip(opts), gateway.WithListeners(outbound, inbound))
	gw, err := gateway.New(ctx, cfg, log.With("gateway", member), opts...)
	if err != nil {
		return gateway.Addrs{}, fmt.Errorf("gateway of %s: %w", member, err)
	}
	gwCtx, gwStop := context.WithCancel(context.Background())
	gwReady, gwDone := make(chan struct{}), make(chan struct{})
	var addrs gateway.Addrs
	failed := make(chan error, 1)
	go func() {
		defer close(gwDone)
		if err := gw.Run(gwCtx, func(a gateway.Addrs) { addrs = a; close(gwReady) }); err != nil {
			select {
			case failed <- err:
			default:
			}
			errc <- fmt.Errorf("gateway of %s: %w", member, err)
		}
	}()
	stack.push(func() { gwStop(); <-gwDone })
	select {
	case <-gwReady:
		return addrs, nil
	case err := <-failed:
		return gateway.Addrs{}, fmt.Errorf("gateway of %s: %w", member, err)
	case <-ctx.Done():
		return gateway.Addrs{}, ctx.Err()
	}
}

func isStatus(err error, status int) bool {
	var p *problem.Problem
	return errors.As(err, &p) && p.Status == status
}

// isConflict reports an HTTP 409: something set up by an earlier start.
func isConflict(err error) bool { return isStatus(err, http.StatusConflict) }
