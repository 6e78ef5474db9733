package main

import (
	"fmt"
	"os"
	"strings"
	"text/tabwriter"

	"github.com/spf13/cobra"

	"github.com/lienthong/lienthong/controlplane/client"
)

// splitRef parses "<system id>/<code>".
func splitRef(ref string) (system, code string, err error) {
	i := strings.LastIndex(ref, "/")
	if i <= 0 || i == len(ref)-1 {
		return "", "", fmt.Errorf("dataset %q must be <system id>/<code>, e.g. VN:GOV:000.00.00.G01:CSDLDC/population", ref)
	}
	return ref[:i], ref[i+1:], nil
}

func newDatasetCommand(g *globals) *cobra.Command {
	cmd := &cobra.Command{Use: "dataset", Short: "Publish datasets and browse the catalog"}

	var p client.PublishRequest
	var file string
	publish := &cobra.Command{
		Use:   "publish",
		Short: "Publish a dataset version from an OpenAPI 3.0/3.1 document (the provider's member-admin)",
		Long: `Publish a dataset. Every schema property of the document must carry
x-classification (public, internal, personal or sensitive). Publishing a changed
document makes a new version and lists what changed; an identical one changes nothing.`,
		Example: `  lienthong dataset publish --system VN:GOV:000.00.00.G01:CSDLDC --openapi examples/population.yaml`,
		Args:    cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			doc, err := os.ReadFile(file)
			if err != nil {
				return err
			}
			p.Document = string(doc)
			c, err := g.client()
			if err != nil {
				return err
			}
			res, err := c.Publish(cmd.Context(), p)
			if err != nil {
				return err
			}
			return g.print(cmd.OutOrStdout(), res, func(t *tabwriter.Writer) {
				d := res.Dataset
				if !res.Created {
					fmt.Fprintf(t, "unchanged: %s is already version %d\n", d.Ref(), d.Version)
					return
				}
				fmt.Fprintf(t, "published %s version %d: %d fields, consumers need security level %d\n", d.Ref(), d.Version, len(d.Fields), d.MinConsumerLevel)
				for _, ch := range res.Changes {
					row(t, "  "+ch.Kind, ch.Path, strings.Trim(ch.From+" -> "+ch.To, " ->"))
				}
			})
		},
	}
	pf := publish.Flags()
	pf.StringVar(&p.System, "system", "", "provider system id")
	pf.StringVar(&p.Code, "code", "", "dataset code (default: info.x-dataset-code of the document)")
	pf.StringVar(&file, "openapi", "", "OpenAPI document (YAML or JSON)")
	pf.IntVar(&p.MinConsumerLevel, "min-level", 0, "minimum consumer security level (default: 3 when any field is personal)")
	_ = publish.MarkFlagRequired("openapi")
	_ = publish.MarkFlagRequired("system")

	var member, system string
	list := &cobra.Command{
		Use:   "list",
		Short: "List datasets (latest versions)",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			c, err := g.client()
			if err != nil {
				return err
			}
			ds, err := c.Datasets(cmd.Context(), member, system)
			if err != nil {
				return err
			}
			return g.print(cmd.OutOrStdout(), ds, func(t *tabwriter.Writer) {
				row(t, "DATASET", "VERSION", "TITLE", "FIELDS", "MIN LEVEL")
				for _, d := range ds {
					row(t, d.Ref(), d.Version, d.Title, len(d.Fields), d.MinConsumerLevel)
				}
			})
		},
	}
	list.Flags().StringVar(&member, "member", "", "only datasets of this member")
	list.Flags().StringVar(&system, "system", "", "only datasets of this system")

	var version int
	show := &cobra.Command{
		Use:   "show SYSTEM/CODE",
		Short: "Show a dataset version",
		Args:  cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			sys, code, err := splitRef(args[0])
			if err != nil {
				return err
			}
			c, err := g.client()
			if err != nil {
				return err
			}
			d, err := c.Dataset(cmd.Context(), sys, code, version)
			if err != nil {
				return err
			}
			return g.print(cmd.OutOrStdout(), d, func(t *tabwriter.Writer) {
				row(t, "Dataset:", d.Ref())
				row(t, "Title:", d.Title)
				row(t, "Version:", d.Version)
				row(t, "Record schema:", d.RecordSchema)
				row(t, "Fields:", len(d.Fields))
				row(t, "Min consumer level:", d.MinConsumerLevel)
				row(t, "Published:", d.PublishedAt.Format("2006-01-02 15:04")+" by "+d.PublishedBy)
				row(t, "Digest:", d.Digest)
			})
		},
	}
	show.Flags().IntVar(&version, "version", 0, "version (default latest)")

	fields := &cobra.Command{
		Use:   "fields SYSTEM/CODE",
		Short: "List a dataset's fields with their classifications",
		Args:  cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			sys, code, err := splitRef(args[0])
			if err != nil {
				return err
			}
			c, err := g.client()
			if err != nil {
				return err
			}
			fs, err := c.Fields(cmd.Context(), sys, code, version)
			if err != nil {
				return err
			}
			return g.print(cmd.OutOrStdout(), fs, func(t *tabwriter.Writer) {
				row(t, "PATH", "TYPE", "CLASSIFICATION", "DEFAULT-SHARED")
				for _, f := range fs {
					typ := f.Type
					if f.Format != "" {
						typ += "(" + f.Format + ")"
					}
					row(t, f.Path, typ, f.Classification, yesNoBlank(f.DefaultShared))
				}
			})
		},
	}
	fields.Flags().IntVar(&version, "version", 0, "version (default latest)")

	versions := &cobra.Command{
		Use:   "versions SYSTEM/CODE",
		Short: "List every version of a dataset",
		Args:  cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			sys, code, err := splitRef(args[0])
			if err != nil {
				return err
			}
			c, err := g.client()
			if err != nil {
				return err
			}
			vs, err := c.Versions(cmd.Context(), sys, code)
			if err != nil {
				return err
			}
			return g.print(cmd.OutOrStdout(), vs, func(t *tabwriter.Writer) {
				row(t, "VERSION", "PUBLISHED", "BY", "FIELDS", "DIGEST")
				for _, d := range vs {
					row(t, d.Version, d.PublishedAt.Format("2006-01-02 15:04"), d.PublishedBy, len(d.Fields), d.Digest[:12])
				}
			})
		},
	}
	cmd.AddCommand(publish, list, show, fields, versions)
	return cmd
}

func yesNoBlank(b bool) string {
	if b {
		return "yes"
	}
	return ""
}
