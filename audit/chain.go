package audit

import (
	"bufio"
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"strconv"
)

// A segment file holds entry lines and commit lines. Every group commit ends
// with a commit line, "#commit <seq> <hash>", naming the last entry it made
// durable; a commit line is framing, not an entry, and no hash covers it.
// After a crash, bytes after the last commit line that verifies are what the
// unfinished commit left (a torn tail); a commit line proves the entries
// before it were whole when it was written, so damage before it is damage.
const commitPrefix = "#commit "

// maxLine bounds one stored line; longer is damage, not a record.
const maxLine = 2 << 20

// Position names an entry of the log: its sequence number and hash.
type Position struct {
	Seq  uint64 `json:"seq"`
	Hash string `json:"hash"`
}

// Chain checks entries one at a time, in order, against the hash chain, the
// segments' genesis entries and the signed checkpoints: the one verification
// argument that start-up, `audit verify`, `audit prove` and set-aside share.
// It holds O(log n) state, so a log of any length streams through it.
type Chain struct {
	// Checkpoints published elsewhere (the control plane's copy), by Seq:
	// the log's entry at each Seq must have the checkpoint's Head, and the
	// log must reach it. Optional.
	Checkpoints map[uint64]*Checkpoint
	// Stream says entries arrive without segment boundaries (a shipped
	// copy): a genesis is accepted wherever it links.
	Stream bool

	started bool
	genesis *Genesis
	last    Position
	before  Position // the entry before last
	from    uint64   // first seq of the open checkpoint interval
	merkle  MerkleBuilder
	// LastCheckpoint is the newest in-log checkpoint that verified.
	LastCheckpoint *Checkpoint
	// want is set at a segment boundary: the next entry must be a genesis.
	want    bool
	scratch Entry
}

// Last returns the position of the last entry that verified.
func (c *Chain) Last() Position { return c.last }

// Genesis returns the genesis of the segment being read.
func (c *Chain) Genesis() *Genesis { return c.genesis }

// Pending returns how many entries since the last checkpoint no checkpoint
// covers yet.
func (c *Chain) Pending() uint64 { return c.merkle.Len() }

// From returns the first seq of the open checkpoint interval.
func (c *Chain) From() uint64 { return c.from }

// BeginSegment says the next entry opens a segment (a genesis).
func (c *Chain) BeginSegment() { c.want = true }

// clone copies the chain's state, so a caller can keep the state at the last
// commit while reading on.
func (c *Chain) clone() Chain {
	d := *c
	d.merkle.stack = append([]Hash(nil), c.merkle.stack...)
	return d
}

// Add verifies one entry line (without its newline) following the previous
// one, and returns it decoded.
//
// A record entry in the form the sink writes is not decoded: its seq and
// prev are read from the fixed prefix and the Entry returned has no Record.
// The chain's argument rests on the hash of the stored bytes, which covers
// the record whatever it holds; EachEntry decodes records strictly.
func (c *Chain) Add(line []byte) (*Entry, error) { return c.addHashed(line, sha256.Sum256(line)) }

// addHashed is Add for a line whose SHA-256 is already known.
func (c *Chain) addHashed(line []byte, sum Hash) (*Entry, error) {
	seq, prev, ok := recordHeaderBytes(line)
	return c.addPrepared(line, preparedLine{sum: sum, leaf: leafOf(sum), seq: seq, prev: prev, record: ok})
}

// preparedLine is what can be worked out about an entry line apart from the
// entries before it, so that verification does it on several cores ahead of
// the chain: the line's SHA-256 and RFC 9162 leaf hash, and, for a record
// in the sink's form (record true), its seq and prev as recordHeaderBytes
// reads them.
type preparedLine struct {
	sum, leaf Hash
	seq       uint64
	prev      []byte
	record    bool
}

func prepareLine(line []byte) preparedLine {
	sum := sha256.Sum256(line)
	seq, prev, ok := recordHeaderBytes(line)
	return preparedLine{sum: sum, leaf: leafOf(sum), seq: seq, prev: prev, record: ok}
}

