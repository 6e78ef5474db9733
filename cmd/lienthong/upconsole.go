package main

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"time"

	"github.com/lienthong/lienthong/catalog"
	"github.com/lienthong/lienthong/controlplane"
	"github.com/lienthong/lienthong/internal/devoidc"
)

// demoCitizenClientID is the console's client at the demo issuer.
const demoCitizenClientID = "lienthong-console"

// upLinkTTL is how long the login links `lienthong up` prints stay good:
// long enough to read the banner and click, short enough not to linger.
const upLinkTTL = time.Hour

// demoCitizen starts the DEMO-ONLY identity provider on loopback (package
// devoidc: anyone may sign in as any personal ID) and returns the citizen
// configuration that points the control plane at it, so `lienthong up`
// shows the citizen's page without a real national identity provider. The
// suggested personal ID is the sample citizen the printed curl commands
// read, so their reads are what the citizen sees. On failure the citizen
// page is simply off.
func demoCitizen(ctx context.Context, log *slog.Logger, suggest string) controlplane.CitizenConfig {
	iss, err := devoidc.Start(ctx, "127.0.0.1:0", demoCitizenClientID)
	if err != nil {
		log.Warn("demo identity provider not started; the citizen page is off", "error", err.Error())
		return controlplane.CitizenConfig{}
	}
	iss.Suggest = suggest
	return controlplane.CitizenConfig{Issuer: iss.URL, ClientID: demoCitizenClientID}
}

// upRoles are the people `lienthong up` prints a login link for.
var upRoles = []struct {
	label  string
	role   catalog.Role
	member string
}{
	{"platform operator", catalog.RolePlatformAdmin, ""},
	{"member admin (Bộ Công an, G01)", catalog.RoleMemberAdmin, "000.00.00.G01"},
	{"approver (Bộ Công an, G01)", catalog.RoleApprover, "000.00.00.G01"},
	{"auditor (Bộ Công an, G01)", catalog.RoleAuditor, "000.00.00.G01"},
	{"integrator (BHXH, G14)", catalog.RoleIntegrator, "000.00.00.G14"},
}

// printConsole mints one single-use login link per role with the
// bootstrap token and prints the console's URL, the links, and how the
// citizen signs in. Each start mints new links (their tokens expire with
// the session they may open, 13 hours on).
func printConsole(ctx context.Context, out io.Writer, cp controlplane.Ready, citizen controlplane.CitizenConfig) error {
	if cp.Console == nil {
		return nil
	}
	fmt.Fprintf(out, "\nweb console: %s/console   (trust %s, or accept the local certificate)\n", cp.URL, cp.CAFile)
	fmt.Fprintf(out, "one-time login links (each works once, for %s):\n", upLinkTTL)
	for _, r := range upRoles {
		l, err := cp.Console.MintLoginLink(ctx, cp.AdminToken, r.role, r.member, r.label+" (lienthong up)", upLinkTTL)
		if ctx.Err() != nil {
			return nil // stopping while the links were minted is not a failure
		}
		if err != nil {
			return fmt.Errorf("console login link for %s: %w", r.label, err)
		}
		fmt.Fprintf(out, "  %-34s %s%s\n", r.label+":", cp.URL, l.Path)
	}
	if citizen.Issuer != "" {
		fmt.Fprintf(out, "  %-34s %s/console/citizen   (DEMO identity provider at %s: type any 12-digit personal ID)\n", "citizen:", cp.URL, citizen.Issuer)
	}
	return nil
}
