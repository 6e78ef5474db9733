package main

import (
	"crypto"
	"crypto/x509"
	"encoding/pem"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"text/tabwriter"
	"time"

	"github.com/spf13/cobra"

	"github.com/lienthong/lienthong/catalog"
	"github.com/lienthong/lienthong/certs"
	"github.com/lienthong/lienthong/controlplane"
	"github.com/lienthong/lienthong/controlplane/service"
	"github.com/lienthong/lienthong/internal/durable"
)

// addCAFlags adds the certificate-authority flags of `lienthong controlplane`.
// Secrets have no flag default, so --help never prints one taken from the
// environment; the authority reads VAULT_TOKEN and LIENTHONG_VAULT_SECRET_ID
// itself.
func addCAFlags(cmd *cobra.Command, ca *controlplane.CAConfig) {
	f := cmd.Flags()
	f.StringVar(&ca.Kind, "ca", "embedded", "certificate authority: embedded (keys in <data-dir>/ca) or vault")
	f.StringVar(&ca.Dir, "ca-dir", "", "directory of the embedded CA (default <data-dir>/ca)")
	f.StringVar(&ca.TrustDomain, "trust-domain", service.DefaultTrustDomain, "SPIFFE trust domain of the federation")
	f.DurationVar(&ca.CertTTL, "cert-ttl", certs.DefaultTTL, "lifetime of issued system certificates (at most 720h)")
	f.IntVar(&ca.EnrollMinLevel, "enroll-min-level", service.DefaultEnrollMinLevel, "lowest assessed security level that gets a certificate (1-5)")
	f.StringVar(&ca.Vault.Addr, "vault-addr", "", "Vault address for --ca vault (default: env VAULT_ADDR)")
	f.StringVar(&ca.Vault.PKIMount, "vault-pki-mount", "pki", "path of Vault's PKI secrets engine")
	f.StringVar(&ca.Vault.Role, "vault-role", "lienthong-system", "PKI role that signs system certificates")
	f.StringVar(&ca.Vault.Namespace, "vault-namespace", "", "Vault Enterprise or HCP namespace, if any")
	f.StringVar(&ca.Vault.Token, "vault-token", "", "Vault token (default: env VAULT_TOKEN; prefer the environment or AppRole)")
	f.StringVar(&ca.Vault.AppRoleRoleID, "vault-approle-role-id", "", "AppRole role_id; authenticates with AppRole instead of a token")
	f.StringVar(&ca.Vault.AppRoleSecretID, "vault-approle-secret-id", "", "AppRole secret_id (default: env "+controlplane.VaultSecretIDEnv+")")
	f.StringVar(&ca.Vault.CAFile, "vault-ca-file", "", "CA certificate of Vault's TLS listener, if not in the system pool")
}