// addPrepared is Add for a prepared line.
func (c *Chain) addPrepared(line []byte, p preparedLine) (*Entry, error) {
	sum := p.sum
	if p.record && c.started && !c.want && p.seq == c.last.Seq+1 && string(p.prev) == c.last.Hash {
		// The common case, a record that links: no allocation but the
		// hash's text. The Entry returned holds only Seq and Kind, and is
		// valid until the next Add.
		seq := p.seq
		c.scratch = Entry{Seq: seq, Kind: KindRecord}
		c.merkle.Add(p.leaf)
		c.before, c.last = c.last, Position{Seq: seq, Hash: hex.EncodeToString(sum[:])}
		if ext := c.Checkpoints[seq]; ext != nil {
			if err := c.checkPublished(ext, seq); err != nil {
				return nil, err
			}
		}
		return &c.scratch, nil
	}
	e, ok := recordHeader(line)
	if !ok {
		var err error
		if e, err = ParseEntry(line); err != nil {
			return nil, err
		}
	}
	if c.want && e.Kind != KindGenesis {
		return nil, fmt.Errorf("a segment begins with a %s entry, not its genesis", e.Kind)
	}
	if c.started {
		if e.Seq <= c.last.Seq {
			return nil, &chainError{seq: e.Seq, msg: fmt.Sprintf("a second entry %d (after entry %d): an entry was inserted or moved", e.Seq, c.last.Seq)}
		}
		if e.Seq != c.last.Seq+1 {
			return nil, fmt.Errorf("seq %d follows seq %d: entries are missing or moved", e.Seq, c.last.Seq)
		}
		if e.Prev != c.last.Hash {
			// Either entry last was changed or this one's link was: the
			// first position in doubt is last.
			return nil, &chainError{seq: c.last.Seq, msg: fmt.Sprintf("entry %d's stored bytes hash to %.12s…, but entry %d links to %.12s…: entry %d was altered (or the link was)",
				c.last.Seq, c.last.Hash, e.Seq, e.Prev, c.last.Seq)}
		}
	} else if e.Kind != KindGenesis {
		return nil, fmt.Errorf("the log begins with a %s entry, not a genesis", e.Kind)
	}
	hash := hex.EncodeToString(sum[:])
	leaf := p.leaf
	switch e.Kind {
	case KindGenesis:
		if !c.want && c.started && !c.Stream {
			return nil, errors.New("a genesis inside a segment")
		}
		if c.genesis != nil && e.Genesis.Gateway != c.genesis.Gateway {
			return nil, fmt.Errorf("genesis names gateway %q, the log before it %q", e.Genesis.Gateway, c.genesis.Gateway)
		}
		c.genesis = e.Genesis
		c.merkle.Reset()
		c.from = e.Seq
		c.merkle.Add(leaf)
	case KindRecord:
		c.merkle.Add(leaf)
	case KindCheckpoint:
		cp := e.Checkpoint
		switch {
		case cp.Gateway != c.genesis.Gateway:
			return nil, fmt.Errorf("checkpoint names gateway %q, the genesis %q", cp.Gateway, c.genesis.Gateway)
		case cp.From != c.from || cp.Seq != e.Seq-1:
			return nil, fmt.Errorf("checkpoint covers %d..%d, want %d..%d", cp.From, cp.Seq, c.from, e.Seq-1)
		case cp.Head != c.last.Hash:
			return nil, fmt.Errorf("checkpoint head %.12s… is not entry %d's hash", cp.Head, cp.Seq)
		case cp.Root != HexHash(c.merkle.Root()):
			return nil, fmt.Errorf("checkpoint root does not match entries %d..%d", cp.From, cp.Seq)
		}
		if err := cp.Verify(c.genesis.PublicKey); err != nil {
			return nil, err
		}
		c.LastCheckpoint = cp
		c.merkle.Reset()
		c.from = e.Seq + 1
	}
	c.started, c.want = true, false
	c.before, c.last = c.last, Position{Seq: e.Seq, Hash: hash}
	if ext := c.Checkpoints[e.Seq]; ext != nil {
		if err := c.checkPublished(ext, e.Seq); err != nil {
			return nil, err
		}
	}
	return e, nil
}

