package main

import (
	"fmt"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/spf13/cobra"

	"github.com/lienthong/lienthong/catalog"
	"github.com/lienthong/lienthong/controlplane/client"
	"github.com/lienthong/lienthong/controlplane/service"
)

func newAccessCommand(g *globals) *cobra.Command {
	cmd := &cobra.Command{Use: "access", Short: "Request, approve, refuse, withdraw and revoke field-level access"}
	cmd.AddCommand(newAccessRequestCommand(g), newAccessListCommand(g), newAccessShowCommand(g),
		newApproveCommand(g), newRefuseCommand(g), newWithdrawCommand(g), newRevokeGrantCommand(g))
	return cmd
}

func newAccessRequestCommand(g *globals) *cobra.Command {
	var (
		in                         service.AccessRequestInput
		dataset, until, from, rows string
		modes                      []string
	)
	cmd := &cobra.Command{
		Use:   "request",
		Short: "Ask a provider for named fields of a dataset, for a purpose and legal basis (integrator)",
		Example: `  lienthong access request --consumer VN:GOV:000.00.00.G14:BHXH \
    --dataset VN:GOV:000.00.00.G01:CSDLDC/population \
    --fields personalId,fullName,dateOfBirth,permanentResidence.provinceCode \
    --purpose 1.001234 --purpose-text "cấp thẻ BHYT cho trẻ em dưới 6 tuổi" \
    --legal-basis "Nghị định 13/2023/NĐ-CP, Điều 17" --until 2027-06-30 \
    --modes query,verify --row-scope permanentResidence.provinceCode=01,79`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			var err error
			if in.Provider, in.Dataset, err = splitRef(dataset); err != nil {
				return err
			}
			if in.ValidUntil, err = parseDate(until); err != nil {
				return fmt.Errorf("--until: %w", err)
			}
			if from != "" {
				if in.ValidFrom, err = time.Parse("2006-01-02", from); err != nil {
					return fmt.Errorf("--from: %q is not YYYY-MM-DD", from)
				}
			}
			for _, m := range modes {
				in.Modes = append(in.Modes, catalog.Mode(m))
			}
			if rows != "" {
				field, values, ok := strings.Cut(rows, "=")
				if !ok || values == "" {
					return fmt.Errorf("--row-scope %q must be field=value[,value…]", rows)
				}
				in.RowScope = &catalog.RowScope{Field: field, Values: strings.Split(values, ",")}
			}
			c, err := g.client()
			if err != nil {
				return err
			}
			r, err := c.RequestAccess(cmd.Context(), in)
			if err != nil {
				return err
			}
			return g.print(cmd.OutOrStdout(), r, func(t *tabwriter.Writer) {
				fmt.Fprintf(t, "filed access request %s: %d fields of %s/%s, pending the provider's decision\n", r.ID, len(r.Fields), r.Provider, r.Dataset)
			})
		},
	}
	f := cmd.Flags()
	f.StringVar(&in.Consumer, "consumer", "", "consumer system id")
	f.StringVar(&dataset, "dataset", "", "provider dataset as <system id>/<code>")
	f.StringSliceVar(&in.Fields, "fields", nil, "dotted field paths, comma-separated")
	f.StringVar(&in.Purpose.Code, "purpose", "", "public-service procedure code, e.g. 1.001234")
	f.StringVar(&in.Purpose.Text, "purpose-text", "", "the purpose in words")
	f.StringVar(&in.LegalBasis.Reference, "legal-basis", "", "legal document permitting the processing (required for sensitive fields)")
	f.StringVar(&in.LegalBasis.Text, "legal-text", "", "summary of the legal basis")
	f.StringVar(&from, "from", "", "start of the period, YYYY-MM-DD (default now)")
	f.StringVar(&until, "until", "", "end of the period, YYYY-MM-DD or RFC 3339")
	f.StringSliceVar(&modes, "modes", []string{"query"}, "query, verify and/or feed")
	f.StringVar(&rows, "row-scope", "", "limit rows: field=value[,value…]")
	return cmd
}

