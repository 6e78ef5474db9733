package audit

import (
	"bytes"
	"context"
	"crypto/ed25519"
	"crypto/sha256"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
)

// buildLog writes n records through a sink that checkpoints every 16
// entries, and returns the log and the checkpoints the sink published.
func buildLog(t *testing.T, n int) (string, []*Checkpoint) {
	t.Helper()
	path := filepath.Join(t.TempDir(), "audit.jsonl")
	opts := testOptions()
	opts.CheckpointEvery = 16
	var mu sync.Mutex
	var published []*Checkpoint
	opts.OnCheckpoint = func(c Checkpoint) {
		mu.Lock()
		published = append(published, &c)
		mu.Unlock()
	}
	s, err := OpenFile(path, opts)
	if err != nil {
		t.Fatal(err)
	}
	var rcs []*Receipt
	for i := range n {
		c := CommitSoon
		if i%7 == 6 {
			c = CommitNow
		}
		rcs = append(rcs, s.Submit(&Record{ExchangeID: fmt.Sprintf("x%03d", i), Phase: Outcome, Fields: []string{"fullName"}}, c))
		if c == CommitNow { // one commit every few records
			rcs[i].Wait(context.Background())
		}
	}
	for i, rc := range rcs {
		if err := rc.Wait(context.Background()); err != nil {
			t.Fatal(err)
		}
		if p := rc.Position(); p.Seq == 0 || len(p.Hash) != 64 {
			t.Fatalf("record %d: position %+v", i, p)
		}
	}
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	return path, published
}

// fileLines returns the written lines of a segment (zeros dropped), each
// with its newline.
func fileLines(t *testing.T, path string) [][]byte {
	t.Helper()
	bs := bytes.TrimRight(mustRead(t, path), "\x00")
	var lines [][]byte
	for len(bs) > 0 {
		i := bytes.IndexByte(bs, '\n')
		lines = append(lines, bs[:i+1])
		bs = bs[i+1:]
	}
	return lines
}

// lineOf returns the index of the line holding entry seq.
func lineOf(t *testing.T, lines [][]byte, seq uint64) int {
	t.Helper()
	for i, l := range lines {
		if !isCommitLine(l) {
			if e, err := ParseEntry(l[:len(l)-1]); err == nil && e.Seq == seq {
				return i
			}
		}
	}
	t.Fatalf("no entry %d", seq)
	return -1
}

func writeLines(t *testing.T, path string, lines [][]byte) {
	t.Helper()
	if err := os.WriteFile(path, bytes.Join(lines, nil), 0o600); err != nil {
		t.Fatal(err)
	}
}

// rechain rewrites every prev link, checkpoint and commit line after a
// change, as someone holding the gateway's key would.
func rechain(t *testing.T, lines [][]byte) [][]byte {
	t.Helper()
	key := testOptions().Key
	var out [][]byte
	var head string
	var leaves []Hash
	for _, l := range lines {
		body := l[:len(l)-1]
		if isCommitLine(body) {
			seq, _, _ := parseCommit(body)
			out = append(out, appendCommit(nil, Position{Seq: seq, Hash: head}))
			continue
		}
		e, err := ParseEntry(body)
		if err != nil {
			t.Fatal(err)
		}
		if e.Kind != KindGenesis {
			e.Prev = head
		}
		if cp := e.Checkpoint; cp != nil {
			cp.Head, cp.Root = head, HexHash(MerkleRoot(leaves))
			cp.Sign(key)
		}
		nb, _ := json.Marshal(e)
		out = append(out, append(nb, '\n'))
		head = EntryHash(nb)
		if e.Kind == KindCheckpoint {
			leaves = nil
		} else {
			leaves = append(leaves, LeafHash(nb))
		}
	}
	return out
}