// checkPublished compares entry seq, just added, with a checkpoint the
// gateway published. On a mismatch the chain steps back, so the entry is
// not counted as good.
func (c *Chain) checkPublished(ext *Checkpoint, seq uint64) error {
	if ext.Head == c.last.Hash {
		// The same head: the entries are the ones the checkpoint names.
		// Its signature says the gateway (the key its genesis names)
		// published it, not whoever handed it over.
		if err := ext.Verify(c.genesis.PublicKey); err != nil {
			c.last = c.before
			return fmt.Errorf("a published checkpoint over %d..%d is not signed with the log's key: %w", ext.From, ext.Seq, err)
		}
		return nil
	}
	hash := c.last.Hash
	c.last = c.before
	return fmt.Errorf("entry %d differs from the one checkpoint %d..%d signed (head %.12s…, the log has %.12s…): rewritten after the checkpoint left the gateway",
		seq, ext.From, ext.Seq, ext.Head, hash)
}

// Commit verifies a commit line against the last entry.
func (c *Chain) Commit(line []byte) error {
	seq, hash, ok := parseCommit(line)
	if !ok {
		return errors.New("malformed commit line")
	}
	if seq == c.last.Seq && hash != c.last.Hash {
		return &chainError{seq: seq, msg: fmt.Sprintf("the commit line names entry %d's hash as %.12s…, its bytes hash to %.12s…: entry %d was altered (or the commit line was)", seq, hash, c.last.Hash, seq)}
	}
	if seq != c.last.Seq {
		return fmt.Errorf("commit line names entry %d %.12s…, the last entry is %d %.12s…", seq, hash, c.last.Seq, c.last.Hash)
	}
	return nil
}

// chainError names the first position a broken link puts in doubt, when it
// is not the entry being added.
type chainError struct {
	seq uint64
	msg string
}

func (e *chainError) Error() string { return e.msg }

// damage describes err at off in path: the first bad position, and the last
// good entry and checkpoint before it.
func (c *Chain) damage(path string, off int64, err error) *Damage {
	d := &Damage{File: path, Offset: off, Seq: c.last.Seq + 1, Reason: err.Error(), LastGood: c.last, LastCheckpoint: c.LastCheckpoint}
	var ce *chainError
	if errors.As(err, &ce) && ce.seq <= c.last.Seq {
		d.Seq, d.LastGood = ce.seq, c.before
		if d.LastCheckpoint != nil && d.LastCheckpoint.Seq+1 >= ce.seq {
			d.LastCheckpoint = nil // the checkpoint entry itself is in doubt
		}
	}
	return d
}

// Finish checks the end of the log against the published checkpoints: a
// log that stops before one of them was truncated.
func (c *Chain) Finish() error {
	for _, cp := range c.Checkpoints {
		if cp.Seq > c.last.Seq {
			return fmt.Errorf("the log ends at entry %d, but a checkpoint published by the gateway covers entries up to %d: entries were removed from the end",
				c.last.Seq, cp.Seq)
		}
	}
	return nil
}

func appendCommit(buf []byte, p Position) []byte {
	buf = append(buf, commitPrefix...)
	buf = strconv.AppendUint(buf, p.Seq, 10)
	buf = append(buf, ' ')
	buf = append(buf, p.Hash...)
	return append(buf, '\n')
}

// appendCommitHash is appendCommit for a hash not yet in hex.
func appendCommitHash(buf []byte, seq uint64, h Hash) []byte {
	buf = append(buf, commitPrefix...)
	buf = strconv.AppendUint(buf, seq, 10)
	buf = append(buf, ' ')
	buf = hex.AppendEncode(buf, h[:])
	return append(buf, '\n')
}

func parseCommit(line []byte) (uint64, string, bool) {
	rest, ok := bytes.CutPrefix(line, []byte(commitPrefix))
	if !ok {
		return 0, "", false
	}
	num, hash, ok := bytes.Cut(rest, []byte(" "))
	if !ok || !isHash(string(hash)) {
		return 0, "", false
	}
	seq, err := strconv.ParseUint(string(num), 10, 64)
	if err != nil || seq == 0 || strconv.FormatUint(seq, 10) != string(num) {
		return 0, "", false
	}
	return seq, string(hash), true
}

// lineReader reads a segment's lines, ending at the first NUL byte (the
// preallocated zeros) or the end of the file.
type lineReader struct {
	r    *bufio.Reader
	off  int64 // offset of the next line
	long []byte
}

