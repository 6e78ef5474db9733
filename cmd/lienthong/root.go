package main

import (
	"encoding/json"
	"fmt"
	"io"
	"os"
	"strings"
	"text/tabwriter"

	"github.com/spf13/cobra"

	"github.com/lienthong/lienthong/controlplane/client"
)

// globals are the flags every API command shares.
type globals struct {
	url, token, caFile, output string
}

func envOr(name, def string) string {
	if v := os.Getenv(name); v != "" {
		return v
	}
	return def
}

func newRootCommand() *cobra.Command {
	g := &globals{}
	root := &cobra.Command{
		Use:   "lienthong",
		Short: "Liên Thông: federated data exchange between government agencies",
		Long: `Liên Thông connects agencies' information systems through gateways that enforce
field-level, purpose-bound access and record every exchange.

This binary runs the control plane ("lienthong controlplane") and is the CLI of its
management API. API commands read LIENTHONG_URL, LIENTHONG_TOKEN and LIENTHONG_CA_FILE
(or the --url, --token and --ca-file flags); "make run" prints them.`,
		SilenceUsage:  true,
		SilenceErrors: true,
	}
	pf := root.PersistentFlags()
	pf.StringVar(&g.url, "url", envOr("LIENTHONG_URL", "https://127.0.0.1:8443"), "control plane URL (env LIENTHONG_URL)")
	pf.StringVar(&g.token, "token", os.Getenv("LIENTHONG_TOKEN"), "API token lt_... (env LIENTHONG_TOKEN)")
	pf.StringVar(&g.caFile, "ca-file", os.Getenv("LIENTHONG_CA_FILE"), "CA certificate that signed the control plane's TLS certificate (env LIENTHONG_CA_FILE)")
	pf.StringVarP(&g.output, "output", "o", "table", "output format: table or json")

	root.AddCommand(
		newControlPlaneCommand(),
		newGatewayCommand(),
		newFeedRouterCommand(),
		newUpCommand(),
		newWhoAmICommand(g),
		newMemberCommand(g),
		newSystemCommand(g),
		newDatasetCommand(g),
		newTokenCommand(g),
		newAccessCommand(g),
		newGrantCommand(g),
		newPolicyCommand(g),
		newTrailCommand(g),
		newCertCommand(g),
		newCACommand(g),
		newAuditCommand(g),
	)
	return root
}

func (g *globals) client() (*client.Client, error) {
	if g.token == "" {
		return nil, fmt.Errorf("no API token: set LIENTHONG_TOKEN or pass --token")
	}
	return client.New(g.url, g.token, g.caFile)
}

// print writes v as JSON with -o json, or calls table otherwise.
func (g *globals) print(w io.Writer, v any, table func(t *tabwriter.Writer)) error {
	switch g.output {
	case "json":
		enc := json.NewEncoder(w)
		enc.SetIndent("", "  ")
		return enc.Encode(v)
	case "table", "":
		t := tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
		table(t)
		return t.Flush()
	}
	return fmt.Errorf("unknown output format %q: use table or json", g.output)
}

// row writes tab-separated cells.
func row(t io.Writer, cells ...any) {
	parts := make([]string, len(cells))
	for i, c := range cells {
		parts[i] = fmt.Sprint(c)
	}
	fmt.Fprintln(t, strings.Join(parts, "\t"))
}

func newWhoAmICommand(g *globals) *cobra.Command {
	return &cobra.Command{
		Use:   "whoami",
		Short: "Show which token you are using: its id, role and member",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			c, err := g.client()
			if err != nil {
				return err
			}
			w, err := c.WhoAmI(cmd.Context())
			if err != nil {
				return err
			}
			return g.print(cmd.OutOrStdout(), w, func(t *tabwriter.Writer) {
				row(t, "TOKEN", "NAME", "ROLE", "MEMBER")
				row(t, w.TokenID, w.Name, w.Role, dash(w.Member))
			})
		},
	}
}

func dash(s string) string {
	if s == "" {
		return "-"
	}
	return s
}