// Every kind of tampering is found, at the position it was made, and a
// sink refuses to open the damaged log and leaves it byte-identical.
func TestTamperingIsFoundWhereItWasMade(t *testing.T) {
	t.Run("small log", func(t *testing.T) { tamperCases(t, 100, func([][]byte) uint64 { return 40 }) })
	// Verification reads and hashes the log in chunks of chunkLines lines
	// on several cores: tampering at a chunk's edge is found at its place.
	t.Run("at a chunk boundary", func(t *testing.T) {
		tamperCases(t, chunkLines+chunkLines/2, func(ls [][]byte) uint64 {
			i := chunkLines - 1
			for isCommitLine(ls[i]) || isCommitLine(ls[i+1]) {
				i--
			}
			e, err := ParseEntry(ls[i][:len(ls[i])-1])
			if err != nil {
				t.Fatal(err)
			}
			return e.Seq
		})
	})
}

// tamperCases runs every kind of tampering on a log of n records, at the
// entry at returns.
func tamperCases(t *testing.T, n int, at func([][]byte) uint64) {
	orig, published := buildLog(t, n)
	if rep, err := Verify([]string{orig}, published); err != nil || rep.Records != uint64(n) || rep.Checkpoints < 6 {
		t.Fatalf("the untouched log: %+v, %v", rep, err)
	}
	k := at(fileLines(t, orig)) // the entry tampered with
	for _, tc := range []struct {
		name    string
		tamper  func([][]byte) [][]byte
		wantSeq uint64
		// published: only the checkpoints the gateway sent find it.
		published bool
		// cuttable: the sink takes it for a torn tail (it is one, byte for byte).
		cuttable bool
	}{
		{name: "alter a byte", wantSeq: k, tamper: func(ls [][]byte) [][]byte {
			i := lineOf(t, ls, k)
			ls[i] = bytes.Replace(ls[i], []byte(`"x`), []byte(`"y`), 1)
			return ls
		}},
		{name: "delete", wantSeq: k, tamper: func(ls [][]byte) [][]byte {
			i := lineOf(t, ls, k)
			return append(ls[:i:i], ls[i+1:]...)
		}},
		{name: "insert", wantSeq: k, tamper: func(ls [][]byte) [][]byte {
			// A forged entry k that links to k-1: the real k no longer fits.
			i := lineOf(t, ls, k)
			forged := bytes.Replace(ls[i], []byte(`"x`), []byte(`"z`), 1)
			return append(ls[:i:i], append([][]byte{forged}, ls[i:]...)...)
		}},
		{name: "reorder", wantSeq: k, tamper: func(ls [][]byte) [][]byte {
			i := lineOf(t, ls, k)
			j := lineOf(t, ls, k+1)
			ls[i], ls[j] = ls[j], ls[i]
			return ls
		}},
		{name: "truncate", wantSeq: 0, published: true, cuttable: true, tamper: func(ls [][]byte) [][]byte {
			// Cut after a commit line, so what is left is a well-formed log.
			i := lineOf(t, ls, k)
			for !isCommitLine(ls[i]) {
				i++
			}
			return ls[:i+1]
		}},
		{name: "rewrite the tail and re-chain it", wantSeq: 0, published: true, tamper: func(ls [][]byte) [][]byte {
			i := lineOf(t, ls, k)
			ls[i] = bytes.Replace(ls[i], []byte(`"x`), []byte(`"y`), 1)
			return rechain(t, ls)
		}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			path := filepath.Join(t.TempDir(), "audit.jsonl")
			writeLines(t, path, tc.tamper(fileLines(t, orig)))
			_, errAlone := Verify([]string{path}, nil)
			_, errPub := Verify([]string{path}, published)
			var d *Damage
			if tc.published {
				if errAlone != nil {
					t.Fatalf("found without the published checkpoints: %v (it should not be possible)", errAlone)
				}
				if !errors.As(errPub, &d) {
					t.Fatalf("not found against the published checkpoints: %v", errPub)
				}
				if tc.name == "truncate" && !strings.Contains(d.Reason, "removed from the end") {
					t.Fatalf("truncation reported as %v", d)
				}
				if tc.name != "truncate" {
					// The first published head the rewrite changed: the
					// checkpoint over k.
					var first uint64
					for _, cp := range published {
						if cp.Seq >= k && (first == 0 || cp.Seq < first) {
							first = cp.Seq
						}
					}
					if d.Seq != first || !strings.Contains(d.Reason, "rewritten") {
						t.Fatalf("reported at %d (%s), want %d", d.Seq, d.Reason, first)
					}
				}
			} else {
				if !errors.As(errAlone, &d) || d.Seq != tc.wantSeq {
					t.Fatalf("Verify = %v, want damage at seq %d", errAlone, tc.wantSeq)
				}
				if d.LastCheckpoint == nil || d.LastCheckpoint.Seq >= k || d.LastGood.Seq != tc.wantSeq-1 {
					t.Fatalf("last good checkpoint %+v, last good %+v", d.LastCheckpoint, d.LastGood)
				}
			}
			if tc.cuttable || tc.published {
				return
			}
			before := sha256.Sum256(mustRead(t, path))
			if s, err := OpenFile(path, testOptions()); err == nil {
				s.Close()
				t.Fatal("a sink opened the damaged log")
			} else if !errors.As(err, &d) || d.Seq != tc.wantSeq {
				t.Fatalf("OpenFile: %v, want damage at %d", err, tc.wantSeq)
			}
			if sha256.Sum256(mustRead(t, path)) != before {
				t.Fatal("opening the damaged log changed it")
			}
			entries, _ := os.ReadDir(filepath.Dir(path))
			if len(entries) != 1 {
				t.Fatalf("opening the damaged log left files: %v", entries)
			}
		})
	}
}

