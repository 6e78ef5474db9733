package main

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"log/slog"
	"os"
	"strconv"
	"text/tabwriter"
	"time"

	"github.com/spf13/cobra"

	"github.com/lienthong/lienthong/audit"
	"github.com/lienthong/lienthong/audit/index"
	"github.com/lienthong/lienthong/controlplane"
	"github.com/lienthong/lienthong/controlplane/auditapi"
)

// addCitizenFlags adds the citizen tracker's flags to the control plane.
func addCitizenFlags(cmd *cobra.Command, c *controlplane.CitizenConfig) {
	f := cmd.Flags()
	f.StringVar(&c.Issuer, "citizen-issuer", os.Getenv("LIENTHONG_CITIZEN_ISSUER"), "OIDC issuer citizens sign in with for the data tracker (off when empty; env LIENTHONG_CITIZEN_ISSUER)")
	f.StringVar(&c.ClientID, "citizen-client-id", os.Getenv("LIENTHONG_CITIZEN_CLIENT_ID"), "audience the citizens' ID tokens name (env LIENTHONG_CITIZEN_CLIENT_ID)")
	f.StringVar(&c.Claim, "citizen-claim", "sub", "ID token claim that holds the 12-digit personal ID")
}

// addAuditIndexCommands adds the index's commands to `lienthong audit`.
func addAuditIndexCommands(cmd *cobra.Command, g *globals) {
	cmd.AddCommand(newReindexCommand(), newAuditExchangesCommand(g), newAuditFlowsCommand(g), newAuditExportCommand(g), newAuditAlertsCommand(g))
}

func newReindexCommand() *cobra.Command {
	var cfg controlplane.Config
	var gateway string
	cmd := &cobra.Command{
		Use:   "reindex FILE...",
		Short: "Rebuild the control plane's audit index from gateways' log files",
		Long: `Feed gateways' audit log files through the same checks shipping uses (chain,
checkpoints, keys), into the control plane's store. Entries already held are
skipped, so reindexing a file twice, or a file the gateway already shipped, is
safe. Each file is one gateway's segment and starts with its genesis entry,
which names the gateway; a gateway with no enrolled key adopts the key its
genesis names, since the operator vouches for the files given here.`,
		Args: cobra.MinimumNArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			ctx := cmd.Context()
			store, err := controlplane.OpenStore(ctx, cfg)
			if err != nil {
				return err
			}
			defer store.Close()
			ix, err := controlplane.OpenIndex(store, slog.New(slog.NewJSONHandler(os.Stderr, nil)), index.AdoptGenesisKeys())
			if err != nil {
				return err
			}
			for _, file := range args {
				n, next, err := reindexFile(ctx, ix, file, gateway)
				if err != nil {
					return fmt.Errorf("%s: %w", file, err)
				}
				fmt.Fprintf(cmd.OutOrStdout(), "%s: %d entries read, the index now expects seq %d\n", file, n, next)
			}
			return nil
		},
	}
	f := cmd.Flags()
	f.StringVar(&cfg.DataDir, "data-dir", envOr("LIENTHONG_DATA_DIR", ".lienthong"), "the control plane's data directory (SQLite store)")
	f.StringVar(&cfg.Store, "store", "sqlite", "store: sqlite or postgres")
	f.StringVar(&cfg.PostgresDSN, "postgres-dsn", os.Getenv("LIENTHONG_POSTGRES_DSN"), "PostgreSQL DSN for --store postgres (env LIENTHONG_POSTGRES_DSN)")
	f.StringVar(&gateway, "gateway", "", "gateway id, when a file does not start with its genesis")
	return cmd
}

// reindexBatch is how many entries go into one index transaction.
const reindexBatch = 1000

// reindexFile feeds one log into the index: the file with the sealed
// segments next to it, oldest first, read as the log's own reader reads it
// (commit lines skipped, the preallocated tail ignored). It returns how many
// entries it read and the seq the index expects next.
func reindexFile(ctx context.Context, ix index.Store, file, gateway string) (int, uint64, error) {
	files, err := audit.LogFiles(file)
	if err != nil {
		return 0, 0, err
	}
	var (
		batch [][]byte
		n     int
		next  uint64
	)
	flush := func() error {
		if len(batch) == 0 {
			return nil
		}
		pos, err := ix.Ingest(ctx, gateway, batch)
		next, batch = pos.Next, batch[:0]
		return err
	}
	err = audit.EachEntry(files, func(e *audit.Entry, line []byte) error {
		if gateway == "" {
			if e.Genesis == nil {
				return fmt.Errorf("the log does not start with a genesis entry naming its gateway; pass --gateway")
			}
			gateway = e.Genesis.Gateway
		}
		batch = append(batch, append([]byte(nil), line...))
		n++
		if len(batch) == reindexBatch {
			return flush()
		}
		return nil
	})
	if err != nil {
		return n, next, err
	}
	return n, next, flush()
}