func newLineReader(r io.Reader) *lineReader {
	return &lineReader{r: bufio.NewReaderSize(r, 256<<10)}
}

// next returns the next whole line without its newline and the offset it
// starts at. At the end it returns io.EOF; a line cut short by the end or by
// a NUL byte returns errTorn with what was read.
func (l *lineReader) next() ([]byte, int64, error) {
	start := l.off
	line, err := l.r.ReadSlice('\n')
	if errors.Is(err, bufio.ErrBufferFull) && bytes.IndexByte(line, 0) < 0 {
		l.long = append(l.long[:0], line...)
		for errors.Is(err, bufio.ErrBufferFull) && len(l.long) <= maxLine && bytes.IndexByte(line, 0) < 0 {
			line, err = l.r.ReadSlice('\n')
			l.long = append(l.long, line...)
		}
		line = l.long
		if len(line) > maxLine {
			return line, start, errTooLong
		}
	}
	l.off += int64(len(line))
	if i := bytes.IndexByte(line, 0); i >= 0 {
		if i == 0 {
			return nil, start, io.EOF
		}
		return line[:i], start, errTorn
	}
	if err != nil {
		if errors.Is(err, io.EOF) && len(line) > 0 {
			return line, start, errTorn
		}
		return nil, start, err
	}
	return line[:len(line)-1], start, nil
}

var (
	errTorn    = errors.New("a line cut short")
	errTooLong = errors.New("a line longer than any entry")
)

// isCommitLine says whether a line is framing rather than an entry.
func isCommitLine(line []byte) bool { return len(line) > 0 && line[0] == '#' }

// recordPrefix etc. are the fixed parts of a record entry as the sink
// writes it: {"seq":N,"prev":"<hash>","kind":"record","record":{...}}.
const (
	recordSeq  = `{"seq":`
	recordPrev = `,"prev":"`
	recordKind = `","kind":"record","record":{`
)

// recordHeader reads a record entry's seq and prev without decoding it,
// if the line has exactly the sink's form; ok is false otherwise (and the
// caller decodes it strictly).
func recordHeader(line []byte) (e *Entry, ok bool) {
	seq, prev, ok := recordHeaderBytes(line)
	if !ok {
		return nil, false
	}
	return &Entry{Seq: seq, Prev: string(prev), Kind: KindRecord}, true
}

// recordHeaderBytes is recordHeader without allocating: prev is a slice of
// line.
func recordHeaderBytes(line []byte) (seq uint64, prev []byte, ok bool) {
	rest, ok := bytes.CutPrefix(line, []byte(recordSeq))
	if !ok {
		return 0, nil, false
	}
	i := 0
	for i < len(rest) && i < 20 && rest[i] >= '0' && rest[i] <= '9' {
		i++
	}
	if i == 0 || rest[0] == '0' {
		return 0, nil, false
	}
	seq, err := strconv.ParseUint(string(rest[:i]), 10, 64)
	if err != nil {
		return 0, nil, false
	}
	rest, ok = bytes.CutPrefix(rest[i:], []byte(recordPrev))
	if !ok || len(rest) < 64 || !isHashBytes(rest[:64]) {
		return 0, nil, false
	}
	prev = rest[:64]
	rest, ok = bytes.CutPrefix(rest[64:], []byte(recordKind))
	if !ok || !bytes.HasSuffix(rest, []byte("}}")) {
		return 0, nil, false
	}
	return seq, prev, true
}

// isHashBytes says whether b is a hash's text: 64 lowercase hex digits.
func isHashBytes(b []byte) bool {
	if len(b) != 64 {
		return false
	}
	var bad byte
	for _, c := range b {
		bad |= notLowerHex[c]
	}
	return bad == 0
}

// notLowerHex is 1 for every byte that is not a lowercase hex digit: a
// table, since verification asks it 64 times for every record.
var notLowerHex = func() (t [256]byte) {
	for i := range t {
		if (i < '0' || i > '9') && (i < 'a' || i > 'f') {
			t[i] = 1
		}
	}
	return t
}()

// IsRecordLine says, without decoding it, whether line is a record entry
// in the form the sink writes: what a reader that wants only the other
// kinds (a shipper looking for checkpoints) skips cheaply.
func IsRecordLine(line []byte) bool {
	_, ok := recordHeader(line)
	return ok
}
