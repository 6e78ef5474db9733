package main

import (
	"context"
	"crypto/sha256"
	"crypto/x509"
	"encoding/base64"
	"encoding/json"
	"encoding/pem"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"time"

	"github.com/spf13/cobra"

	"github.com/lienthong/lienthong/adapters/synthetic"
	"github.com/lienthong/lienthong/audit"
	"github.com/lienthong/lienthong/catalog"
	"github.com/lienthong/lienthong/certs"
	"github.com/lienthong/lienthong/controlplane"
	"github.com/lienthong/lienthong/controlplane/client"
	"github.com/lienthong/lienthong/controlplane/service"
	"github.com/lienthong/lienthong/gateway"
	"github.com/lienthong/lienthong/internal/durable"
	"github.com/lienthong/lienthong/internal/problem"
)

// The two agencies `lienthong up` runs gateways for.
const (
	upProvider       = "000.00.00.G01" // Ministry of Public Security
	upProviderSystem = "VN:GOV:000.00.00.G01:CSDLDC"
	upProviderGW     = "VN:GOV:000.00.00.G01:GW"
	upConsumer       = "000.00.00.G14" // Vietnam Social Security
	upConsumerSystem = "VN:GOV:000.00.00.G14:CSDLBH"
	upConsumerGW     = "VN:GOV:000.00.00.G14:GW"
	upPurpose        = "1.001234"
)

type upOptions struct {
	dataDir, seed, logLevel                  string
	controlPlane, inbound, outbound, backend string
	providerOutbound, consumerInbound        string
	kafkaListen                              string
	citizens                                 int
}

