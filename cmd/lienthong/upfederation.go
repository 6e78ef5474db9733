package main

import (
	"context"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"time"

	"github.com/lienthong/lienthong/catalog"
	"github.com/lienthong/lienthong/certs"
	"github.com/lienthong/lienthong/controlplane/client"
	"github.com/lienthong/lienthong/internal/durable"
)

// The agencies of Project 06's federation that `lienthong up` runs, and
// their systems (as in examples/federation.json).
const (
	upProvider       = "000.00.00.G01" // Ministry of Public Security
	upProviderSystem = "VN:GOV:000.00.00.G01:CSDLDC"
	upProviderGW     = "VN:GOV:000.00.00.G01:GW"
	upConsumer       = "000.00.00.G14" // Vietnam Social Security
	upConsumerSystem = "VN:GOV:000.00.00.G14:CSDLBH"
	upConsumerGW     = "VN:GOV:000.00.00.G14:GW"
	upJustice        = "000.00.00.G05" // Ministry of Justice
	upJusticeSystem  = "VN:GOV:000.00.00.G05:HTTTHT"
	upJusticeGW      = "VN:GOV:000.00.00.G05:GW"
	upLGSP           = "000.00.00.H26" // Hà Nội People's Committee
	upLGSPSystem     = "VN:GOV:000.00.00.H26:DVCHN"
	upLGSPGW         = "VN:GOV:000.00.00.H26:GW"
	upPurpose        = "1.001234"
)

// upAgency is one agency `up` runs a gateway for: the gateway's system, its
// two listeners (from the flags), and the agency's own system that calls or
// publishes through it, whose key and certificate live in clientDir.
type upAgency struct {
	member, name, gateway, system, clientDir string
	inbound, outbound                        func(o upOptions) string
}

// upAgencies, in the order their gateways start.
var upAgencies = []upAgency{
	{upProvider, "Bộ Công an (Public Security)", upProviderGW, upProviderSystem, "provider-client",
		func(o upOptions) string { return o.inbound }, func(o upOptions) string { return o.providerOutbound }},
	{upJustice, "Bộ Tư pháp (Justice)", upJusticeGW, upJusticeSystem, "justice-client",
		func(o upOptions) string { return o.justiceInbound }, func(o upOptions) string { return o.justiceOutbound }},
	{upConsumer, "BHXH Việt Nam (Social Security)", upConsumerGW, upConsumerSystem, "client",
		func(o upOptions) string { return o.consumerInbound }, func(o upOptions) string { return o.outbound }},
	{upLGSP, "UBND TP Hà Nội (LGSP)", upLGSPGW, upLGSPSystem, "lgsp-client",
		func(o upOptions) string { return o.lgspInbound }, func(o upOptions) string { return o.lgspOutbound }},
}

// agency returns the agency of a member code.
func agency(member string) upAgency {
	for _, a := range upAgencies {
		if a.member == member {
			return a
		}
	}
	panic("lienthong up: no agency " + member)
}

// upFederation is what setting up left to print: the decided and pending
// access requests.
type upFederation struct {
	// pending is the id of the request left for the Justice approver, and
	// pendingState where it stands now.
	pending      string
	pendingState catalog.RequestState
}

