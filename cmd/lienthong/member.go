package main

import (
	"fmt"
	"net/mail"
	"text/tabwriter"

	"github.com/spf13/cobra"

	"github.com/lienthong/lienthong/catalog"
	"github.com/lienthong/lienthong/controlplane/client"
)

func newMemberCommand(g *globals) *cobra.Command {
	cmd := &cobra.Command{Use: "member", Short: "Admit and list members (agencies)"}

	var m client.NewMember
	var contacts []string
	add := &cobra.Command{
		Use:   "add",
		Short: "Admit an agency to the federation (platform-admin)",
		Example: `  lienthong member add --code 000.00.00.G01 --name "Bộ Công an" \
    --contact "Cục C06 <c06@bocongan.gov.vn>"`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			m.Contacts = []catalog.Contact{}
			for _, c := range contacts {
				a, err := mail.ParseAddress(c)
				if err != nil {
					m.Contacts = append(m.Contacts, catalog.Contact{Name: c})
					continue
				}
				m.Contacts = append(m.Contacts, catalog.Contact{Name: a.Name, Email: a.Address})
			}
			c, err := g.client()
			if err != nil {
				return err
			}
			out, err := c.AddMember(cmd.Context(), m)
			if err != nil {
				return err
			}
			return g.print(cmd.OutOrStdout(), out, func(t *tabwriter.Writer) {
				fmt.Fprintf(t, "admitted member %s (%s)\n", out.Code, out.Name)
			})
		},
	}
	add.Flags().StringVar(&m.Code, "code", "", "electronic agency code, e.g. 000.00.00.G01")
	add.Flags().StringVar(&m.Name, "name", "", "agency name")
	add.Flags().StringArrayVar(&contacts, "contact", nil, `contact as "Name <email>" (repeatable)`)

	list := &cobra.Command{
		Use:   "list",
		Short: "List members",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			c, err := g.client()
			if err != nil {
				return err
			}
			ms, err := c.Members(cmd.Context())
			if err != nil {
				return err
			}
			return g.print(cmd.OutOrStdout(), ms, func(t *tabwriter.Writer) {
				row(t, "CODE", "NAME", "CONTACTS")
				for _, m := range ms {
					row(t, m.Code, m.Name, len(m.Contacts))
				}
			})
		},
	}

	show := &cobra.Command{
		Use:   "show CODE",
		Short: "Show one member with its contacts",
		Args:  cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			c, err := g.client()
			if err != nil {
				return err
			}
			m, err := c.Member(cmd.Context(), args[0])
			if err != nil {
				return err
			}
			return g.print(cmd.OutOrStdout(), m, func(t *tabwriter.Writer) {
				row(t, "Code:", m.Code)
				row(t, "Name:", m.Name)
				row(t, "Admitted:", m.CreatedAt.Format("2006-01-02 15:04"))
				for _, ct := range m.Contacts {
					row(t, "Contact:", ct.Name, ct.Email, ct.Phone)
				}
			})
		},
	}
	cmd.AddCommand(add, list, show)
	return cmd
}