// After damage, set-aside moves the segment whole, and the next start
// begins a segment whose genesis continues the last good entry.
func TestSetAsideContinuesTheLastGoodEntry(t *testing.T) {
	orig, _ := buildLog(t, 60)
	lines := fileLines(t, orig)
	i := lineOf(t, lines, 30)
	lines[i] = bytes.Replace(lines[i], []byte(`"x0`), []byte(`"y0`), 1)
	writeLines(t, orig, lines)
	damaged := mustRead(t, orig)
	_, err := Verify([]string{orig}, nil)
	var d *Damage
	if !errors.As(err, &d) {
		t.Fatal(err)
	}
	to, err := SetAside(orig)
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(mustRead(t, to), damaged) || !strings.HasSuffix(to, ".00000000000000000001.damaged") {
		t.Fatalf("set aside to %s, changed or misnamed", to)
	}
	s, err := OpenFile(orig, testOptions())
	if err != nil {
		t.Fatal(err)
	}
	rc := s.Submit(&Record{ExchangeID: "after"}, CommitNow)
	if err := rc.Wait(context.Background()); err != nil {
		t.Fatal(err)
	}
	s.Close()
	if rc.Position().Seq != d.LastGood.Seq+2 {
		t.Fatalf("first record after set-aside at %d, want %d", rc.Position().Seq, d.LastGood.Seq+2)
	}
	first := fileLines(t, orig)[0]
	e, _ := ParseEntry(first[:len(first)-1])
	if e.Kind != KindGenesis || e.Genesis.Continues != d.LastGood.Hash || e.Seq != d.LastGood.Seq+1 {
		t.Fatalf("new segment begins with %s", first)
	}
	if _, err := Verify([]string{orig}, nil); err != nil {
		t.Fatal(err)
	}
	// The whole log still reports the damage in the set-aside segment.
	files, _ := LogFiles(orig)
	if _, err := Verify(files, nil); !errors.As(err, &d) || d.File != to {
		t.Fatalf("whole log: %v", err)
	}
	if _, err := SetAside(orig); err == nil {
		t.Fatal("set aside a log that verifies")
	}
}