func newAccessListCommand(g *globals) *cobra.Command {
	var f catalog.AccessRequestFilter
	var state string
	cmd := &cobra.Command{
		Use:   "list",
		Short: "List access requests your agency made or received",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			f.State = catalog.RequestState(state)
			c, err := g.client()
			if err != nil {
				return err
			}
			rs, err := c.AccessRequests(cmd.Context(), f)
			if err != nil {
				return err
			}
			return g.print(cmd.OutOrStdout(), rs, func(t *tabwriter.Writer) {
				row(t, "ID", "STATE", "CONSUMER", "DATASET", "FIELDS", "PURPOSE", "UNTIL")
				for _, r := range rs {
					row(t, r.ID, r.State, r.Consumer, r.Provider+"/"+r.Dataset, len(r.Fields), r.Purpose.Code, r.ValidUntil.Format("2006-01-02"))
				}
			})
		},
	}
	cmd.Flags().StringVar(&state, "state", "", "pending, approved, refused or withdrawn")
	cmd.Flags().StringVar(&f.Consumer, "consumer", "", "only requests of this consumer system")
	cmd.Flags().StringVar(&f.Provider, "provider", "", "only requests to this provider system")
	return cmd
}

func newAccessShowCommand(g *globals) *cobra.Command {
	return &cobra.Command{
		Use:   "show ID",
		Short: "Show an access request with its full history",
		Args:  cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			c, err := g.client()
			if err != nil {
				return err
			}
			r, err := c.AccessRequest(cmd.Context(), args[0])
			if err != nil {
				return err
			}
			return g.print(cmd.OutOrStdout(), r, func(t *tabwriter.Writer) {
				row(t, "Request:", r.ID)
				row(t, "State:", r.State)
				row(t, "Consumer:", r.Consumer)
				row(t, "Dataset:", r.Provider+"/"+r.Dataset)
				row(t, "Fields:", strings.Join(r.Fields, ", "))
				row(t, "Purpose:", strings.TrimSpace(r.Purpose.Code+" "+r.Purpose.Text))
				row(t, "Legal basis:", dash(r.LegalBasis.Reference))
				row(t, "Modes:", fmt.Sprint(r.Modes))
				row(t, "Period:", r.ValidFrom.Format("2006-01-02")+" to "+r.ValidUntil.Format("2006-01-02"))
				if r.RowScope != nil {
					row(t, "Row scope:", r.RowScope.Field+" in "+strings.Join(r.RowScope.Values, ","))
				}
				if len(r.Approved) > 0 {
					row(t, "Granted:", grantedFields(r.Approved))
				}
				if r.Reason != "" {
					row(t, "Reason:", r.Reason)
				}
				if r.GrantID != "" {
					row(t, "Grant:", r.GrantID)
				}
				for _, e := range r.History {
					row(t, "History:", e.At.Format("2006-01-02 15:04"), e.Action, e.Actor, e.Detail)
				}
			})
		},
	}
}

func grantedFields(fs []catalog.GrantedField) string {
	parts := make([]string, len(fs))
	for i, f := range fs {
		parts[i] = f.Path
		if f.Mask != catalog.MaskNone {
			parts[i] += ":" + string(f.Mask)
		}
	}
	return strings.Join(parts, ", ")
}

func newApproveCommand(g *globals) *cobra.Command {
	var fields []string
	var note string
	cmd := &cobra.Command{
		Use:   "approve REQUEST_ID",
		Short: "Grant all or some requested fields, optionally masked (approver of the provider)",
		Long: `Approve a pending request. Without --field every requested field is granted
unmasked; with --field only those listed are, each as path or path:mask where mask
is hash, partial or nullify.`,
		Example: `  lienthong access approve req-… --field personalId:hash --field fullName --field dateOfBirth`,
		Args:    cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			a := service.Approval{Note: note}
			for _, f := range fields {
				path, mask, _ := strings.Cut(f, ":")
				a.Fields = append(a.Fields, catalog.GrantedField{Path: path, Mask: catalog.Mask(mask)})
			}
			c, err := g.client()
			if err != nil {
				return err
			}
			gr, err := c.Approve(cmd.Context(), args[0], a)
			if err != nil {
				return err
			}
			return g.print(cmd.OutOrStdout(), gr, func(t *tabwriter.Writer) {
				fmt.Fprintf(t, "granted %s: %s until %s\n", gr.ID, grantedFields(gr.Fields), gr.ValidUntil.Format("2006-01-02"))
			})
		},
	}
	cmd.Flags().StringArrayVar(&fields, "field", nil, "granted field as path or path:mask (repeatable)")
	cmd.Flags().StringVar(&note, "note", "", "note kept in the history")
	return cmd
}

