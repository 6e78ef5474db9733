package main

import (
	"bufio"
	"context"
	"crypto/ed25519"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/url"
	"os"
	"strings"
	"text/tabwriter"

	"github.com/spf13/cobra"

	"github.com/lienthong/lienthong/audit"
	"github.com/lienthong/lienthong/controlplane/client"
)

func newAuditCommand(g *globals) *cobra.Command {
	cmd := &cobra.Command{Use: "audit", Short: "Read, verify and prove a gateway's audit log"}
	cmd.AddCommand(newAuditReadCommand(g), newAuditVerifyCommand(g), newAuditProveCommand(), newAuditSetAsideCommand())
	addAuditIndexCommands(cmd, g)
	return cmd
}

// auditFiles expands each argument to its log's files: the sealed segments
// of an active segment, then the segment itself.
func auditFiles(args []string) ([]string, error) {
	var files []string
	for _, a := range args {
		fs, err := audit.LogFiles(a)
		if err != nil {
			return nil, err
		}
		files = append(files, fs...)
	}
	return files, nil
}

func newAuditReadCommand(g *globals) *cobra.Command {
	var exchange string
	read := &cobra.Command{
		Use:   "read FILE",
		Short: "Print the records of an audit log (the gateway's auditFile and its sealed segments)",
		Long: `Print the records of a gateway's audit log, oldest first: the sealed segments
next to FILE, then FILE. It streams, so a log of any size reads in constant
memory. The file grows in preallocated chunks of zeros, so read it with this
command rather than with tail or cat. An exchange that reached a backend or a
peer gateway has an intent record and then an outcome record; an intent
without an outcome is an exchange whose answer may have been released when
the gateway stopped. This command does not verify; see "audit verify".`,
		Args: cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			out := bufio.NewWriterSize(cmd.OutOrStdout(), 64<<10)
			defer out.Flush()
			var each func(r *audit.Record) error
			switch g.output {
			case "json":
				enc := json.NewEncoder(out)
				each = func(r *audit.Record) error { return enc.Encode(r) }
			case "table", "":
				// Flushed every few hundred rows: columns align within a
				// block, and memory stays bounded.
				t := tabwriter.NewWriter(out, 0, 4, 2, ' ', 0)
				defer t.Flush()
				fmt.Fprintln(t, "TIME\tEXCHANGE\tSIDE\tPHASE\tCONSUMER\tDATASET\tPURPOSE\tSTATUS\tFIELDS")
				n := 0
				each = func(r *audit.Record) error {
					fmt.Fprintf(t, "%s\t%s\t%s\t%s\t%s\t%s/%s\t%s\t%d\t%d\n", r.Time.Format("2006-01-02T15:04:05.000Z07:00"),
						r.ExchangeID, r.Side, r.Phase, r.Consumer, r.Provider, r.Dataset, r.Purpose, r.Status, len(r.Fields))
					if n++; n%500 == 0 {
						return t.Flush()
					}
					return nil
				}
			default:
				return fmt.Errorf("unknown output format %q: use table or json", g.output)
			}
			keep := func(r *audit.Record) error {
				if exchange != "" && r.ExchangeID != exchange {
					return nil
				}
				return each(r)
			}
			files, err := auditFiles(args)
			if err != nil {
				return err
			}
			err = audit.EachEntry(files, func(e *audit.Entry, _ []byte) error {
				if e.Record == nil {
					return nil
				}
				return keep(e.Record)
			})
			if errors.Is(err, audit.ErrLegacy) {
				// A file from before the hash chain: readable, never verifiable.
				recs, lerr := audit.ReadLegacy(args[0])
				if lerr != nil {
					return lerr
				}
				fmt.Fprintln(cmd.ErrOrStderr(), "note: records from before the hash chain; they cannot be verified")
				for i := range recs {
					if err := keep(&recs[i]); err != nil {
						return err
					}
				}
				return nil
			}
			return err
		},
	}
	read.Flags().StringVar(&exchange, "exchange", "", "only the records of this exchange id")
	return read
}

func newAuditVerifyCommand(g *globals) *cobra.Command {
	var checkpoints, proofFile, key string
	verify := &cobra.Command{
		Use:   "verify FILE… | --proof PROOF",
		Short: "Verify an audit log's hash chain and signed checkpoints, or an inclusion proof",
		Long: `Verify streams the log (each FILE with the sealed segments next to it, oldest
first) and checks every entry's seq and prev link, each segment's genesis, each
checkpoint's head, Merkle root and Ed25519 signature, and the commit lines.
Any altered, deleted, inserted, reordered or cut entry stops it with the first
bad position and the last good checkpoint, and a non-zero exit.

A gateway holding its own key can rewrite its log and re-sign it; the
checkpoints it already sent the control plane it cannot take back. Pass them
with --checkpoints (a JSON array in a file, or the control plane's URL
/v1/audit/gateways/{gateway}/checkpoints) to catch that, and a log cut short.

With --proof, it checks an inclusion proof from "audit prove" without the log.`,
		RunE: func(cmd *cobra.Command, args []string) error {
			out := cmd.OutOrStdout()
			if proofFile != "" {
				return verifyProof(out, proofFile, key)
			}
			if len(args) == 0 {
				return errors.New("name the log's files, or --proof")
			}
			var published []*audit.Checkpoint
			if checkpoints != "" {
				var err error
				if published, err = loadCheckpoints(cmd.Context(), g, checkpoints); err != nil {
					return err
				}
			}
			files, err := auditFiles(args)
			if err != nil {
				return err
			}
			rep, err := audit.Verify(files, published)
			if err != nil {
				return err
			}
			fmt.Fprintf(out, "ok: %d files, %d entries (%d records, %d checkpoints), gateway %s\n",
				rep.Files, rep.Entries, rep.Records, rep.Checkpoints, rep.Gateway)
			fmt.Fprintf(out, "head: seq %d %s\n", rep.Last.Seq, rep.Last.Hash)
			if cp := rep.LastCheckpoint; cp != nil {
				fmt.Fprintf(out, "last checkpoint: entries %d..%d, signed %s\n", cp.From, cp.Seq, cp.Time.Format("2006-01-02T15:04:05Z07:00"))
			}
			if rep.Uncovered > 0 {
				fmt.Fprintf(out, "%d entries after the last checkpoint are chained but not yet signed\n", rep.Uncovered)
			}
			fmt.Fprintf(out, "checkpoint key: %s (compare with the key enrolled at the control plane)\n", base64.StdEncoding.EncodeToString(rep.Key))
			if len(published) > 0 {
				fmt.Fprintf(out, "matches %d published checkpoints\n", len(published))
			}
			return nil
		},
	}
	verify.Flags().StringVar(&checkpoints, "checkpoints", "", "published checkpoints: a JSON file, or the control plane's checkpoints URL")
	verify.Flags().StringVar(&proofFile, "proof", "", "verify this inclusion proof (from audit prove) instead of a log")
	verify.Flags().StringVar(&key, "key", "", "with --proof: the gateway's enrolled checkpoint key, base64 (default: the key the proof names)")
	return verify
}