// auditQueryFlags binds an auditor query's flags.
func auditQueryFlags(cmd *cobra.Command, q *auditapi.ExchangeQuery, from, until *string) {
	f := cmd.Flags()
	f.StringVar(&q.Consumer, "consumer", "", "consumer system id")
	f.StringVar(&q.Provider, "provider", "", "provider system id")
	f.StringVar(&q.Dataset, "dataset", "", "dataset code")
	f.StringVar(&q.Purpose, "purpose", "", "purpose (procedure code)")
	f.IntVar(&q.Status, "status", 0, "answered HTTP status, e.g. 403 for denials")
	f.StringVar(&q.Subject, "subject", "", "subject HMAC as the log holds it")
	f.StringVar(&q.Phase, "phase", "", "outcome (default), intent or any")
	f.StringVar(from, "from", "", "start of the period, RFC 3339 (inclusive)")
	f.StringVar(until, "until", "", "end of the period, RFC 3339 (exclusive)")
}

func parsePeriod(from, until string) (time.Time, time.Time, error) {
	var f, u time.Time
	var err error
	if from != "" {
		if f, err = time.Parse(time.RFC3339, from); err != nil {
			return f, u, fmt.Errorf("--from: %w", err)
		}
	}
	if until != "" {
		if u, err = time.Parse(time.RFC3339, until); err != nil {
			return f, u, fmt.Errorf("--until: %w", err)
		}
	}
	return f, u, nil
}

func newAuditExchangesCommand(g *globals) *cobra.Command {
	var q auditapi.ExchangeQuery
	var from, until string
	var personalIDFile string
	cmd := &cobra.Command{
		Use:   "exchanges",
		Short: "Query the federation's audit index (auditor role: your member's exchanges; platform-admin: all)",
		Long: `Query exchange records, newest first, one page at a time (--limit, --cursor).
To find a citizen's records, put the 12-digit personal ID in a file and pass
--personal-id-file: it is sent in the request body, never in a URL or on the
command line where shell history and process lists keep it.`,
		RunE: func(cmd *cobra.Command, _ []string) error {
			var err error
			if q.From, q.Until, err = parsePeriod(from, until); err != nil {
				return err
			}
			if personalIDFile != "" {
				b, err := os.ReadFile(personalIDFile)
				if err != nil {
					return err
				}
				q.PersonalID = string(bytes.TrimSpace(b))
			}
			c, err := g.client()
			if err != nil {
				return err
			}
			page, err := c.AuditExchanges(cmd.Context(), q)
			if err != nil {
				return err
			}
			err = g.print(cmd.OutOrStdout(), page, func(t *tabwriter.Writer) {
				fmt.Fprintln(t, "TIME\tGATEWAY/SEQ\tEXCHANGE\tSIDE\tCONSUMER\tPROVIDER/DATASET\tPURPOSE\tSTATUS\tFIELDS")
				for _, x := range page.Items {
					fmt.Fprintf(t, "%s\t%s/%d\t%s\t%s\t%s\t%s/%s\t%s\t%d\t%d\n", x.Time.Format(time.RFC3339), x.Gateway, x.Seq, x.ExchangeID,
						x.Side, x.Consumer, x.Provider, x.Dataset, x.Purpose, x.Status, len(x.Fields))
				}
			})
			if err == nil && page.Next != "" && g.output != "json" {
				fmt.Fprintf(cmd.OutOrStdout(), "more: --cursor %s\n", page.Next)
			}
			return err
		},
	}
	auditQueryFlags(cmd, &q, &from, &until)
	cmd.Flags().StringVar(&personalIDFile, "personal-id-file", "", "file holding a citizen's 12-digit personal ID to search for")
	cmd.Flags().IntVar(&q.Limit, "limit", 100, "page size (at most 1000)")
	cmd.Flags().StringVar(&q.Cursor, "cursor", "", "continue after the page that printed this cursor")
	return cmd
}

