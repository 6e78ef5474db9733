package main

import (
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"text/tabwriter"

	"github.com/spf13/cobra"

	"github.com/lienthong/lienthong/catalog"
	"github.com/lienthong/lienthong/controlplane/service"
	"github.com/lienthong/lienthong/policies"
)

func newPolicyCommand(g *globals) *cobra.Command {
	cmd := &cobra.Command{Use: "policy", Short: "Test, explain and extend the access policy"}
	cmd.AddCommand(newPolicyTestCommand(g), newPolicyExplainCommand(g), newPolicyUploadCommand(g),
		newPolicyShowCommand(g), newPolicyRemoveCommand(g), newPolicyBundleCommand(g))
	return cmd
}

func newPolicyTestCommand(g *globals) *cobra.Command {
	var files []string
	cmd := &cobra.Command{
		Use:   "test [FILE.rego …]",
		Short: "Run the policy's Rego tests, with an agency's module and its tests if given (no server needed)",
		Long: `Run the built-in Rego tests of the base policy. Files given (an agency module and
its *_test.rego) are compiled with the same restricted builtins as the engine and their
tests run too. Exits non-zero when a test fails.`,
		Example: `  lienthong policy test my-agency.rego my-agency_test.rego`,
		RunE: func(cmd *cobra.Command, args []string) error {
			extra := map[string][]byte{}
			for _, f := range append(files, args...) {
				src, err := os.ReadFile(f)
				if err != nil {
					return err
				}
				extra[filepath.Base(f)] = src
			}
			results, err := policies.RunTests(cmd.Context(), extra)
			if err != nil {
				return err
			}
			failed := 0
			for _, r := range results {
				if !r.Pass && !r.Skip {
					failed++
				}
			}
			if err := g.print(cmd.OutOrStdout(), results, func(t *tabwriter.Writer) {
				row(t, "RESULT", "TEST", "FILE")
				for _, r := range results {
					res := "PASS"
					switch {
					case r.Skip:
						res = "SKIP"
					case r.Error != "":
						res = "ERROR " + r.Error
					case !r.Pass:
						res = "FAIL"
					}
					row(t, res, r.Package+"."+r.Name, fmt.Sprintf("%s:%d", r.File, r.Line))
				}
				fmt.Fprintf(t, "%d passed, %d failed\n", len(results)-failed, failed)
			}); err != nil {
				return err
			}
			if failed > 0 {
				return fmt.Errorf("%d policy tests failed", failed)
			}
			return nil
		},
	}
	cmd.Flags().StringArrayVar(&files, "module", nil, "agency module or test file (repeatable; same as arguments)")
	return cmd
}

func newPolicyExplainCommand(g *globals) *cobra.Command {
	var (
		in      service.ExplainInput
		dataset string
		mode    string
	)
	cmd := &cobra.Command{
		Use:     "explain",
		Short:   "Show what the current policy decides for one exchange, and why",
		Example: `  lienthong policy explain --consumer VN:GOV:000.00.00.G14:CSDLBH --dataset VN:GOV:000.00.00.G01:CSDLDC/population --purpose 1.001234 --fields fullName,religion`,
		Args:    cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			var err error
			if in.Provider, in.Dataset, err = splitRef(dataset); err != nil {
				return err
			}
			in.Mode = catalog.Mode(mode)
			c, err := g.client()
			if err != nil {
				return err
			}
			d, err := c.Explain(cmd.Context(), in)
			if err != nil {
				return err
			}
			return g.print(cmd.OutOrStdout(), d, func(t *tabwriter.Writer) {
				verdict := "DENY"
				if d.Allow {
					verdict = "ALLOW"
				}
				row(t, "Decision:", verdict, "(policy revision "+d.Revision+")")
				if d.GrantID != "" {
					row(t, "Grant:", d.GrantID)
				}
				if d.Allow {
					fields := make([]string, len(d.Fields))
					for i, f := range d.Fields {
						fields[i] = f
						if m := d.Masks[f]; m != "" {
							fields[i] += ":" + string(m)
						}
					}
					row(t, "Fields:", strings.Join(fields, ", "))
					if d.RowScope != nil {
						row(t, "Row scope:", d.RowScope.Field+" in "+strings.Join(d.RowScope.Values, ","))
					}
				}
				for _, r := range d.Reasons {
					row(t, "Reason:", r.Code, r.Message)
				}
			})
		},
	}
	f := cmd.Flags()
	f.StringVar(&in.Consumer, "consumer", "", "consumer system id")
	f.StringVar(&dataset, "dataset", "", "provider dataset as <system id>/<code>")
	f.StringVar(&in.Purpose, "purpose", "", "purpose code")
	f.StringSliceVar(&in.Fields, "fields", nil, "fields asked for (default: all the consumer may have)")
	f.StringVar(&mode, "mode", "query", "query, verify or feed")
	return cmd
}

