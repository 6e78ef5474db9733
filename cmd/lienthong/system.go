package main

import (
	"fmt"
	"text/tabwriter"
	"time"

	"github.com/spf13/cobra"

	"github.com/lienthong/lienthong/controlplane/client"
	"github.com/lienthong/lienthong/controlplane/service"
)

func newSystemCommand(g *globals) *cobra.Command {
	cmd := &cobra.Command{Use: "system", Short: "Register, list and assess information systems"}

	var ns client.NewSystem
	add := &cobra.Command{
		Use:     "add",
		Short:   "Register an information system of a member (its member-admin or platform-admin)",
		Example: `  lienthong system add --id VN:GOV:000.00.00.G01:CSDLDC --name "CSDL quốc gia về dân cư" --level 4`,
		Args:    cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			c, err := g.client()
			if err != nil {
				return err
			}
			s, err := c.AddSystem(cmd.Context(), ns)
			if err != nil {
				return err
			}
			return g.print(cmd.OutOrStdout(), s, func(t *tabwriter.Writer) {
				fmt.Fprintf(t, "registered system %s (level %d): %s\n", s.ID, s.SecurityLevel, s.Connectivity.Reason)
			})
		},
	}
	add.Flags().StringVar(&ns.ID, "id", "", "system id instance:class:member:system, e.g. VN:GOV:000.00.00.G01:CSDLDC")
	add.Flags().StringVar(&ns.Name, "name", "", "system name")
	add.Flags().IntVar(&ns.SecurityLevel, "level", 3, "declared security level (1-5)")

	var member string
	list := &cobra.Command{
		Use:   "list",
		Short: "List systems with whether each is connectable now",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			c, err := g.client()
			if err != nil {
				return err
			}
			ss, err := c.Systems(cmd.Context(), member)
			if err != nil {
				return err
			}
			return g.print(cmd.OutOrStdout(), ss, func(t *tabwriter.Writer) {
				row(t, "ID", "NAME", "LEVEL", "CONNECTABLE", "WHY")
				for _, s := range ss {
					row(t, s.ID, s.Name, s.SecurityLevel, yesNo(s.Connectivity.Connectable), s.Connectivity.Reason)
				}
			})
		},
	}
	list.Flags().StringVar(&member, "member", "", "only systems of this member")

	show := &cobra.Command{
		Use:   "show ID",
		Short: "Show one system with its assessment",
		Args:  cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			c, err := g.client()
			if err != nil {
				return err
			}
			s, err := c.System(cmd.Context(), args[0])
			if err != nil {
				return err
			}
			return g.print(cmd.OutOrStdout(), s, func(t *tabwriter.Writer) { systemDetail(t, s) })
		},
	}

	var na client.NewAssessment
	var validUntil string
	assess := &cobra.Command{
		Use:     "assess ID",
		Short:   "Record a security assessment of a system (platform-admin)",
		Example: `  lienthong system assess VN:GOV:000.00.00.G01:CSDLDC --level 4 --by "Cục A05" --reference "QĐ 123/QĐ-A05" --valid-until 2027-12-31`,
		Args:    cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			t, err := parseDate(validUntil)
			if err != nil {
				return fmt.Errorf("--valid-until: %w", err)
			}
			na.ValidUntil = t
			c, err := g.client()
			if err != nil {
				return err
			}
			s, err := c.Assess(cmd.Context(), args[0], na)
			if err != nil {
				return err
			}
			return g.print(cmd.OutOrStdout(), s, func(t *tabwriter.Writer) { systemDetail(t, s) })
		},
	}
	af := assess.Flags()
	af.IntVar(&na.Level, "level", 0, "assessed security level (1-5)")
	af.StringVar(&na.AssessedBy, "by", "", "assessing body")
	af.StringVar(&na.Reference, "reference", "", "document reference of the assessment decision")
	af.StringVar(&validUntil, "valid-until", "", "expiry: YYYY-MM-DD (end of that day, UTC) or RFC 3339")

	cmd.AddCommand(add, list, show, assess, newSystemEnrollCommand(g), newSystemRevokeCommand(g))
	return cmd
}

func systemDetail(t *tabwriter.Writer, s *service.SystemView) {
	row(t, "ID:", s.ID)
	row(t, "Name:", s.Name)
	row(t, "Member:", s.Member)
	row(t, "Security level:", s.SecurityLevel)
	if a := s.Assessment; a != nil {
		row(t, "Assessment:", fmt.Sprintf("level %d by %s (%s), valid until %s", a.Level, a.AssessedBy, a.Reference, a.ValidUntil.Format("2006-01-02")))
	} else {
		row(t, "Assessment:", "none")
	}
	row(t, "Connectable:", yesNo(s.Connectivity.Connectable)+" ("+s.Connectivity.Reason+")")
}

func yesNo(b bool) string {
	if b {
		return "yes"
	}
	return "NO"
}

// parseDate accepts a calendar date (meaning the end of that day in UTC, as
// assessment decisions are dated) or an RFC 3339 instant.
func parseDate(s string) (time.Time, error) {
	if t, err := time.Parse("2006-01-02", s); err == nil {
		return t.Add(24*time.Hour - time.Second), nil
	}
	t, err := time.Parse(time.RFC3339, s)
	if err != nil {
		return time.Time{}, fmt.Errorf("%q is neither YYYY-MM-DD nor RFC 3339", s)
	}
	return t, nil
}
