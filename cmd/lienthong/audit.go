package main

import (
	"encoding/json"
	"fmt"
	"text/tabwriter"

	"github.com/spf13/cobra"

	"github.com/lienthong/lienthong/audit"
)

func newAuditCommand(g *globals) *cobra.Command {
	cmd := &cobra.Command{Use: "audit", Short: "Read a gateway's audit log"}
	var exchange string
	read := &cobra.Command{
		Use:   "read FILE",
		Short: "Print the records of an audit file (the gateway's auditFile)",
		Long: `Print the records of a gateway's audit file, oldest first. The file grows in
preallocated chunks of zeros, so read it with this command rather than with
tail or cat. An exchange that reached a backend or a peer gateway has an
intent record and then an outcome record; an intent without an outcome is an
exchange whose answer may have been released when the gateway stopped.`,
		Args: cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			recs, err := audit.ReadFile(args[0])
			if err != nil {
				return err
			}
			if exchange != "" {
				kept := recs[:0]
				for _, r := range recs {
					if r.ExchangeID == exchange {
						kept = append(kept, r)
					}
				}
				recs = kept
			}
			if g.output == "json" {
				enc := json.NewEncoder(cmd.OutOrStdout())
				for _, r := range recs {
					if err := enc.Encode(r); err != nil {
						return err
					}
				}
				return nil
			}
			return g.print(cmd.OutOrStdout(), recs, func(t *tabwriter.Writer) {
				fmt.Fprintln(t, "TIME\tEXCHANGE\tSIDE\tPHASE\tCONSUMER\tDATASET\tPURPOSE\tSTATUS\tFIELDS")
				for _, r := range recs {
					fmt.Fprintf(t, "%s\t%s\t%s\t%s\t%s\t%s/%s\t%s\t%d\t%d\n", r.Time.Format("2006-01-02T15:04:05.000Z07:00"),
						r.ExchangeID, r.Side, r.Phase, r.Consumer, r.Provider, r.Dataset, r.Purpose, r.Status, len(r.Fields))
				}
			})
		},
	}
	read.Flags().StringVar(&exchange, "exchange", "", "only the records of this exchange id")
	cmd.AddCommand(read)
	addAuditIndexCommands(cmd, g)
	return cmd
}
