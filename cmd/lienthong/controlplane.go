package main

import (
	"fmt"
	"log/slog"
	"os"

	"github.com/spf13/cobra"

	"github.com/lienthong/lienthong/controlplane"
)

func newControlPlaneCommand() *cobra.Command {
	cfg := controlplane.Config{}
	var logLevel string
	cmd := &cobra.Command{
		Use:   "controlplane",
		Short: "Run the control plane: the catalog and the management API over HTTPS",
		Long: `Run the control plane. On first start it creates the store, a platform-admin
token (kept in <data-dir>/admin.token, mode 0600) and, unless --tls-cert is given,
a self-signed management CA in <data-dir>/tls. With --seed it loads a federation
file (members, systems, assessments, datasets) into an empty catalog.

Certificates come from the embedded CA (keys in <data-dir>/ca, sealed with
LIENTHONG_CA_PASSPHRASE when set) or, with --ca vault, from a Vault or OpenBao
PKI role; see deploy/vault.md. Vault secrets are read from the environment
(VAULT_TOKEN, LIENTHONG_VAULT_SECRET_ID) so they stay out of process listings.

A data directory that holds a federation is never started over: a missing,
truncated or damaged catalog, keys that differ from those the store recorded,
or a --store, --ca or --trust-domain other than the federation's make the start
refuse, changing nothing (docs/operations.md). SIGTERM or Ctrl-C stops cleanly.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			var level slog.Level
			if err := level.UnmarshalText([]byte(logLevel)); err != nil {
				return fmt.Errorf("--log-level: %w", err)
			}
			cfg.Log = slog.New(slog.NewJSONHandler(os.Stderr, &slog.HandlerOptions{Level: level}))
			return controlplane.Run(cmd.Context(), cfg, func(r controlplane.Ready) {
				out := cmd.OutOrStdout()
				fmt.Fprintf(out, "lienthong control plane ready at %s\n", r.URL)
				if r.MetricsAddress != "" {
					fmt.Fprintf(out, "  metrics, health and readiness at http://%s/metrics, /healthz, /readyz\n", r.MetricsAddress)
				}
				if r.XDSAddress != "" {
					fmt.Fprintf(out, "  xDS (ADS over mTLS) for Envoy edges at %s\n", r.XDSAddress)
				}
				if r.Seeded {
					fmt.Fprintf(out, "  loaded %s into the empty catalog\n", cfg.Seed)
				}
				fmt.Fprintf(out, "\n  export LIENTHONG_URL=%s\n", r.URL)
				if r.CAFile != "" {
					fmt.Fprintf(out, "  export LIENTHONG_CA_FILE=%s\n", r.CAFile)
				}
				if r.AdminToken != "" {
					fmt.Fprintf(out, "  export LIENTHONG_TOKEN=%s   # platform-admin, from %s\n", r.AdminToken, r.TokenFile)
				}
				fmt.Fprintln(out)
			})
		},
	}
	f := cmd.Flags()
	f.StringVar(&cfg.DataDir, "data-dir", envOr("LIENTHONG_DATA_DIR", ".lienthong"), "directory for the SQLite store, TLS material and the bootstrap token")
	f.StringVar(&cfg.Listen, "listen", "127.0.0.1:8443", "management API address")
	f.StringVar(&cfg.Store, "store", "sqlite", "catalog store: sqlite or postgres")
	f.StringVar(&cfg.PostgresDSN, "postgres-dsn", os.Getenv("LIENTHONG_POSTGRES_DSN"), "PostgreSQL DSN for --store postgres (env LIENTHONG_POSTGRES_DSN)")
	f.StringVar(&cfg.TLSCert, "tls-cert", "", "management TLS certificate (PEM); default: self-signed in the data dir")
	f.StringVar(&cfg.TLSKey, "tls-key", "", "management TLS key (PEM)")
	f.StringSliceVar(&cfg.Hosts, "host", nil, "host names and addresses the self-signed certificate covers (default localhost, 127.0.0.1, ::1)")
	f.DurationVar(&cfg.MaxGrantPeriod, "max-grant-period", 0, "longest period an access request may ask for (default 8760h, a year)")
	f.StringVar(&cfg.Seed, "seed", "", "federation file to load into an empty catalog, e.g. examples/federation.json")
	f.StringVar(&cfg.XDSListen, "xds-listen", "", "serve ADS to Envoy edges at this address over mTLS, e.g. 127.0.0.1:18000 (default off; see docs/envoy.md)")
	f.StringVar(&cfg.XDSSites, "xds-sites", "", "JSON file of per-agency Envoy site settings (gateway, adapter, backends, certificate directory)")
	f.StringVar(&cfg.MetricsListen, "metrics-listen", defaultMetricsListen, metricsListenUsage)
	f.StringVar(&logLevel, "log-level", "info", "log level: debug, info, warn, error")
	addCAFlags(cmd, &cfg.CA)
	addCitizenFlags(cmd, &cfg.Citizen)
	return cmd
}
