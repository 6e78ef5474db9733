package main

import (
	"context"
	"fmt"
	"log/slog"
	"os"
	"os/signal"
	"syscall"

	"github.com/spf13/cobra"

	"github.com/lienthong/lienthong/gateway"
)

func newGatewayCommand() *cobra.Command {
	var file, logLevel, envoyListen, metricsListen string
	var traces traceFlags
	cmd := &cobra.Command{
		Use:   "gateway",
		Short: "Run an agency's gateway: the mTLS door its systems and peer gateways call",
		Long: `Run one agency's gateway from a JSON configuration file. The outbound listener
serves the agency's own systems (GET /r/{provider}/{dataset}/{path}, POST /v/… for
verify mode); the inbound listener serves peer gateways. Identity comes only from
client certificates. Configuration, trust and the signed policy bundle are pulled
from the control plane and kept on disk; past the staleness limit the gateway denies.
SIGTERM or SIGINT stops it cleanly (exchanges in flight finish, the audit log
is synced); SIGHUP pulls the configuration and renews the certificate now.
See docs/gateway.md for the configuration reference.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			var level slog.Level
			if err := level.UnmarshalText([]byte(logLevel)); err != nil {
				return fmt.Errorf("--log-level: %w", err)
			}
			log := slog.New(slog.NewJSONHandler(os.Stderr, &slog.HandlerOptions{Level: level}))
			cfg, err := gateway.LoadConfig(file)
			if err != nil {
				return err
			}
			if envoyListen != "" {
				cfg.Envoy.Listen = envoyListen
			}
			if cmd.Flags().Changed("metrics-listen") || cfg.Metrics.Listen == "" {
				cfg.Metrics.Listen = metricsListen
			}
			tp, flush, err := traces.setup(cmd.Context(), "lienthong-gateway "+cfg.System)
			if err != nil {
				return err
			}
			defer func() { _ = flush(context.Background()) }()
			gw, err := gateway.New(cmd.Context(), cfg, log, gateway.WithTracerProvider(tp))
			if err != nil {
				return err
			}
			renewOnHangup(cmd.Context(), gw, log)
			return gw.Run(cmd.Context(), func(a gateway.Addrs) {
				fmt.Fprintf(cmd.OutOrStdout(), "lienthong gateway of %s ready: outbound %s, inbound %s, envoy %s\n", cfg.Member, dash(a.Outbound), dash(a.Inbound), dash(a.Envoy))
				if a.Metrics != "" {
					fmt.Fprintf(cmd.OutOrStdout(), "  metrics, health and readiness at http://%s/metrics, /healthz, /readyz\n", a.Metrics)
				}
			})
		},
	}
	cmd.Flags().StringVar(&file, "config", "", "gateway configuration file (JSON)")
	cmd.Flags().StringVar(&envoyListen, "envoy-listen", "", "serve Envoy's ext_authz and ext_proc over gRPC here (overrides envoy.listen; see docs/envoy-doors.md)")
	cmd.Flags().StringVar(&metricsListen, "metrics-listen", defaultMetricsListen, metricsListenUsage+" (overrides metrics.listen)")
	cmd.Flags().StringVar(&logLevel, "log-level", "info", "log level: debug, info, warn, error")
	addTraceFlags(cmd, &traces)
	_ = cmd.MarkFlagRequired("config")
	return cmd
}

// renewOnHangup pulls the configuration and renews the certificate when the
// process gets SIGHUP, until ctx ends.
func renewOnHangup(ctx context.Context, gw *gateway.Gateway, log *slog.Logger) {
	hup := make(chan os.Signal, 1)
	signal.Notify(hup, syscall.SIGHUP)
	go func() {
		defer signal.Stop(hup)
		for {
			select {
			case <-ctx.Done():
				return
			case <-hup:
				if err := gw.Sync(ctx); err != nil {
					log.Warn("SIGHUP: configuration pull failed", "error", err.Error())
				}
				if err := gw.RenewCertificate(ctx); err != nil {
					log.Warn("SIGHUP: certificate renewal failed", "error", err.Error())
				}
			}
		}
	}()
}