func newPolicyUploadCommand(g *globals) *cobra.Command {
	var system, file string
	cmd := &cobra.Command{
		Use:   "upload",
		Short: "Upload a provider's own Rego module, which can only narrow access (member-admin of the provider)",
		Long: `Upload a module in package lienthong.agency.<key>, where <key> is the provider
system id lower-cased with every other character replaced by '_'. Its rules deny
(set of {code, message}), drop (set of field paths) and masks (field -> mask) narrow
the base decision; nothing it says can widen it. Test it first with "policy test".`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			src, err := os.ReadFile(file)
			if err != nil {
				return err
			}
			c, err := g.client()
			if err != nil {
				return err
			}
			m, err := c.PutAgencyModule(cmd.Context(), system, string(src))
			if err != nil {
				return err
			}
			return g.print(cmd.OutOrStdout(), m, func(t *tabwriter.Writer) {
				fmt.Fprintf(t, "uploaded policy module of %s (sha256 %s); in force from the next bundle revision\n", m.Provider, m.Digest[:12])
			})
		},
	}
	cmd.Flags().StringVar(&system, "system", "", "provider system id")
	cmd.Flags().StringVar(&file, "file", "", "Rego module")
	_ = cmd.MarkFlagRequired("system")
	_ = cmd.MarkFlagRequired("file")
	return cmd
}

func newPolicyShowCommand(g *globals) *cobra.Command {
	return &cobra.Command{
		Use:   "show SYSTEM_ID",
		Short: "Print a provider's own policy module",
		Args:  cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			c, err := g.client()
			if err != nil {
				return err
			}
			m, err := c.GetAgencyModule(cmd.Context(), args[0])
			if err != nil {
				return err
			}
			return g.print(cmd.OutOrStdout(), m, func(t *tabwriter.Writer) { fmt.Fprint(cmd.OutOrStdout(), m.Source) })
		},
	}
}

func newPolicyRemoveCommand(g *globals) *cobra.Command {
	return &cobra.Command{
		Use:   "remove SYSTEM_ID",
		Short: "Remove a provider's own policy module",
		Args:  cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			c, err := g.client()
			if err != nil {
				return err
			}
			if err := c.DeleteAgencyModule(cmd.Context(), args[0]); err != nil {
				return err
			}
			fmt.Fprintf(cmd.OutOrStdout(), "removed the policy module of %s\n", args[0])
			return nil
		},
	}
}

func newPolicyBundleCommand(g *globals) *cobra.Command {
	var out string
	cmd := &cobra.Command{
		Use:   "bundle",
		Short: "Download the signed OPA bundle of the current revision",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			c, err := g.client()
			if err != nil {
				return err
			}
			b, err := c.PolicyBundle(cmd.Context())
			if err != nil {
				return err
			}
			if err := os.WriteFile(out, b, 0o644); err != nil {
				return err
			}
			fmt.Fprintf(cmd.OutOrStdout(), "wrote %s (%d bytes)\n", out, len(b))
			return nil
		},
	}
	cmd.Flags().StringVar(&out, "out", "bundle.tar.gz", "file to write")
	return cmd
}