func newAuditFlowsCommand(g *globals) *cobra.Command {
	var from, until string
	cmd := &cobra.Command{
		Use:   "flows",
		Short: "The flow matrix: per consumer and provider member, exchanges, records, bytes and denials",
		RunE: func(cmd *cobra.Command, _ []string) error {
			f, u, err := parsePeriod(from, until)
			if err != nil {
				return err
			}
			c, err := g.client()
			if err != nil {
				return err
			}
			m, err := c.AuditFlows(cmd.Context(), f, u)
			if err != nil {
				return err
			}
			return g.print(cmd.OutOrStdout(), m, func(t *tabwriter.Writer) {
				fmt.Fprintln(t, "CONSUMER\tPROVIDER\tEXCHANGES\tRECORDS\tBYTES\tDENIALS")
				for _, x := range m.Items {
					fmt.Fprintf(t, "%s\t%s\t%d\t%d\t%d\t%d\n", x.Consumer, x.Provider, x.Exchanges, x.Records, x.Bytes, x.Denials)
				}
			})
		},
	}
	cmd.Flags().StringVar(&from, "from", "", "start of the period, RFC 3339 (inclusive)")
	cmd.Flags().StringVar(&until, "until", "", "end of the period, RFC 3339 (exclusive)")
	return cmd
}

func newAuditExportCommand(g *globals) *cobra.Command {
	var q auditapi.ExchangeQuery
	var from, until, out string
	var siem siemOptions
	cmd := &cobra.Command{
		Use:   "export",
		Short: "Export the exchange records a query matches as JSON lines, or follow them into a Kafka topic",
		Long: `Without --kafka-topic: write the exchange records the query matches as JSON lines.

With --kafka-topic: follow every record the token may see, in each gateway's
order, and produce each to the topic (key: the gateway; headers
lienthong-gateway and lienthong-seq), keeping the place in --state, so a
restarted export loses nothing and repeats at most the page in flight.
See docs/audit-index.md.`,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if siem.topic != "" {
				return runSIEMExport(cmd.Context(), g, siem, q != (auditapi.ExchangeQuery{}) || from != "" || until != "" || out != "", cmd.ErrOrStderr())
			}
			var err error
			if q.From, q.Until, err = parsePeriod(from, until); err != nil {
				return err
			}
			c, err := g.client()
			if err != nil {
				return err
			}
			var w io.Writer = cmd.OutOrStdout()
			if out != "" {
				f, err := os.OpenFile(out, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o600)
				if err != nil {
					return err
				}
				defer f.Close()
				w = f
			}
			n, err := c.ExportAudit(cmd.Context(), q, w)
			if err != nil {
				return err
			}
			if out != "" {
				fmt.Fprintf(cmd.ErrOrStderr(), "%d records written to %s\n", n, out)
			}
			return nil
		},
	}
	auditQueryFlags(cmd, &q, &from, &until)
	cmd.Flags().StringVar(&out, "out", "", "write to this new file (0600) instead of standard output")
	siemFlags(cmd.Flags(), &siem)
	return cmd
}

func newAuditAlertsCommand(g *globals) *cobra.Command {
	var after int64
	cmd := &cobra.Command{
		Use:   "alerts",
		Short: "List shipment alerts: gaps, forks, broken links, bad checkpoints and keys",
		RunE: func(cmd *cobra.Command, _ []string) error {
			c, err := g.client()
			if err != nil {
				return err
			}
			as, err := c.AuditAlerts(cmd.Context(), after)
			if err != nil {
				return err
			}
			return g.print(cmd.OutOrStdout(), as, func(t *tabwriter.Writer) {
				fmt.Fprintln(t, "ID\tTIME\tGATEWAY\tSEQ\tKIND\tDETAIL")
				for _, a := range as {
					fmt.Fprintf(t, "%d\t%s\t%s\t%s\t%s\t%s\n", a.ID, a.At.Format(time.RFC3339), a.Gateway, strconv.FormatUint(a.Seq, 10), a.Kind, a.Detail)
				}
			})
		},
	}
	cmd.Flags().Int64Var(&after, "after", 0, "list alerts with an id above this one")
	return cmd
}