// A file from before the hash chain is refused, read as it is, and set aside.
func TestLegacyFileIsRefusedNotMigrated(t *testing.T) {
	path := filepath.Join(t.TempDir(), "audit.jsonl")
	line, _ := json.Marshal(&Record{ExchangeID: "old", Phase: Outcome})
	os.WriteFile(path, append(line, '\n'), 0o600)
	before := mustRead(t, path)
	if _, err := OpenFile(path, testOptions()); !errors.Is(err, ErrLegacy) {
		t.Fatalf("OpenFile on a legacy file: %v", err)
	}
	if _, err := Verify([]string{path}, nil); !errors.Is(err, ErrLegacy) {
		t.Fatalf("Verify on a legacy file: %v", err)
	}
	if recs, err := ReadFile(path); err != nil || len(recs) != 1 || recs[0].ExchangeID != "old" {
		t.Fatalf("legacy read: %v %v", recs, err)
	}
	if !bytes.Equal(mustRead(t, path), before) {
		t.Fatal("the legacy file changed")
	}
	to, err := SetAside(path)
	if err != nil || !strings.HasSuffix(to, ".legacy") {
		t.Fatalf("set aside: %s %v", to, err)
	}
	s, err := OpenFile(path, testOptions())
	if err != nil {
		t.Fatal(err)
	}
	s.Close()
}

// A proof verifies on its own, and fails for any other entry, checkpoint
// or key.
func TestProveAndVerifyProof(t *testing.T) {
	path, _ := buildLog(t, 100)
	if _, err := Prove([]string{path}, 17); err == nil {
		t.Fatal("a proof for a checkpoint entry, which is no leaf")
	}
	for _, seq := range []uint64{1, 2, 16, 18, 40, 90} {
		p, err := Prove([]string{path}, seq)
		if err != nil {
			t.Fatalf("seq %d: %v", seq, err)
		}
		if err := VerifyProof(p, nil); err != nil {
			t.Fatalf("seq %d: %v", seq, err)
		}
		bad := *p
		bad.Entry = strings.Replace(p.Entry, `"x0`, `"y0`, 1)
		if bad.Entry == p.Entry {
			bad.Entry = strings.Replace(p.Entry, `"gateway":"`, `"gateway":"X`, 1)
		}
		if VerifyProof(&bad, nil) == nil {
			t.Fatalf("seq %d: a changed entry verified", seq)
		}
		cp := *p.Checkpoint
		cp.Root = EntryHash([]byte("other"))
		bad = *p
		bad.Checkpoint = &cp
		if VerifyProof(&bad, nil) == nil {
			t.Fatalf("seq %d: a changed checkpoint verified", seq)
		}
		other := ed25519.NewKeyFromSeed(bytes.Repeat([]byte{9}, ed25519.SeedSize)).Public().(ed25519.PublicKey)
		if VerifyProof(p, other) == nil {
			t.Fatalf("seq %d: verified under another key", seq)
		}
	}
	if _, err := Prove([]string{path}, 1000); err == nil {
		t.Fatal("proof of an entry past the end")
	}
}

func TestReadCheckpointsForms(t *testing.T) {
	for _, in := range []string{`[{"seq":5}]`, `{"checkpoints":[{"seq":5}]}`, `{"items":[{"seq":5}],"next":"x"}`} {
		cps, err := ReadCheckpoints(strings.NewReader(in))
		if err != nil || len(cps) != 1 || cps[0].Seq != 5 {
			t.Fatalf("%s: %v %v", in, cps, err)
		}
	}
	if _, err := ReadCheckpoints(strings.NewReader(`"no"`)); err == nil {
		t.Fatal("accepted a string")
	}
}

// A published checkpoint that matches the log but is not signed with the
// gateway's key is refused: it proves nothing about who published it.
func TestPublishedCheckpointMustBeSigned(t *testing.T) {
	path, published := buildLog(t, 40)
	forged := *published[0]
	forged.Signature = bytes.Repeat([]byte{1}, 64)
	if _, err := Verify([]string{path}, []*Checkpoint{&forged}); err == nil || !strings.Contains(err.Error(), "not signed") {
		t.Fatalf("Verify with a forged published checkpoint: %v", err)
	}
}