func newUpCommand() *cobra.Command {
	var o upOptions
	cmd := &cobra.Command{
		Use:   "up",
		Short: "Run the whole federation in one process: control plane, two agencies' gateways, a population backend",
		Long: `Run the embedded federation: the control plane (seeded from examples/), a synthetic
national population database behind the Ministry of Public Security's gateway, and
Vietnam Social Security's gateway. On first start it registers and enrols both
gateways, enrols the Social Security system that will call, and grants it four
fields of the population dataset for procedure 1.001234 (personal id hashed,
religion refused). It prints curl commands for a granted read, a masked read,
a verify and a refused read. Later starts reuse everything in --data-dir; the
addresses given apply on every start. A data directory whose catalog is missing
or damaged is never started over: the start refuses and says how to restore
(docs/operations.md). SIGTERM or Ctrl-C stops cleanly; a second one at once.`,
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
	f.StringVar(&o.backend, "backend", "127.0.0.1:9480", "synthetic population database (REST, loopback only)")
	f.StringVar(&o.kafkaListen, "kafka-listen", "127.0.0.1:9092", "embedded Kafka-protocol broker for change feeds (empty: no feeds)")
	f.IntVar(&o.citizens, "citizens", 5000, "synthetic citizens in the population database")
	f.StringVar(&o.logLevel, "log-level", "warn", "log level: debug, info, warn, error")
	return cmd
}

func runUp(ctx context.Context, out io.Writer, o upOptions) (err error) {
	var level slog.Level
	if err := level.UnmarshalText([]byte(o.logLevel)); err != nil {
		return fmt.Errorf("--log-level: %w", err)
	}
	log := slog.New(slog.NewJSONHandler(os.Stderr, &slog.HandlerOptions{Level: level}))

	// Each part runs until its own context ends, so a stop can take them
	// down in order: gateways first (the consumer's, then the provider's,
	// each draining its exchanges and syncing its audit log), then the
	// control plane (closing its store), then the backend.
	var stack stopStack
	errc := make(chan error, 8)
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

	// The synthetic population database, on loopback.
	people := synthetic.Citizens(o.citizens, 2026)
	ln, lerr := net.Listen("tcp", o.backend)
	if lerr != nil {
		return fmt.Errorf("population backend: %w", lerr)
	}
	backend := &http.Server{Handler: synthetic.Handler(people), ReadHeaderTimeout: 5 * time.Second}
	backendDone := make(chan struct{})
	go func() { defer close(backendDone); _ = backend.Serve(ln) }()
	stack.push(func() { backend.Close(); <-backendDone })

	ready := make(chan controlplane.Ready, 1)
	cpCtx, cpStop := context.WithCancel(context.Background())
	cpDone := make(chan struct{})
	citizen := demoCitizen(cpCtx, log, people[0].PersonalID)
	go func() {
		defer close(cpDone)
		err := controlplane.Run(cpCtx, controlplane.Config{
			DataDir: o.dataDir, Listen: o.controlPlane, Seed: o.seed, Log: log, Citizen: citizen,
		}, func(r controlplane.Ready) { ready <- r })
		if err != nil {
			errc <- fmt.Errorf("control plane: %w", err)
		}
	}()
	stack.push(func() { cpStop(); <-cpDone })
	var cp controlplane.Ready
	select {
	case cp = <-ready:
	case err := <-errc:
		return err
	case <-ctx.Done():
		return nil
	}
	admin, err := client.New(cp.URL, cp.AdminToken, cp.CAFile)
	if err != nil {
		return err
	}
	// One key names data subjects in every gateway's audit records.
	if _, err := audit.CreateSubjectKey(filepath.Join(o.dataDir, auditSubjectKeyFile)); err != nil {
		return err
	}
	dir := filepath.Join(o.dataDir, "federation")
	if err := setUpFederation(ctx, admin, dir, o); err != nil {
		if ctx.Err() != nil {
			return nil
		}
		return fmt.Errorf("set up the federation: %w", err)
	}
	// What the flags say applies on every start, not only the first.
	if err := applyAddresses(ctx, admin, dir, o); err != nil {
		if ctx.Err() != nil {
			return nil
		}
		return fmt.Errorf("apply the addresses given: %w", err)
	}
	kafka, startRouter, err := startFeeds(ctx, admin, o, dir, log, errc, &stack)
	if err != nil {
		return err
	}

	for _, member := range []string{upProvider, upConsumer} {
		cfg, err := gateway.LoadConfig(filepath.Join(dir, member, "gateway.json"))
		if err != nil {
			return err
		}
		withFeeds(cfg, kafka)
		gw, err := gateway.New(ctx, cfg, log.With("gateway", member))
		if err != nil {
			if ctx.Err() != nil {
				return nil // stopped while starting
			}
			return err
		}
		gwCtx, gwStop := context.WithCancel(context.Background())
		gwReady, gwDone := make(chan struct{}), make(chan struct{})
		go func() {
			defer close(gwDone)
			if err := gw.Run(gwCtx, func(gateway.Addrs) { close(gwReady) }); err != nil {
				errc <- fmt.Errorf("gateway of %s: %w", member, err)
			}
		}()
		stack.push(func() { gwStop(); <-gwDone })
		select {
		case <-gwReady:
		case err := <-errc:
			return err
		case <-ctx.Done():
			return nil
		}
	}
	startRouter()
	if err := printUp(out, cp, dir, o, people[0]); err != nil {
		return err
	}
	if err := printFeeds(out, dir, o, people[0]); err != nil {
		return err
	}
	if err := printConsole(ctx, out, cp, citizen); err != nil {
		return err
	}
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

// setUpFederation does, once, what the two agencies' operators would do
// through the management API. Every step is skipped when already done.
func setUpFederation(ctx context.Context, admin *client.Client, dir string, o upOptions) error {
	if _, err := os.Stat(filepath.Join(dir, "done")); err == nil {
		return nil
	}
	validUntil := time.Now().AddDate(1, 0, 0)
	for _, id := range []string{upProviderGW, upConsumerGW} {
		if _, err := admin.AddSystem(ctx, client.NewSystem{ID: id, Name: "Gateway " + id, SecurityLevel: 3}); err != nil && !isStatus(err, http.StatusConflict) {
			return err
		}
		if _, err := admin.Assess(ctx, id, client.NewAssessment{Level: 3, AssessedBy: "Cục An ninh mạng (A05)", Reference: "QĐ 201/QĐ-A05", ValidUntil: validUntil}); err != nil {
			return err
		}
	}
	trust, _, _, err := admin.Trust(ctx, "")
	if err != nil {
		return err
	}
	// Every agency's gateway has both doors; here the provider's systems call
	// nobody and nobody calls the consumer, but the listeners are real.
	for _, g := range []struct{ member, system, inbound, outbound string }{
		{upProvider, upProviderGW, o.inbound, o.providerOutbound},
		{upConsumer, upConsumerGW, o.consumerInbound, o.outbound},
	} {
		gdir := filepath.Join(dir, g.member)
		if err := os.MkdirAll(gdir, 0o700); err != nil {
			return err
		}
		// The operator issues the gateway's first certificate (the key is
		// made here, on the gateway's host); from then on the gateway is
		// known by it and renews it itself. It holds no API token.
		if err := enrollInto(ctx, admin, g.system, trust.TrustDomain, gdir); err != nil {
			return err
		}
		if _, err := admin.RegisterGateway(ctx, g.member, g.system, g.inbound); err != nil {
			return err
		}
	}
	// The Social Security system that calls its gateway, and the population
	// database that publishes change events through its own.
	if err := enrollInto(ctx, admin, upConsumerSystem, trust.TrustDomain, filepath.Join(dir, "client")); err != nil {
		return err
	}
	if err := enrollInto(ctx, admin, upProviderSystem, trust.TrustDomain, filepath.Join(dir, "provider-client")); err != nil {
		return err
	}
	// The access request and the provider's decision: four fields, the
	// personal id hashed, religion (sensitive) refused.
	integrator, err := admin.CreateToken(ctx, client.NewToken{Name: "BHXH integrator", Role: catalog.RoleIntegrator, Member: upConsumer})
	if err != nil {
		return err
	}
	approver, err := admin.CreateToken(ctx, client.NewToken{Name: "C06 approver", Role: catalog.RoleApprover, Member: upProvider})
	if err != nil {
		return err
	}
	ic, _ := client.New("https://"+o.controlPlane, integrator.Token, filepath.Join(o.dataDir, "tls", "ca.pem"))
	ac, _ := client.New("https://"+o.controlPlane, approver.Token, filepath.Join(o.dataDir, "tls", "ca.pem"))
	req, err := ic.RequestAccess(ctx, service.AccessRequestInput{
		Consumer: upConsumerSystem, Provider: upProviderSystem, Dataset: "population",
		Fields:     []string{"personalId", "fullName", "dateOfBirth", "sex", "religion"},
		Purpose:    catalog.Purpose{Code: upPurpose, Text: "cấp thẻ BHYT cho trẻ em dưới 6 tuổi"},
		LegalBasis: catalog.LegalBasis{Reference: "Nghị định 13/2023/NĐ-CP, Điều 17"},
		ValidUntil: time.Now().AddDate(0, 6, 0), Modes: []catalog.Mode{catalog.ModeQuery, catalog.ModeVerify, catalog.ModeFeed},
	})
	if err != nil {
		return err
	}
	if _, err := ac.Approve(ctx, req.ID, service.Approval{Note: "religion refused: not needed for the card", Fields: []catalog.GrantedField{
		{Path: "personalId", Mask: catalog.MaskHash}, {Path: "fullName"}, {Path: "dateOfBirth"}, {Path: "sex"},
	}}); err != nil {
		return err
	}
	return durable.WriteFile(filepath.Join(dir, "done"), []byte(time.Now().UTC().Format(time.RFC3339)+"\n"), 0o600)
}

// applyAddresses makes the addresses given on this start the ones in force:
// it writes each gateway's configuration again and registers a moved inbound
// address with the control plane, so the printed commands always name what
// listens. Paths in the configuration are relative to its own directory, so
// a copied or restored data directory uses its own files.
func applyAddresses(ctx context.Context, admin *client.Client, dir string, o upOptions) error {
	registered, err := admin.Gateways(ctx)
	if err != nil {
		return err
	}
	at := map[string]string{}
	for _, g := range registered {
		at[g.Member] = g.Address
	}
	for _, g := range []struct{ member, system, inbound, outbound string }{
		{upProvider, upProviderGW, o.inbound, o.providerOutbound},
		{upConsumer, upConsumerGW, o.consumerInbound, o.outbound},
	} {
		if at[g.member] != g.inbound {
			if _, err := admin.RegisterGateway(ctx, g.member, g.system, g.inbound); err != nil {
				return err
			}
		}
		cfg := map[string]any{
			"member": g.member, "system": g.system,
			"identity":     map[string]string{"keyFile": "key.pem", "certFile": "cert.pem"},
			"controlPlane": map[string]string{"url": "https://" + o.controlPlane, "caFile": filepath.Join("..", "..", "tls", "ca.pem")},
			"outbound":     map[string]string{"listen": g.outbound},
			"inbound":      map[string]string{"listen": g.inbound},
			"stateDir":     "state", "maskingKeyFile": "masking.key",
			"auditFile": "audit.jsonl", "pollInterval": "10s",
			"auditSubjectKeyFile": filepath.Join("..", "..", auditSubjectKeyFile),
		}
		if g.member == upProvider {
			cfg["backends"] = map[string]any{upProviderSystem + "/population": map[string]any{
				"recordPath": "citizens/{id}", "subjectField": "personalId",
				"rest": map[string]string{"baseUrl": "http://" + o.backend},
			}}
		}
		raw, _ := json.MarshalIndent(cfg, "", "  ")
		if err := durable.WriteFile(filepath.Join(dir, g.member, "gateway.json"), append(raw, '\n'), 0o600); err != nil {
			return err
		}
	}
	return nil
}

// enrollInto makes a key in dir (0600; it never leaves the machine) and
// stores the certificate chain the control plane signs.
func enrollInto(ctx context.Context, admin *client.Client, system, trustDomain, dir string) error {
	id, err := catalog.ParseSystemID(system)
	if err != nil {
		return err
	}
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return err
	}
	keyPEM, csrPEM, err := certs.GenerateKeyAndCSR(id, trustDomain)
	if err != nil {
		return err
	}
	enr, err := admin.Enroll(ctx, system, csrPEM)
	if err != nil {
		return err
	}
	if err := durable.ReplaceTogether(
		durable.File{Path: filepath.Join(dir, "key.pem"), Data: keyPEM, Perm: 0o600},
		durable.File{Path: filepath.Join(dir, "cert.pem"), Data: []byte(enr.ChainPEM), Perm: 0o600},
	); err != nil {
		return err
	}
	return durable.WriteFile(filepath.Join(dir, "bundle.pem"), []byte(enr.TrustBundlePEM), 0o644)
}

func isStatus(err error, status int) bool {
	var p *problem.Problem
	return errors.As(err, &p) && p.Status == status
}

// printUp shows where everything is and the four curl commands. Gateways are
// named by SPIFFE id, not host name, so curl pins the gateway's public key
// instead of checking a host name (-k turns off only the name check; the
// pin is still enforced).
func printUp(out io.Writer, cp controlplane.Ready, dir string, o upOptions, sample synthetic.Citizen) error {
	pin, err := gatewayPin(filepath.Join(dir, upConsumer, "cert.pem"))
	if err != nil {
		return err
	}
	c := filepath.Join(dir, "client")
	curl := fmt.Sprintf("curl -sk --pinnedpubkey %s --cert %s --key %s -H 'X-LT-Purpose: %s'",
		pin, filepath.Join(c, "cert.pem"), filepath.Join(c, "key.pem"), upPurpose)
	base := "https://" + o.outbound
	rec := base + "/r/" + upProviderSystem + "/population/citizens/" + sample.PersonalID
	fmt.Fprintf(out, `lienthong federation ready
  control plane        %s   (export LIENTHONG_URL=%s LIENTHONG_CA_FILE=%s LIENTHONG_TOKEN=%s)
  Social Security GW   %s   outbound, for system %s
  Public Security GW   %s   inbound, population database of %d synthetic citizens behind it
  audit logs           lienthong audit read %s/<member code>/audit.jsonl

Granted read (fullName, dateOfBirth, sex):
  %s '%s?fields=fullName,dateOfBirth,sex'
Masked read (personalId is hashed per provider, so records can still be joined):
  %s '%s'
Verify (match / no_match, never the stored value):
  %s -H 'Content-Type: application/json' -d '{"attributes":{"dateOfBirth":"%s"}}' '%s'
Refused read (religion was not granted):
  %s '%s?fields=religion'

`, cp.URL, cp.URL, cp.CAFile, cp.AdminToken,
		base, upConsumerSystem, o.inbound, o.citizens, dir,
		curl, rec, curl, rec,
		curl, sample.DateOfBirth, base+"/v/"+upProviderSystem+"/population/"+sample.PersonalID,
		curl, rec)
	return nil
}

// gatewayPin is curl's sha256// pin of the gateway certificate's public key.
func gatewayPin(certFile string) (string, error) {
	raw, err := os.ReadFile(certFile)
	if err != nil {
		return "", err
	}
	block, _ := pem.Decode(raw)
	if block == nil {
		return "", fmt.Errorf("%s: no certificate", certFile)
	}
	cert, err := x509.ParseCertificate(block.Bytes)
	if err != nil {
		return "", err
	}
	sum := sha256.Sum256(cert.RawSubjectPublicKeyInfo)
	return "sha256//" + base64.StdEncoding.EncodeToString(sum[:]), nil
}