// setUpFederation does, once, what the agencies' operators would do through
// the management API; each step is recorded in dir when done, so a start
// after a crash picks up where the last one stopped and a data directory
// made by an older `up` gains what it lacks.
func setUpFederation(ctx context.Context, admin *client.Client, dir string, o upOptions) (*upFederation, error) {
	validUntil := time.Now().AddDate(1, 0, 0)
	var trust string
	for _, a := range upAgencies {
		gdir := filepath.Join(dir, a.member)
		if _, err := os.Stat(filepath.Join(gdir, "cert.pem")); err == nil {
			continue
		}
		if _, err := admin.AddSystem(ctx, client.NewSystem{ID: a.gateway, Name: "Gateway " + a.gateway, SecurityLevel: 3}); err != nil && !isConflict(err) {
			return nil, err
		}
		if _, err := admin.Assess(ctx, a.gateway, client.NewAssessment{Level: 3, AssessedBy: "Cục An ninh mạng (A05)", Reference: "QĐ 201/QĐ-A05", ValidUntil: validUntil}); err != nil {
			return nil, err
		}
		if trust == "" {
			t, _, _, err := admin.Trust(ctx, "")
			if err != nil {
				return nil, err
			}
			trust = t.TrustDomain
		}
		// The operator issues the gateway's first certificate (the key is
		// made here, on the gateway's host); from then on the gateway is
		// known by it and renews it itself. It holds no API token.
		if err := enrollInto(ctx, admin, a.gateway, trust, gdir); err != nil {
			return nil, err
		}
		if _, err := admin.RegisterGateway(ctx, a.member, a.gateway, a.inbound(o)); err != nil {
			return nil, err
		}
	}
	// Each agency's own system that calls (or publishes through) its gateway.
	for _, a := range upAgencies {
		cdir := filepath.Join(dir, a.clientDir)
		if _, err := os.Stat(filepath.Join(cdir, "cert.pem")); err == nil {
			continue
		}
		if trust == "" {
			t, _, _, err := admin.Trust(ctx, "")
			if err != nil {
				return nil, err
			}
			trust = t.TrustDomain
		}
		// A system the seed left unassessed, or assessed below the level
		// the population data needs (a data directory made by an older
		// `up` has the Hà Nội portal so), is assessed first, as the
		// platform operator would before admitting it.
		view, err := admin.System(ctx, a.system)
		if err != nil {
			return nil, err
		}
		if as := view.Assessment; as == nil || as.Level < 3 || !time.Now().Before(as.ValidUntil) {
			if _, err := admin.Assess(ctx, a.system, client.NewAssessment{Level: 3, AssessedBy: "Cục An ninh mạng (A05)", Reference: "QĐ 202/QĐ-A05", ValidUntil: validUntil}); err != nil {
				return nil, fmt.Errorf("assess %s: %w", a.system, err)
			}
		}
		if err := enrollInto(ctx, admin, a.system, trust, cdir); err != nil {
			return nil, err
		}
	}
	return fileAccessRequests(ctx, admin, dir, o)
}

// applyAddresses makes the addresses given on this start the ones in force:
// it writes each gateway's configuration again and registers a moved inbound
// address with the control plane, so the printed commands always name what
// listens. Paths in the configuration are relative to its own directory, so
// a copied or restored data directory uses its own files.
func applyAddresses(ctx context.Context, admin *client.Client, dir string, o upOptions, pop *population) error {
	registered, err := admin.Gateways(ctx)
	if err != nil {
		return err
	}
	at := map[string]string{}
	for _, g := range registered {
		at[g.Member] = g.Address
	}
	for _, a := range upAgencies {
		if at[a.member] != a.inbound(o) {
			if _, err := admin.RegisterGateway(ctx, a.member, a.gateway, a.inbound(o)); err != nil {
				return err
			}
		}
		cfg := map[string]any{
			"member": a.member, "system": a.gateway,
			"identity":     map[string]string{"keyFile": "key.pem", "certFile": "cert.pem"},
			"controlPlane": map[string]string{"url": "https://" + o.controlPlane, "caFile": filepath.Join("..", "..", "tls", "ca.pem")},
			"outbound":     map[string]string{"listen": a.outbound(o)},
			"inbound":      map[string]string{"listen": a.inbound(o)},
			"stateDir":     "state", "maskingKeyFile": "masking.key",
			"auditFile": "audit.jsonl", "pollInterval": "10s",
			"auditSubjectKeyFile": filepath.Join("..", "..", auditSubjectKeyFile),
		}
		if a.member == upProvider {
			cfg["backends"] = map[string]any{upProviderSystem + "/population": pop.backend(o)}
		}
		raw, _ := json.MarshalIndent(cfg, "", "  ")
		if err := durable.WriteFile(filepath.Join(dir, a.member, "gateway.json"), append(raw, '\n'), 0o600); err != nil {
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
		return fmt.Errorf("enrol %s: %w", system, err)
	}
	if err := durable.ReplaceTogether(
		durable.File{Path: filepath.Join(dir, "key.pem"), Data: keyPEM, Perm: 0o600},
		durable.File{Path: filepath.Join(dir, "cert.pem"), Data: []byte(enr.ChainPEM), Perm: 0o600},
	); err != nil {
		return err
	}
	return durable.WriteFile(filepath.Join(dir, "bundle.pem"), []byte(enr.TrustBundlePEM), 0o644)
}