// newSystemEnrollCommand is `lienthong system enroll`: the key is made on
// this machine, only the request travels, and the answer is checked before
// anything is written.
func newSystemEnrollCommand(g *globals) *cobra.Command {
	var systemID, outDir string
	cmd := &cobra.Command{
		Use:   "enroll",
		Short: "Get a certificate for a system; its private key is made here and never leaves this machine",
		Long: `Make a new EC P-256 key on this machine, send a certificate request for the
system's SPIFFE id to the control plane, and write the key (mode 0600), the
certificate chain and the trust bundle to --out. The control plane signs only for
a system whose security assessment is current at the required level; otherwise
it answers with the reason. Run it again to renew: every run makes a new key.`,
		Example: `  lienthong system enroll --system VN:GOV:000.00.00.G01:CSDLDC --out /etc/lienthong/CSDLDC`,
		Args:    cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			id, err := catalog.ParseSystemID(systemID)
			if err != nil {
				return fmt.Errorf("--system: %w", err)
			}
			if outDir == "" {
				outDir = id.Code
			}
			c, err := g.client()
			if err != nil {
				return err
			}
			ctx := cmd.Context()
			trust, _, _, err := c.Trust(ctx, "")
			if err != nil {
				return fmt.Errorf("read the trust domain: %w", err)
			}
			keyPEM, csrPEM, err := certs.GenerateKeyAndCSR(id, trust.TrustDomain)
			if err != nil {
				return err
			}
			enr, err := c.Enroll(ctx, id.String(), csrPEM)
			if err != nil {
				return err
			}
			if err := checkEnrolment(enr, keyPEM, id.SPIFFE(trust.TrustDomain)); err != nil {
				return fmt.Errorf("the control plane's answer does not fit the request, nothing written: %w", err)
			}
			files := enrolledFiles{
				Key:    filepath.Join(outDir, "key.pem"),
				Chain:  filepath.Join(outDir, "cert.pem"),
				Bundle: filepath.Join(outDir, "bundle.pem"),
			}
			if err := os.MkdirAll(outDir, 0o700); err != nil {
				return fmt.Errorf("--out: %w", err)
			}
			// The key and its chain are replaced as one (a gateway reading
			// them settles an interrupted replacement first).
			if err := durable.ReplaceTogether(
				durable.File{Path: files.Key, Data: keyPEM, Perm: 0o600},
				durable.File{Path: files.Chain, Data: []byte(enr.ChainPEM), Perm: 0o644},
			); err != nil {
				return err
			}
			if err := writeFileAtomic(files.Bundle, []byte(enr.TrustBundlePEM), 0o644); err != nil {
				return err
			}
			out := struct {
				Certificate service.CertificateView `json:"certificate"`
				Files       enrolledFiles           `json:"files"`
			}{enr.Certificate, files}
			return g.print(cmd.OutOrStdout(), out, func(t *tabwriter.Writer) {
				cert := enr.Certificate
				fmt.Fprintf(t, "issued certificate for %s\n", cert.System)
				row(t, "  serial:", cert.Serial)
				row(t, "  SPIFFE id:", cert.SPIFFE)
				row(t, "  expires:", fmt.Sprintf("%s (in %s)", cert.NotAfter.Format(time.RFC3339), time.Until(cert.NotAfter).Round(time.Minute)))
				row(t, "  key:", files.Key+" (0600, made here, never sent)")
				row(t, "  chain:", files.Chain)
				row(t, "  trust bundle:", files.Bundle)
			})
		},
	}
	cmd.Flags().StringVar(&systemID, "system", "", "system id, e.g. VN:GOV:000.00.00.G01:CSDLDC")
	cmd.Flags().StringVar(&outDir, "out", "", "directory for key.pem, cert.pem and bundle.pem (default ./<system code>)")
	_ = cmd.MarkFlagRequired("system")
	return cmd
}

// enrolledFiles names what enroll wrote.
type enrolledFiles struct {
	Key    string `json:"key"`
	Chain  string `json:"chain"`
	Bundle string `json:"bundle"`
}

// checkEnrolment verifies the issued chain against the local key, the
// expected SPIFFE id and the returned bundle with the same check the Vault
// backend applies, so a faulty answer is noticed here rather than at the
// first handshake.
func checkEnrolment(enr *service.Enrolment, keyPEM []byte, spiffeID string) error {
	block, _ := pem.Decode(keyPEM)
	if block == nil {
		return errors.New("the new private key does not encode")
	}
	key, err := x509.ParsePKCS8PrivateKey(block.Bytes)
	if err != nil {
		return fmt.Errorf("private key: %w", err)
	}
	signer, ok := key.(crypto.Signer)
	if !ok {
		return errors.New("the new private key cannot sign")
	}
	chain, err := certs.ParseCertificatesPEM([]byte(enr.ChainPEM))
	if err != nil {
		return fmt.Errorf("certificate chain: %w", err)
	}
	roots, err := certs.ParseCertificatesPEM([]byte(enr.TrustBundlePEM))
	if err != nil {
		return fmt.Errorf("trust bundle: %w", err)
	}
	return certs.CheckIssued(chain[0], chain[1:], certs.Expectation{SPIFFEID: spiffeID, PublicKey: signer.Public(), Roots: roots})
}