func reasonCommand(g *globals, use, short string, act func(c *client.Client, cmd *cobra.Command, id, reason string) (any, string, error)) *cobra.Command {
	var reason string
	cmd := &cobra.Command{
		Use:   use,
		Short: short,
		Args:  cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			c, err := g.client()
			if err != nil {
				return err
			}
			v, msg, err := act(c, cmd, args[0], reason)
			if err != nil {
				return err
			}
			return g.print(cmd.OutOrStdout(), v, func(t *tabwriter.Writer) { fmt.Fprintln(t, msg) })
		},
	}
	cmd.Flags().StringVar(&reason, "reason", "", "written reason (kept in the history)")
	return cmd
}

func newRefuseCommand(g *globals) *cobra.Command {
	return reasonCommand(g, "refuse REQUEST_ID", "Refuse a pending request with a written reason (approver of the provider)",
		func(c *client.Client, cmd *cobra.Command, id, reason string) (any, string, error) {
			r, err := c.Refuse(cmd.Context(), id, reason)
			return r, "refused " + id, err
		})
}

func newWithdrawCommand(g *globals) *cobra.Command {
	return reasonCommand(g, "withdraw REQUEST_ID", "Withdraw your own pending request",
		func(c *client.Client, cmd *cobra.Command, id, reason string) (any, string, error) {
			r, err := c.Withdraw(cmd.Context(), id, reason)
			return r, "withdrew " + id, err
		})
}

func newRevokeGrantCommand(g *globals) *cobra.Command {
	return reasonCommand(g, "revoke GRANT_ID", "Revoke a grant; gateways deny from their next configuration pull",
		func(c *client.Client, cmd *cobra.Command, id, reason string) (any, string, error) {
			gr, err := c.RevokeGrant(cmd.Context(), id, reason)
			return gr, "revoked " + id, err
		})
}

func newGrantCommand(g *globals) *cobra.Command {
	cmd := &cobra.Command{Use: "grant", Short: "List and show grants"}
	var f catalog.GrantFilter
	var state string
	list := &cobra.Command{
		Use:   "list",
		Short: "List grants your agency holds or gave",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			f.State = catalog.GrantState(state)
			c, err := g.client()
			if err != nil {
				return err
			}
			gs, err := c.Grants(cmd.Context(), f)
			if err != nil {
				return err
			}
			return g.print(cmd.OutOrStdout(), gs, func(t *tabwriter.Writer) {
				row(t, "ID", "STATE", "CONSUMER", "DATASET", "FIELDS", "MODES", "UNTIL")
				for _, gr := range gs {
					row(t, gr.ID, gr.EffectiveState, gr.Consumer, gr.Provider+"/"+gr.Dataset, grantedFields(gr.Fields), fmt.Sprint(gr.Modes), gr.ValidUntil.Format("2006-01-02"))
				}
			})
		},
	}
	list.Flags().StringVar(&f.Consumer, "consumer", "", "only grants of this consumer system")
	list.Flags().StringVar(&f.Provider, "provider", "", "only grants of this provider system")
	list.Flags().StringVar(&f.Dataset, "dataset", "", "only grants on this dataset code")
	list.Flags().StringVar(&state, "state", "", "active or revoked (as stored)")
	show := &cobra.Command{
		Use:   "show ID",
		Short: "Show one grant with its history",
		Args:  cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			c, err := g.client()
			if err != nil {
				return err
			}
			gr, err := c.Grant(cmd.Context(), args[0])
			if err != nil {
				return err
			}
			return g.print(cmd.OutOrStdout(), gr, func(t *tabwriter.Writer) {
				row(t, "Grant:", gr.ID, "(from request "+gr.RequestID+")")
				row(t, "State:", gr.EffectiveState)
				row(t, "Consumer:", gr.Consumer)
				row(t, "Dataset:", gr.Provider+"/"+gr.Dataset)
				row(t, "Fields:", grantedFields(gr.Fields))
				row(t, "Modes:", fmt.Sprint(gr.Modes))
				row(t, "Period:", gr.ValidFrom.Format("2006-01-02")+" to "+gr.ValidUntil.Format("2006-01-02"))
				for _, e := range gr.History {
					row(t, "History:", e.At.Format("2006-01-02 15:04"), e.Action, e.Actor, e.Detail)
				}
			})
		},
	}
	cmd.AddCommand(list, show)
	return cmd
}
