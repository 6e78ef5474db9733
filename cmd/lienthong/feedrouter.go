package main

import (
	"context"
	"fmt"
	"log/slog"
	"os"
	"strings"

	"github.com/spf13/cobra"

	"github.com/lienthong/lienthong/gateway/feed"
	"github.com/lienthong/lienthong/gateway/metrics"
	"github.com/lienthong/lienthong/internal/opsmux"
)

func newFeedRouterCommand() *cobra.Command {
	var file, logLevel, brokers, metricsListen string
	cmd := &cobra.Command{
		Use:   "feed-router",
		Short: "Route a provider's change events to each subscribed consumer, projected, exactly once",
		Long: `Run the feed router of one provider system from a JSON configuration file. It reads
each dataset's provider topic and writes every consumer holding an active feed grant
its own projection of each event, in one Kafka transaction with the consumed offsets.
--kafka-brokers overrides kafka.brokers of the file (comma-separated host:port).
--metrics-listen serves the subscribers' lag and the readiness checks on /metrics
(lienthong_feed_router_ready{check}) and /readyz: 503 naming each failing check
(kafka, routing, configuration, audit-log). See docs/feeds.md.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			var level slog.Level
			if err := level.UnmarshalText([]byte(logLevel)); err != nil {
				return fmt.Errorf("--log-level: %w", err)
			}
			log := slog.New(slog.NewJSONHandler(os.Stderr, &slog.HandlerOptions{Level: level}))
			cfg, err := feed.LoadConfig(file)
			if err != nil {
				return err
			}
			if brokers != "" {
				cfg.Kafka.Brokers = strings.Split(brokers, ",")
			}
			// Each subscriber's lag, as a gateway running the router
			// (feeds.router) reports it, and the router's readiness
			// checks (gateway/feed/ready.go).
			var opts feed.RunOptions
			if metricsListen != "" {
				m := metrics.NewFeedRouter()
				opts.Lag, opts.Ready = m, feed.NewReady()
				m.WatchReady(opts.Ready.Passing)
				ops, err := opsmux.Listen(metricsListen, opsmux.Handler(m.Handler(), opts.Ready.Checks), log)
				if err != nil {
					return err
				}
				defer func() { _ = ops.Close(context.Background()) }()
				fmt.Fprintf(cmd.OutOrStdout(), "  metrics and health at http://%s/metrics, /healthz, /readyz\n", ops.Addr())
			}
			return feed.Run(cmd.Context(), cfg, log, opts)
		},
	}
	cmd.Flags().StringVar(&file, "config", "", "feed router configuration file (JSON)")
	cmd.Flags().StringVar(&brokers, "kafka-brokers", "", "Kafka seed brokers, comma-separated (overrides the file)")
	cmd.Flags().StringVar(&metricsListen, "metrics-listen", defaultMetricsListen, metricsListenUsage)
	cmd.Flags().StringVar(&logLevel, "log-level", "info", "log level: debug, info, warn, error")
	_ = cmd.MarkFlagRequired("config")
	return cmd
}
