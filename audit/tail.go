package audit

import (
	"bufio"
	"bytes"
	"errors"
	"fmt"
	"io"
	"os"
)

// Tailer reads a log's committed entries from a given seq on, following the
// active segment as it grows and rotates: what ships the log elsewhere.
// Only entries followed by their commit line are returned, so nothing a
// crash could still cut as a torn tail ever leaves the gateway.
type Tailer struct {
	// Limit, if set, returns the last seq that may be read (the sink's
	// Durable): a commit past it is left for a later call.
	Limit  func() uint64
	active string
	file   *os.File
	off    int64  // where the next unread commit begins
	next   uint64 // the seq wanted next
}

// NewTailer starts reading the log whose active segment is active at entry
// from (1 for the whole log).
func NewTailer(active string, from uint64) (*Tailer, error) {
	t := &Tailer{active: active, next: max(from, 1)}
	return t, t.open()
}

// open finds the segment holding t.next: the newest whose first seq is at
// most t.next.
func (t *Tailer) open() error {
	if t.file != nil {
		t.file.Close()
		t.file = nil
	}
	segs, err := listSegments(t.active)
	if err != nil {
		return err
	}
	path := ""
	for _, s := range segs {
		if s.first <= t.next && !s.damaged {
			path = s.path
		}
	}
	if f, err := os.Open(t.active); err == nil {
		first := genesisSeq(f)
		f.Close()
		if first != 0 && first <= t.next {
			path = t.active
		}
	}
	if path == "" {
		if len(segs) == 0 {
			path = t.active
		} else {
			return fmt.Errorf("audit log %s: no segment holds entry %d", t.active, t.next)
		}
	}
	f, err := os.Open(path)
	if err != nil {
		return fmt.Errorf("audit log: %w", err)
	}
	t.file, t.off = f, 0
	return nil
}

// Next returns the raw entries of whole commits from the next wanted seq on,
// about max of them (whole commits only), or none if no commit is newer.
// The lines are the entries' stored bytes, copied.
func (t *Tailer) Next(max int) ([][]byte, error) {
	var out [][]byte
	for range 2 { // the current file, then (once) the one after a rotation
		var pending [][]byte
		limited := false
		r := bufio.NewReaderSize(io.NewSectionReader(t.file, t.off, 1<<62), 256<<10)
		lr := &lineReader{r: r, off: t.off}
		for len(out) < max {
			line, _, err := lr.next()
			if err != nil {
				break // the end, the zeros, or a commit still being written
			}
			if isCommitLine(line) {
				if seq, _, ok := parseCommit(line); ok && t.Limit != nil && seq > t.Limit() {
					limited = true
					break // written, not yet synced
				}
				out = append(out, pending...)
				pending = pending[:0]
				t.off = lr.off
				continue
			}
			e, err := ParseEntry(line)
			if err != nil {
				return out, fmt.Errorf("audit log %s byte %d: %w", t.file.Name(), lr.off, err)
			}
			if e.Seq >= t.next {
				pending = append(pending, bytes.Clone(line))
			}
		}
		if n := len(out); n > 0 {
			last, _ := ParseEntry(out[n-1])
			t.next = last.Seq + 1
			return out, nil
		}
		if limited {
			return nil, nil
		}
		// Nothing new here: if the active segment moved on (rotation
		// renamed this file), continue in the segment after it.
		rotated, err := t.rotated()
		if err != nil || !rotated {
			return nil, err
		}
		if err := t.open(); err != nil {
			return nil, err
		}
	}
	return nil, nil
}

// rotated says whether the file being read is no longer the active segment.
func (t *Tailer) rotated() (bool, error) {
	cur, err := t.file.Stat()
	if err != nil {
		return false, err
	}
	act, err := os.Stat(t.active)
	if errors.Is(err, os.ErrNotExist) {
		return false, nil // between the rename and the new segment
	}
	if err != nil {
		return false, err
	}
	return !os.SameFile(cur, act), nil
}

// Close closes the file being read.
func (t *Tailer) Close() error {
	if t.file == nil {
		return nil
	}
	return t.file.Close()
}