func verifyProof(out io.Writer, file, key string) error {
	bs, err := os.ReadFile(file)
	if err != nil {
		return err
	}
	var p audit.Proof
	if err := json.Unmarshal(bs, &p); err != nil {
		return fmt.Errorf("proof %s: %w", file, err)
	}
	var pub ed25519.PublicKey
	if key != "" {
		if pub, err = base64.StdEncoding.DecodeString(key); err != nil {
			return fmt.Errorf("--key: %w", err)
		}
	}
	if err := audit.VerifyProof(&p, pub); err != nil {
		return err
	}
	fmt.Fprintf(out, "ok: entry %d is in gateway %s's log under the checkpoint over entries %d..%d signed %s\n",
		p.Seq, p.Checkpoint.Gateway, p.Checkpoint.From, p.Checkpoint.Seq, p.Checkpoint.Time.Format("2006-01-02T15:04:05Z07:00"))
	if key == "" {
		fmt.Fprintf(out, "signed with key %s, the key the proof names: compare it with the key enrolled at the control plane, or pass --key\n",
			base64.StdEncoding.EncodeToString(p.Key))
	}
	return nil
}

// loadCheckpoints reads published checkpoints from a file or the control
// plane.
func loadCheckpoints(ctx context.Context, g *globals, from string) ([]*audit.Checkpoint, error) {
	if !strings.HasPrefix(from, "https://") && !strings.HasPrefix(from, "http://") {
		f, err := os.Open(from)
		if err != nil {
			return nil, err
		}
		defer f.Close()
		return audit.ReadCheckpoints(f)
	}
	u, err := url.Parse(from)
	if err != nil {
		return nil, err
	}
	base := u.Scheme + "://" + u.Host
	c, err := client.New(base, g.token, g.caFile)
	if err != nil {
		return nil, err
	}
	var raw json.RawMessage
	if err := c.Do(ctx, "GET", u.RequestURI(), nil, &raw); err != nil {
		return nil, fmt.Errorf("checkpoints from %s: %w", from, err)
	}
	return audit.ReadCheckpoints(strings.NewReader(string(raw)))
}

func newAuditProveCommand() *cobra.Command {
	var seq uint64
	prove := &cobra.Command{
		Use:   "prove FILE --seq N",
		Short: "Print an inclusion proof of entry N under the checkpoint that covers it",
		Long: `Prove streams the log (verifying it on the way) to entry N and the signed
checkpoint after it, and prints, as JSON, the entry, the checkpoint and the
Merkle audit path between them: "audit verify --proof" checks it with no log.`,
		Args: cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			if seq == 0 {
				return errors.New("--seq is required (entries count from 1)")
			}
			files, err := auditFiles(args)
			if err != nil {
				return err
			}
			p, err := audit.Prove(files, seq)
			if err != nil {
				return err
			}
			enc := json.NewEncoder(cmd.OutOrStdout())
			enc.SetIndent("", "  ")
			return enc.Encode(p)
		},
	}
	prove.Flags().Uint64Var(&seq, "seq", 0, "the entry's sequence number (audit read -o json, or a receipt's position)")
	return prove
}

func newAuditSetAsideCommand() *cobra.Command {
	return &cobra.Command{
		Use:   "set-aside FILE",
		Short: "Move a damaged audit log aside, so the gateway starts a new segment continuing its last good entry",
		Long: `A gateway whose active audit segment is damaged refuses to start and names the
position. With the gateway stopped, set-aside renames the segment, whole and
unchanged, to FILE.<first seq>.damaged; the next start begins a new segment
whose genesis continues the damaged one's last good entry. The damaged file
stays with the log for investigation ("audit verify" keeps reporting it). A
file from before the hash chain is renamed to FILE.<time>.legacy. Nothing
is ever rewritten.`,
		Args: cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			to, err := audit.SetAside(args[0])
			if err != nil {
				return err
			}
			fmt.Fprintf(cmd.OutOrStdout(), "moved %s to %s; the gateway's next start begins a new segment\n", args[0], to)
			return nil
		},
	}
}
