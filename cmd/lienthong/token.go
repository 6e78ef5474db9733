package main

import (
	"fmt"
	"text/tabwriter"

	"github.com/spf13/cobra"

	"github.com/lienthong/lienthong/catalog"
	"github.com/lienthong/lienthong/controlplane/client"
)

func newTokenCommand(g *globals) *cobra.Command {
	cmd := &cobra.Command{Use: "token", Short: "Create, list and revoke API tokens"}

	var nt client.NewToken
	var role string
	create := &cobra.Command{
		Use:   "create",
		Short: "Create an API token; its secret is printed once",
		Long: `Create a token bound to a role and (except platform-admin) to one member.
Roles: platform-admin, member-admin, approver, auditor, integrator. A member-admin
may create tokens for its own member only.`,
		Example: `  lienthong token create --name "C06 admin" --role member-admin --member 000.00.00.G01`,
		Args:    cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			nt.Role = catalog.Role(role)
			c, err := g.client()
			if err != nil {
				return err
			}
			out, err := c.CreateToken(cmd.Context(), nt)
			if err != nil {
				return err
			}
			return g.print(cmd.OutOrStdout(), out, func(t *tabwriter.Writer) {
				fmt.Fprintf(t, "created token %s (%s) for %s\n", out.Record.ID, out.Record.Role, dash(out.Record.Member))
				fmt.Fprintf(t, "secret (shown once, store it now):\n%s\n", out.Token)
			})
		},
	}
	f := create.Flags()
	f.StringVar(&nt.Name, "name", "", "who or what uses the token")
	f.StringVar(&role, "role", "", "platform-admin, member-admin, approver, auditor or integrator")
	f.StringVar(&nt.Member, "member", "", "agency code the token acts for")
	f.StringVar(&nt.TTL, "ttl", "", "lifetime such as 720h (default: no expiry)")

	list := &cobra.Command{
		Use:   "list",
		Short: "List tokens (never their secrets)",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			c, err := g.client()
			if err != nil {
				return err
			}
			ts, err := c.Tokens(cmd.Context())
			if err != nil {
				return err
			}
			return g.print(cmd.OutOrStdout(), ts, func(t *tabwriter.Writer) {
				row(t, "ID", "NAME", "ROLE", "MEMBER", "CREATED", "STATE")
				for _, tk := range ts {
					state := "active"
					if tk.RevokedAt != nil {
						state = "revoked " + tk.RevokedAt.Format("2006-01-02")
					}
					row(t, tk.ID, tk.Name, tk.Role, dash(tk.Member), tk.CreatedAt.Format("2006-01-02 15:04"), state)
				}
			})
		},
	}

	revoke := &cobra.Command{
		Use:   "revoke ID",
		Short: "Revoke a token at once",
		Args:  cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			c, err := g.client()
			if err != nil {
				return err
			}
			tk, err := c.RevokeToken(cmd.Context(), args[0])
			if err != nil {
				return err
			}
			return g.print(cmd.OutOrStdout(), tk, func(t *tabwriter.Writer) {
				fmt.Fprintf(t, "revoked token %s (%s)\n", tk.ID, tk.Name)
			})
		},
	}
	cmd.AddCommand(create, list, revoke)
	return cmd
}

func newTrailCommand(g *globals) *cobra.Command {
	var f catalog.TrailFilter
	cmd := &cobra.Command{
		Use:   "trail",
		Short: "Read the admin trail: who changed what, when (auditor, member-admin, platform-admin)",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			c, err := g.client()
			if err != nil {
				return err
			}
			es, err := c.Trail(cmd.Context(), f)
			if err != nil {
				return err
			}
			return g.print(cmd.OutOrStdout(), es, func(t *tabwriter.Writer) {
				row(t, "SEQ", "AT", "ACTOR", "ACTION", "OBJECT", "OUTCOME")
				for _, e := range es {
					row(t, e.Seq, e.At.Format("2006-01-02 15:04:05"), e.Actor, e.Action, e.Object, e.Outcome)
				}
			})
		},
	}
	cmd.Flags().StringVar(&f.Member, "member", "", "only entries of this member")
	cmd.Flags().StringVar(&f.Object, "object", "", "only entries about this object id")
	cmd.Flags().Int64Var(&f.AfterSeq, "after", 0, "only entries after this sequence number")
	cmd.Flags().IntVar(&f.Limit, "limit", 0, "at most this many entries (default 1000)")
	return cmd
}
