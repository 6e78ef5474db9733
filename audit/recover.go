package audit

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"time"
)

// maxTornBytes bounds a torn tail: one commit's records (batchBytes), the
// checkpoints among them and a last record that overran the cap.
const maxTornBytes = 2*batchBytes + maxRecord + 64<<10

// tailState is the active segment as recovery leaves it.
type tailState struct {
	chain     Chain // at the last verified commit
	end, size int64
	first     uint64 // the segment's first seq
}

// recoverTail verifies the active segment and cuts only a torn tail.
//
// The argument: a group commit writes its entries and its commit line with
// one write, and the next commit is written only after that one's sync
// returned. So of everything in the file, only the bytes after the last
// complete commit can be unsynced, and no receipt settled on them. A crash
// can leave them as any subset of their pages (the rest still the
// preallocated zeros), cut anywhere. What follows the last commit that
// verifies is cut only if it looks like that: no more than one commit's
// bytes, no commit line with bytes after it (a finished commit, so what
// follows was written later), and either a zero hole, a last line cut short,
// or a last line that is a whole entry (the commit line never written).
// Anything else (a changed byte in a commit that finished, a damaged commit
// line, a removed or inserted line) is damage: recovery refuses with the
// position and the last good checkpoint, and writes nothing.
//
// What it cuts it first copies to "<file>.torn-<offset>", so even a torn
// tail is kept as evidence.
//
// With cut false it only reads: it reports damage, and a torn tail it leaves.
func recoverTail(f *os.File, path string, log *slog.Logger, cut bool) (*tailState, error) {
	info, err := f.Stat()
	if err != nil {
		return nil, err
	}
	size := info.Size()
	var c Chain
	c.BeginSegment()
	good, goodEnd, first := c.clone(), int64(0), uint64(0)
	failOff, reason := int64(-1), "an unfinished commit"
	var failed *Damage
	lr := newLineReader(io.NewSectionReader(f, 0, size))
	for {
		line, off, err := lr.next()
		if errors.Is(err, io.EOF) {
			break
		}
		if err == nil && off == 0 && isLegacyLine(line) {
			return nil, ErrLegacy
		}
		if err == nil {
			if isCommitLine(line) {
				err = c.Commit(line)
				if err == nil {
					good, goodEnd = c.clone(), lr.off
					continue
				}
			} else {
				var e *Entry
				if e, err = c.Add(line); err == nil && e.Kind == KindGenesis {
					first = e.Seq
				}
			}
		}
		if err != nil {
			failOff, reason = off, err.Error()
			failed = c.damage(path, off, err)
			break
		}
	}
	last, err := lastNonZero(f, goodEnd, size)
	if err != nil {
		return nil, err
	}
	st := &tailState{chain: good, end: goodEnd, size: size, first: first}
	if last <= goodEnd {
		return st, nil
	}
	if failOff < 0 {
		failOff = goodEnd
	}
	damage := func(why string) error {
		d := &Damage{File: path, Offset: failOff, Seq: good.Last().Seq + 1, Reason: reason + why,
			LastGood: good.Last(), LastCheckpoint: good.LastCheckpoint}
		if failed != nil {
			d.Seq, d.LastGood, d.LastCheckpoint = failed.Seq, failed.LastGood, failed.LastCheckpoint
			d.Reason = failed.Reason + why
		}
		return d
	}
	if last-goodEnd > maxTornBytes {
		return nil, damage(fmt.Sprintf(", followed by %d bytes, more than one commit writes", last-goodEnd))
	}
	tail := make([]byte, last-goodEnd)
	if _, err := f.ReadAt(tail, goodEnd); err != nil {
		return nil, err
	}
	if why := notTorn(tail); why != "" {
		return nil, damage(why)
	}
	if !cut {
		return st, nil
	}
	aside := fmt.Sprintf("%s.torn-%d", path, goodEnd)
	if _, err := os.Stat(aside); err == nil {
		aside = fmt.Sprintf("%s.torn-%d-%d", path, goodEnd, time.Now().UnixNano())
	}
	if err := os.WriteFile(aside, tail, 0o600); err != nil {
		return nil, fmt.Errorf("keep the torn tail: %w", err)
	}
	if err := syncFile(aside); err != nil {
		return nil, err
	}
	if err := syncDir(aside); err != nil {
		return nil, err
	}
	if err := writeZeros(f, goodEnd, last-goodEnd); err != nil {
		return nil, err
	}
	if err := f.Sync(); err != nil {
		return nil, err
	}
	log.Warn("audit log: cut the torn tail of an unfinished commit (kept aside)",
		"file", path, "offset", goodEnd, "bytes", last-goodEnd, "kept", aside, "last_seq", good.Last().Seq)
	return st, nil
}

// notTorn returns why bytes after the last good commit cannot be what an
// unfinished commit left, or "" if they can.
func notTorn(tail []byte) string {
	for i := 0; ; {
		j := bytes.Index(tail[i:], []byte(commitPrefix))
		if j < 0 {
			break
		}
		i += j + 1
		if k := bytes.IndexByte(tail[i:], '\n'); k >= 0 && len(bytes.Trim(tail[i+k+1:], "\x00")) > 0 {
			return "; a commit line follows it, so its commit had finished"
		}
	}
	if bytes.IndexByte(tail, 0) >= 0 || tail[len(tail)-1] != '\n' {
		return ""
	}
	lastLine := tail[:len(tail)-1]
	if i := bytes.LastIndexByte(lastLine, '\n'); i >= 0 {
		lastLine = lastLine[i+1:]
	}
	if _, err := ParseEntry(lastLine); err == nil {
		return ""
	}
	return "; the commit's bytes are all there, so it is not a torn write"
}

// lastNonZero returns the offset just after the last non-zero byte at or
// after from.
func lastNonZero(f *os.File, from, size int64) (int64, error) {
	last := size
	buf := make([]byte, 64<<10)
	for last > from {
		n := min(int64(len(buf)), last-from)
		if _, err := f.ReadAt(buf[:n], last-n); err != nil {
			return 0, err
		}
		if i := int64(len(bytes.TrimRight(buf[:n], "\x00"))); i > 0 {
			return last - n + i, nil
		}
		last -= n
	}
	return from, nil
}

func syncFile(path string) error {
	f, err := os.Open(path)
	if err != nil {
		return err
	}
	defer f.Close()
	return f.Sync()
}