// writeFileAtomic writes durably through a temporary file in the same
// directory (internal/durable), so a gateway reading the files never sees
// half of one.
func writeFileAtomic(path string, data []byte, mode os.FileMode) error {
	return durable.WriteFile(path, data, mode)
}

// newSystemRevokeCommand is `lienthong system revoke`.
func newSystemRevokeCommand(g *globals) *cobra.Command {
	var why string
	cmd := &cobra.Command{
		Use:     "revoke ID",
		Short:   "Cut a system off the network and revoke all its certificates (platform-admin)",
		Example: `  lienthong system revoke VN:GOV:000.00.00.H26:DVCHN --reason "assessment withdrawn by A05"`,
		Args:    cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			c, err := g.client()
			if err != nil {
				return err
			}
			out, err := c.RevokeSystem(cmd.Context(), args[0], why)
			if err != nil {
				return err
			}
			return g.print(cmd.OutOrStdout(), out, func(t *tabwriter.Writer) {
				fmt.Fprintf(t, "revoked system %s: %s\n", out.System.ID, out.System.Connectivity.Reason)
				fmt.Fprintf(t, "revoked %d certificate(s) with it; gateways refuse them from their next pull\n", len(out.RevokedCertificates))
				for _, s := range out.RevokedCertificates {
					row(t, "  "+s)
				}
			})
		},
	}
	cmd.Flags().StringVar(&why, "reason", "", "why the system is cut off (required; kept in the trail)")
	_ = cmd.MarkFlagRequired("reason")
	return cmd
}

// newCertCommand is `lienthong cert`.
func newCertCommand(g *globals) *cobra.Command {
	cmd := &cobra.Command{Use: "cert", Short: "List, show and revoke system certificates"}

	var system, member string
	list := &cobra.Command{
		Use:   "list",
		Short: "List certificate records with their status (your member's, unless platform-admin)",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			c, err := g.client()
			if err != nil {
				return err
			}
			cs, err := c.Certificates(cmd.Context(), catalog.CertificateFilter{System: system, Member: member})
			if err != nil {
				return err
			}
			return g.print(cmd.OutOrStdout(), cs, func(t *tabwriter.Writer) {
				row(t, "SERIAL", "SYSTEM", "STATUS", "NOT AFTER", "AUTHORITY")
				for _, c := range cs {
					row(t, c.Serial, c.System, c.Status, c.NotAfter.Format("2006-01-02 15:04"), c.Authority)
				}
			})
		},
	}
	list.Flags().StringVar(&system, "system", "", "only certificates of this system")
	list.Flags().StringVar(&member, "member", "", "only certificates of this member's systems")

	show := &cobra.Command{
		Use:   "show SERIAL",
		Short: "Show one certificate record (-o json includes its PEM)",
		Args:  cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			c, err := g.client()
			if err != nil {
				return err
			}
			cert, err := c.Certificate(cmd.Context(), args[0])
			if err != nil {
				return err
			}
			return g.print(cmd.OutOrStdout(), cert, func(t *tabwriter.Writer) { certDetail(t, cert) })
		},
	}

	var why string
	revoke := &cobra.Command{
		Use:     "revoke SERIAL",
		Short:   "Revoke a certificate; gateways refuse it from their next pull (member-admin or platform-admin)",
		Example: `  lienthong cert revoke 5b0c1e… --reason "key copied to an unmanaged laptop"`,
		Args:    cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			c, err := g.client()
			if err != nil {
				return err
			}
			cert, err := c.RevokeCertificate(cmd.Context(), args[0], why)
			if err != nil {
				return err
			}
			return g.print(cmd.OutOrStdout(), cert, func(t *tabwriter.Writer) {
				fmt.Fprintf(t, "revoked certificate %s of %s\n", cert.Serial, cert.System)
			})
		},
	}
	revoke.Flags().StringVar(&why, "reason", "", "why the certificate is revoked (required; kept in the trail)")
	_ = revoke.MarkFlagRequired("reason")

	cmd.AddCommand(list, show, revoke)
	return cmd
}

