package audit

import (
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"runtime"
)

// Report sums up a log that verified.
type Report struct {
	Files       int
	Entries     uint64
	Records     uint64
	Checkpoints uint64
	// Last is the last entry; LastCheckpoint the last in-log checkpoint.
	Last           Position
	LastCheckpoint *Checkpoint
	// Gateway and Key are what the last genesis names.
	Gateway string
	Key     []byte
	// Uncovered counts entries after the last checkpoint: chained, but not
	// yet under a signature.
	Uncovered uint64
}

// Verify streams the given segment files, in order, through one chain and
// returns a *Damage naming the first bad position if anything was altered,
// removed, inserted, reordered or cut. published are checkpoints the gateway
// sent the control plane: they catch a log rewritten and re-chained after
// them, and one cut short of them.
func Verify(files []string, published []*Checkpoint) (*Report, error) {
	var c Chain
	if len(published) > 0 {
		c.Checkpoints = map[uint64]*Checkpoint{}
		for _, cp := range published {
			c.Checkpoints[cp.Seq] = cp
		}
	}
	rep := &Report{}
	for _, path := range files {
		c.BeginSegment()
		if err := walkFile(path, &c, rep, nil); err != nil {
			return rep, err
		}
		rep.Files++
	}
	if err := c.Finish(); err != nil {
		return rep, &Damage{File: files[len(files)-1], Seq: c.Last().Seq + 1, Offset: -1, Reason: err.Error(),
			LastGood: c.Last(), LastCheckpoint: c.LastCheckpoint}
	}
	rep.Last, rep.LastCheckpoint, rep.Uncovered = c.Last(), c.LastCheckpoint, c.Pending()
	if g := c.Genesis(); g != nil {
		rep.Gateway, rep.Key = g.Gateway, g.PublicKey
	}
	return rep, nil
}

func verifyFile(path string, c *Chain) error { return walkFile(path, c, &Report{}, nil) }

// walkFile verifies one segment file through c, counting into rep and
// calling fn (if not nil) with each entry that verified.
func walkFile(path string, c *Chain, rep *Report, fn func(e *Entry, line []byte) error) error {
	f, err := os.Open(path)
	if err != nil {
		return fmt.Errorf("audit log: %w", err)
	}
	defer f.Close()
	chunks, free := make(chan *lineChunk, 2*hashWorkers()), make(chan *lineChunk, 4*hashWorkers())
	stop := make(chan struct{})
	defer close(stop)
	go readPrepared(f, chunks, free, stop)
	committed, end := true, int64(0)
	for ch := range chunks {
		<-ch.ready
		for i := range ch.lines {
			hl := &ch.lines[i]
			line, off := ch.line(i), hl.off
			if errors.Is(hl.err, io.EOF) {
				break
			}
			if hl.err != nil {
				return c.damage(path, off, hl.err)
			}
			end = off + int64(len(line)) + 1
			if off == 0 && isLegacyLine(line) {
				return fmt.Errorf("audit log %s: %w", path, ErrLegacy)
			}
			if isCommitLine(line) {
				if err := c.Commit(line); err != nil {
					return c.damage(path, off, err)
				}
				committed = true
				continue
			}
			e, err := c.addPrepared(line, hl.prep)
			if err != nil {
				return c.damage(path, off, err)
			}
			committed = false
			if fn != nil {
				if err := fn(e, line); err != nil {
					return err
				}
			}
			rep.Entries++
			switch e.Kind {
			case KindRecord:
				rep.Records++
			case KindCheckpoint:
				rep.Checkpoints++
			}
		}
		select { // reuse its memory for a later chunk
		case free <- ch:
		default:
		}
	}
	if !committed {
		return &Damage{File: path, Offset: end, Seq: c.Last().Seq, Reason: "entries after the last commit line: an unfinished commit (the gateway cuts it at start-up) or the end of the file was removed",
			LastGood: c.Last(), LastCheckpoint: c.LastCheckpoint}
	}
	return nil
}

// lineChunk is a run of lines read ahead of the chain and prepared
// (hashed, their headers read) by one of several workers, so SHA-256, the
// bulk of verification, runs on every core while the chain checks the
// links in order on one. ready closes once the chunk is prepared.
type lineChunk struct {
	buf   []byte
	lines []hashedLine
	ready chan struct{}
}

type hashedLine struct {
	start, end int
	off        int64
	prep       preparedLine
	err        error // the line reader's, on the chunk's last line
}

func (ch *lineChunk) line(i int) []byte { return ch.buf[ch.lines[i].start:ch.lines[i].end] }

// chunkLines is how many lines a chunk holds.
const chunkLines = 1024

// hashWorkers is how many goroutines prepare chunks.
func hashWorkers() int { return max(1, min(runtime.GOMAXPROCS(0), 8)) }

// readPrepared reads r's lines into chunks (reusing those sent back on
// free) and sends them, in order, to out, while workers prepare them, until
// the end or an error (carried by the last line), or until stop closes.
func readPrepared(r io.Reader, out chan<- *lineChunk, free <-chan *lineChunk, stop <-chan struct{}) {
	defer close(out)
	work := make(chan *lineChunk, hashWorkers())
	defer close(work)
	for range hashWorkers() {
		go func() {
			for ch := range work {
				for i := range ch.lines {
					if hl := &ch.lines[i]; hl.err == nil {
						hl.prep = prepareLine(ch.line(i))
					}
				}
				close(ch.ready)
			}
		}()
	}
	lr := newLineReader(r)
	for {
		var ch *lineChunk
		select {
		case ch = <-free:
			ch.buf, ch.lines = ch.buf[:0], ch.lines[:0]
		default:
			ch = &lineChunk{buf: make([]byte, 0, 1<<20), lines: make([]hashedLine, 0, chunkLines)}
		}
		ch.ready = make(chan struct{})
		var err error
		for len(ch.lines) < chunkLines && err == nil {
			var line []byte
			var off int64
			line, off, err = lr.next()
			start := len(ch.buf)
			ch.buf = append(ch.buf, line...)
			ch.lines = append(ch.lines, hashedLine{start: start, end: len(ch.buf), off: off, err: err})
		}
		// Workers take chunks in the order they are sent out, and the
		// chain waits for each to be ready in that order.
		select {
		case out <- ch:
		case <-stop:
			return
		}
		work <- ch
		if err != nil {
			return
		}
	}
}

// ReadCheckpoints reads published checkpoints: a JSON array of them, or an
// object holding the array as "checkpoints" or "items" (a page of the
// control plane's answer).
func ReadCheckpoints(r io.Reader) ([]*Checkpoint, error) {
	bs, err := io.ReadAll(r)
	if err != nil {
		return nil, fmt.Errorf("checkpoints: %w", err)
	}
	var list []*Checkpoint
	if err := json.Unmarshal(bs, &list); err == nil {
		return list, nil
	}
	var page struct {
		Checkpoints []*Checkpoint `json:"checkpoints"`
		Items       []*Checkpoint `json:"items"`
	}
	if err := json.Unmarshal(bs, &page); err != nil {
		return nil, fmt.Errorf("checkpoints: want a JSON array of checkpoints: %w", err)
	}
	return append(page.Checkpoints, page.Items...), nil
}