func certDetail(t *tabwriter.Writer, c *service.CertificateView) {
	row(t, "Serial:", c.Serial)
	row(t, "System:", c.System)
	row(t, "SPIFFE id:", c.SPIFFE)
	row(t, "Authority:", c.Authority)
	row(t, "Valid:", c.NotBefore.Format(time.RFC3339)+" to "+c.NotAfter.Format(time.RFC3339))
	status := string(c.Status)
	if c.RevokedAt != nil {
		status += " on " + c.RevokedAt.Format(time.RFC3339) + ": " + c.RevokeReason
	}
	row(t, "Status:", status)
}

// newCACommand is `lienthong ca`.
func newCACommand(g *globals) *cobra.Command {
	cmd := &cobra.Command{
		Use:   "ca",
		Short: "Show and rotate the certificate authority",
		Long: `A CA rotation keeps every exchange working: "ca rotate" makes a new root and
intermediate and trusts both roots; wait until every certificate of the old root
has been renewed or has expired (the certificate lifetime plus the gateways'
allowed staleness); then "ca retire" drops the old root. The embedded CA does it
here; with Vault, rotate the issuers inside Vault (docs/certificates.md).`,
	}
	status := func(use, short string, call func(cmd *cobra.Command) (*service.CAStatus, error), note string) *cobra.Command {
		return &cobra.Command{
			Use:   use,
			Short: short,
			Args:  cobra.NoArgs,
			RunE: func(cmd *cobra.Command, _ []string) error {
				st, err := call(cmd)
				if err != nil {
					return err
				}
				return g.print(cmd.OutOrStdout(), st, func(t *tabwriter.Writer) {
					if note != "" {
						fmt.Fprintln(t, note)
					}
					caDetail(t, st)
				})
			},
		}
	}
	show := status("show", "Show the authority, its settings and the trusted roots", func(cmd *cobra.Command) (*service.CAStatus, error) {
		c, err := g.client()
		if err != nil {
			return nil, err
		}
		return c.CA(cmd.Context())
	}, "")
	rotate := status("rotate", "Start a CA rotation: new root and intermediate, both roots trusted (platform-admin)", func(cmd *cobra.Command) (*service.CAStatus, error) {
		c, err := g.client()
		if err != nil {
			return nil, err
		}
		return c.RotateCA(cmd.Context())
	}, "rotated: new certificates come from the new root; retire the old one after every certificate has renewed")
	retire := status("retire", "End a CA rotation: stop trusting the previous root (platform-admin)", func(cmd *cobra.Command) (*service.CAStatus, error) {
		c, err := g.client()
		if err != nil {
			return nil, err
		}
		return c.RetireCA(cmd.Context())
	}, "retired: certificates of the previous root no longer verify")
	cmd.AddCommand(show, rotate, retire)
	return cmd
}

func caDetail(t *tabwriter.Writer, st *service.CAStatus) {
	rotatable := "yes"
	if !st.Rotatable {
		rotatable = "no (rotate inside Vault)"
	}
	row(t, "Authority:", st.Authority)
	row(t, "Rotatable here:", rotatable)
	row(t, "Trust domain:", st.TrustDomain)
	row(t, "Certificate lifetime:", st.CertificateLifetime)
	row(t, "Minimum level:", st.EnrollMinLevel)
	row(t, "Trusted roots:", len(st.Roots))
	for _, r := range st.Roots {
		row(t, "Root:", fmt.Sprintf("%s, until %s, sha256 %s", r.Subject, r.NotAfter.Format("2006-01-02"), r.SHA256))
	}
}
