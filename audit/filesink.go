package audit

import (
	"crypto/ed25519"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"sync"
	"sync/atomic"
	"time"
)

// chunk is how much the file grows at a time, filled with zeros.
const chunk = 4 << 20

// batchBytes caps the records one group commit writes, so the unfinished
// commit a crash can leave, the torn tail, is bounded (see recoverTail).
const batchBytes = 1 << 20

// maxRecord bounds one record's JSON.
const maxRecord = 1 << 20

// FileSink is the gateway's tamper-evident log: records are entries of a
// hash chain, written as lines to the active segment file and synced to disk
// before their receipts settle, with signed checkpoints among them.
//
// Writes are group-committed: records submitted while a sync is under way
// are written and synced together by the next one, so throughput is not
// bounded by one fsync per exchange while each receipt still settles only
// once its own record is on disk. CommitSoon records start no sync of their
// own: they ride the next one, or a timer syncs them after the commit delay.
// The committing goroutine gives each record its seq and prev link, hashes
// it and adds it to the checkpoint interval's Merkle tree, once per batch
// and off the submitters' path; each commit ends with a commit line.
//
// The file grows in 4 MiB chunks, allocated ahead (fallocate; zeros written
// where the filesystem cannot) and synced when they are added, and records
// overwrite the zeros, so a record's sync never has to extend the file.
// Measured on ext4 under the gateways' load, that halved the mean sync time
// against appending. On open, the active segment is verified and only a torn
// tail is cut (see recoverTail); damage anywhere else refuses to open.
//
// A failed write or sync is final: every later record is refused with the
// same error. After a failed fsync the kernel may have dropped the dirty
// pages, so retrying could report success for records that never reached
// the disk; a gateway whose log fails must stop answering instead.
type FileSink struct {
	path string
	opts Options
	file *os.File
	// Only the committing goroutine (or OpenFile) touches these: where the
	// next entry goes, the file's length (zeros from end on), and the chain.
	end, size int64
	seq       uint64
	head      Hash // entry seq's hash; meaningless while seq is 0
	from      uint64
	merkle    MerkleBuilder
	lastCP    time.Time
	segFirst  uint64
	segStart  time.Time
	// commits are the two commits flush fills in turn, kept with their
	// buffers from one flush to the next so a busy sink does not grow new
	// ones (up to batchBytes each) every time.
	commits [2]commit
	// spare is a queue array the committing goroutine has emptied, for
	// takeLocked to hand to Submit when it takes the whole queue.
	spare []pending
	// durable is the seq of the last entry synced to disk, for readers
	// that must not see more (the shipper).
	durable atomic.Uint64

	mu    sync.Mutex
	queue []pending
	// group is the receipt group of the records queued (see receiptGroup).
	group    *receiptGroup
	urgent   bool // the queue holds a CommitNow record
	flushing bool
	timer    *time.Timer // armed while only CommitSoon records wait
	cpTimer  *time.Timer // brings checkpoints when records are few
	cpDue    bool
	closed   bool
	failed   error
	idle     *sync.Cond // signalled when a flush round ends
	// kick wakes the committing goroutine, while a sync runs, to build
	// records a caller waits for into the next commit.
	kick chan struct{}
	// syncCommit makes a commit durable: aio's sync, or syncData, but for
	// a test that must make a sync fail, which no real disk here does on
	// demand.
	syncCommit func(*os.File) error
	// aio syncs commits without holding a P through the sync (Linux; nil
	// elsewhere or without kernel AIO).
	aio *dataSyncer
}

type pending struct {
	rec     []byte  // the record's JSON
	buf     *[]byte // rec's buffer, from recordBufs (nil if not)
	receipt *Receipt
	group   *receiptGroup // receipt's, nil if it has a channel of its own
}

// receiptGroup is the done channel the receipts of records queued together
// share, from the first one queued to the one takeLocked takes the queue
// with, closed once each is settled: one channel made and closed per
// commit, not per record. Every record queued belongs to the open group,
// so a group one commit takes only part of stays open until the commit
// taking the rest is settled (queues outgrow a commit only past a megabyte
// of records).
type receiptGroup struct {
	done chan struct{}
	left atomic.Int32 // receipts not yet settled
}

// settled counts one receipt of g settled, and closes g's channel after
// the last: every receipt's outcome is set before its Wait returns.
func (g *receiptGroup) settled() {
	if g.left.Add(-1) == 0 {
		close(g.done)
	}
}

// recordBufs holds the buffers Submit encodes records into, back from the
// committing goroutine once a record is copied into its commit: a busy
// gateway then encodes every record without allocating.
var recordBufs = sync.Pool{New: func() any { b := make([]byte, 0, 1024); return &b }}

// release hands a record's buffer back to recordBufs, unless it grew too
// large to keep.
func release(buf *[]byte) {
	if buf != nil && cap(*buf) <= 64<<10 {
		*buf = (*buf)[:0]
		recordBufs.Put(buf)
	}
}

// ErrClosed refuses records submitted after Close.
var ErrClosed = errors.New("audit sink closed")

// OpenFile opens (or creates, mode 0600) the log whose active segment is
// path, verifies the active segment and continues its chain: a new log
// begins with a genesis, a new segment continues the newest sealed or
// set-aside one. It refuses a damaged segment or one from before the chain
// and leaves it as it is.
func OpenFile(path string, opts Options) (*FileSink, error) {
	if err := opts.defaults(); err != nil {
		return nil, err
	}
	_, statErr := os.Stat(path)
	f, err := os.OpenFile(path, os.O_RDWR|os.O_CREATE, 0o600)
	if err != nil {
		return nil, fmt.Errorf("open audit log: %w", err)
	}
	s := &FileSink{path: path, opts: opts, file: f, kick: make(chan struct{}, 1), syncCommit: syncData}
	s.idle = sync.NewCond(&s.mu)
	fail := func(err error) (*FileSink, error) {
		f.Close()
		return nil, fmt.Errorf("open audit log %s: %w", path, err)
	}
	if err := lock(f); err != nil {
		return fail(err)
	}
	if statErr != nil {
		if err := syncDir(path); err != nil {
			return fail(err)
		}
	}
	st, err := recoverTail(f, path, opts.Log, true)
	if err != nil {
		return fail(err)
	}
	s.end, s.size = st.end, st.size
	s.durable.Store(st.chain.Last().Seq)
	now := opts.Now()
	if g := st.chain.Genesis(); g != nil {
		if g.Gateway != opts.Gateway {
			return fail(fmt.Errorf("the segment belongs to gateway %q, not %q", g.Gateway, opts.Gateway))
		}
		last := st.chain.Last()
		if s.head, err = ParseHash(last.Hash); err != nil {
			return fail(err)
		}
		s.seq, s.from = last.Seq, st.chain.From()
		s.merkle = st.chain.merkle
		s.segFirst, s.segStart, s.lastCP = st.first, g.Time, g.Time
		if cp := st.chain.LastCheckpoint; cp != nil {
			s.lastCP = cp.Time
		}
		if !ed25519.PublicKey(g.PublicKey).Equal(opts.Key.Public()) {
			// A new checkpoint key (rotated, or the old one lost): the
			// segment is sealed as it is, and the next one's genesis names
			// the new key. Entries after its last checkpoint stay chained
			// but unsigned; the control plane decides whether to enrol
			// the new key.
			opts.Log.Warn("audit log: the checkpoint key changed; sealing the segment and starting one under the new key",
				"file", path, "last_seq", last.Seq, "unsigned_entries", s.merkle.Len())
			if err := s.rotate(); err != nil {
				return fail(err)
			}
		}
	} else {
		// An empty segment: a new log, or the one after the newest
		// sealed or set-aside segment.
		prev, err := continuation(path)
		if err != nil {
			return fail(err)
		}
		s.seq = prev.Seq
		if prev.Seq > 0 {
			if s.head, err = ParseHash(prev.Hash); err != nil {
				return fail(err)
			}
		}
		if err := s.writeGenesis(now); err != nil {
			return fail(err)
		}
	}
	if s.aio = newDataSyncer(); s.aio != nil {
		s.syncCommit = s.aio.sync
	}
	s.cpTimer = time.AfterFunc(opts.CheckpointInterval, s.checkpointTick)
	return s, nil
}

// continuation returns the last good position of the newest sealed or
// set-aside segment, or the zero Position for a new log.
func continuation(active string) (Position, error) {
	segs, err := listSegments(active)
	if err != nil || len(segs) == 0 {
		return Position{}, err
	}
	for i := len(segs) - 1; i >= 0; i-- {
		var c Chain
		c.BeginSegment()
		err := verifyFile(segs[i].path, &c)
		var d *Damage
		switch {
		case err == nil:
		case segs[i].damaged && errors.As(err, &d):
			// A set-aside segment's good part ends where its damage
			// begins; one damaged from its genesis on continues the one
			// before it.
			if d.LastGood.Seq == 0 {
				continue
			}
			return d.LastGood, nil
		default:
			return Position{}, fmt.Errorf("newest sealed segment: %w", err)
		}
		return c.Last(), nil
	}
	return Position{}, nil
}

// Head returns the position of the last entry built into a commit (durable
// once the commit writing it returned). After a failed commit the sink
// refuses every record and Head may name entries that never reached the
// disk; Durable says what may leave the gateway.
func (s *FileSink) Head() Position {
	s.mu.Lock()
	defer s.mu.Unlock()
	for s.flushing {
		s.idle.Wait()
	}
	return Position{Seq: s.seq, Hash: s.headHex()}
}

// headHex is the head's hash as entries write it: "" for a new log.
func (s *FileSink) headHex() string {
	if s.seq == 0 {
		return ""
	}
	return HexHash(s.head)
}

// Submit queues r for a group commit: the next one for CommitNow, the next
// one or the one the commit delay brings for CommitSoon.
func (s *FileSink) Submit(r *Record, c Commit) *Receipt {
	buf := recordBufs.Get().(*[]byte)
	rec, err := appendRecord((*buf)[:0], r)
	*buf = rec
	switch {
	case err != nil:
		release(buf)
		return Refused(fmt.Errorf("audit record %s: %w", r.ExchangeID, err))
	case len(rec) > maxRecord:
		release(buf)
		return Refused(fmt.Errorf("audit record %s: %d bytes, more than %d", r.ExchangeID, len(rec), maxRecord))
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	switch {
	case s.closed:
		release(buf)
		return Refused(ErrClosed)
	case s.failed != nil:
		release(buf)
		return Refused(s.failed)
	}
	g := s.group
	if g == nil {
		g = &receiptGroup{done: make(chan struct{})}
		s.group = g
	}
	g.left.Add(1)
	rc := &Receipt{done: g.done}
	s.queue = append(s.queue, pending{rec: rec, buf: buf, receipt: rc, group: g})
	if c == CommitNow {
		s.urgent = true
		s.startFlushLocked()
		select {
		case s.kick <- struct{}{}:
		default:
		}
	} else if !s.flushing && s.timer == nil {
		s.timer = time.AfterFunc(s.opts.CommitDelay, s.commitDeferred)
	}
	return rc
}

// commitDeferred is the commit delay's timer: it syncs CommitSoon records no
// CommitNow record has carried.
func (s *FileSink) commitDeferred() {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.timer = nil
	if len(s.queue) > 0 {
		s.startFlushLocked()
	}
}

// checkpointTick brings a checkpoint (and a segment's rotation by age) when
// no record does.
func (s *FileSink) checkpointTick() {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.closed || s.failed != nil {
		return
	}
	s.cpDue = true
	s.startFlushLocked()
	s.cpTimer.Reset(s.opts.CheckpointInterval)
}

func (s *FileSink) startFlushLocked() {
	if s.timer != nil {
		s.timer.Stop()
		s.timer = nil
	}
	if !s.flushing {
		s.flushing = true
		go s.flush()
	}
}

// commit is one group commit: its bytes (entries, checkpoints, commit
// line), the records it carries and their positions, the checkpoints among
// them, the seq of its last entry, and whether the segment is sealed after
// it.
type commit struct {
	buf    []byte
	batch  []pending
	pos    []chainPos
	cps    []Checkpoint
	last   uint64
	rotate bool
}

// chainPos is a record's position, its hash not yet in hex: the receipt
// writes it out only if asked.
type chainPos struct {
	seq uint64
	sum Hash
}

func (c *commit) reset() {
	clear(c.batch) // let go of the settled receipts
	c.buf, c.batch, c.pos, c.cps, c.last, c.rotate = c.buf[:0], c.batch[:0], c.pos[:0], c.cps[:0], 0, false
}

// flush writes and syncs queued records in rounds while some record waits:
// a round left with only CommitSoon records hands them to the timer.
//
// While one commit's fdatasync runs, records that callers wait for are
// already chained and encoded into the next commit's buffer, so the disk
// is idle only while that buffer is written; the next commit is written
// only once the sync before it returned, which the torn-tail argument
// (recoverTail) rests on. A commit after which the segment is sealed has
// nothing built behind it: the next segment's genesis comes first.
func (s *FileSink) flush() {
	c, next := &s.commits[0], &s.commits[1]
	var settling sync.WaitGroup
	synced := make(chan error, 1)
	for round := 0; ; round++ {
		s.mu.Lock()
		closing, due := s.closed, s.cpDue
		// After the first round, what is queued arrived during a sync; go
		// on only if someone waits for it (or the sink is closing), or a
		// checkpoint is due, or records were built while it synced.
		if len(c.batch) == 0 && ((len(s.queue) == 0 && !due) || (round > 0 && !s.urgent && !closing && !due) || (s.failed != nil && len(s.queue) == 0)) {
			// Every receipt is settled before the sink is idle.
			s.mu.Unlock()
			settling.Wait()
			s.mu.Lock()
			if len(s.queue) > 0 && (s.urgent || s.closed || s.cpDue) && s.failed == nil {
				s.mu.Unlock()
				continue // came while the receipts were settled
			}
			for _, c := range []*commit{c, next} {
				if cap(c.buf) > 2*batchBytes {
					c.buf = nil // one huge record's: not kept
				}
			}
			s.flushing = false
			if len(s.queue) > 0 && s.timer == nil {
				s.timer = time.AfterFunc(s.opts.CommitDelay, s.commitDeferred)
			}
			s.idle.Broadcast()
			s.mu.Unlock()
			return
		}
		batch := s.takeLocked(batchBytes-len(c.buf), len(c.batch) == 0)
		s.cpDue = false
		err := s.failed
		s.mu.Unlock()

		if err == nil {
			s.build(c, batch)
			s.recycle(batch)
			s.finish(c, due)
			if len(c.buf) > 0 {
				err = s.commitWhileBuilding(c, next, synced)
			}
			if err == nil && c.rotate {
				err = s.rotate()
			}
			if err != nil {
				err = fmt.Errorf("audit log: %w", err)
				s.mu.Lock()
				s.failed = err
				s.mu.Unlock()
			}
		} else {
			c.batch = append(c.batch, batch...)
		}
		if err != nil {
			c.batch = append(c.batch, next.batch...)
			next.reset()
		}
		if err == nil && s.opts.OnCheckpoint != nil {
			for _, cp := range c.cps {
				s.opts.OnCheckpoint(cp)
			}
		}
		if err == nil && len(c.batch) >= settleAside {
			// A large commit's receipts are settled by another goroutine
			// while this one goes on to the next commit: the disk need
			// not wait for a thousand callers to be woken.
			batch, pos := c.batch, c.pos
			c.batch, c.pos = nil, nil
			settling.Go(func() { settle(batch, pos, nil) })
		} else {
			settle(c.batch, c.pos, err)
		}
		c.reset()
		c, next = next, c
	}
}

// settleAside is the size of a commit whose receipts flush settles on
// another goroutine.
const settleAside = 64

// settle settles the receipts of a commit: at their positions, or all
// with err.
func settle(batch []pending, pos []chainPos, err error) {
	for i, p := range batch {
		switch {
		case p.group == nil && err != nil:
			p.receipt.Settle(err)
		case p.group == nil:
			p.receipt.settleChained(pos[i].seq, pos[i].sum)
		default:
			if err != nil {
				p.receipt.err = err
			} else {
				p.receipt.setChained(pos[i].seq, pos[i].sum)
			}
			p.group.settled()
		}
	}
}

// commitWhileBuilding writes c and syncs it, building the next commit
// meanwhile (buildWhileSyncing).
func (s *FileSink) commitWhileBuilding(c, next *commit, synced chan error) error {
	start := time.Now()
	err := s.writeCommit(c.buf)
	if err == nil {
		f, sync := s.file, s.syncCommit
		go func() { synced <- sync(f) }()
		err = s.buildWhileSyncing(next, c.rotate, synced)
	}
	if err != nil {
		// Best effort: do not leave records that were reported lost to be
		// read as written.
		_ = writeZeros(s.file, s.end, int64(len(c.buf)))
		return err
	}
	s.end += int64(len(c.buf))
	s.durable.Store(c.last)
	if s.opts.OnCommit != nil {
		s.opts.OnCommit(len(c.batch), time.Since(start))
	}
	return nil
}

// takeLocked takes queued records, up to room bytes of them, and at least
// one if one is queued and atLeastOne is set (a record over the cap makes a
// commit of its own: the torn-tail bound allows for it).
func (s *FileSink) takeLocked(room int, atLeastOne bool) []pending {
	n, size := 0, 0
	for n < len(s.queue) && ((n == 0 && atLeastOne) || size+len(s.queue[n].rec) <= room) {
		size += len(s.queue[n].rec)
		n++
	}
	if n == 0 {
		return nil
	}
	batch := s.queue[:n:n]
	s.queue = s.queue[n:]
	if len(s.queue) == 0 {
		s.queue, s.spare, s.urgent, s.group = s.spare, nil, false, nil
	}
	return batch
}

// buildWhileSyncing waits for the running sync, and meanwhile chains and
// encodes into next the records callers wait for (none when the segment is
// sealed after this commit, or the next commit is full). It returns the
// sync's error.
//
// It is woken for each record a caller waits for, so under load it builds
// one or two records at a time (22 wakes per commit with
// TestBenchAuditExchanges's 64 callers). Building only once per sync, the
// rest after it, was tried: fewer wakes, but in the gateway bench more
// CPU per request, most of it system time (threads parked and woken, it
// seems, with a core idle through each sync): 322-361 µs against 309-314,
// three runs each, alternated.
func (s *FileSink) buildWhileSyncing(next *commit, sealing bool, synced <-chan error) error {
	for {
		if sealing || len(next.buf) >= batchBytes {
			return <-synced
		}
		select {
		case err := <-synced:
			return err
		case <-s.kick:
		}
		s.mu.Lock()
		var batch []pending
		if len(s.queue) > 0 && (s.urgent || s.closed) && s.failed == nil {
			batch = s.takeLocked(batchBytes-len(next.buf), len(next.batch) == 0)
		}
		s.mu.Unlock()
		s.build(next, batch)
		s.recycle(batch)
	}
}

// recycle keeps a batch takeLocked handed out, once build has copied it,
// as the queue array Submit fills next. Only the committing goroutine
// calls it. A batch cut from the front of the queue has its capacity cut
// too (takeLocked), so appending to it cannot reach the records left
// queued behind it.
func (s *FileSink) recycle(batch []pending) {
	if cap(batch) > cap(s.spare) {
		clear(batch)
		s.spare = batch[:0]
	}
}

// build chains and encodes batch's records into c, with the checkpoints
// that fall due every CheckpointEvery entries.
func (s *FileSink) build(c *commit, batch []pending) {
	var now time.Time
	for _, p := range batch {
		start := len(c.buf)
		c.buf = append(c.buf, `{"seq":`...)
		c.buf = strconv.AppendUint(c.buf, s.seq+1, 10)
		c.buf = append(c.buf, `,"prev":"`...)
		c.buf = hex.AppendEncode(c.buf, s.head[:])
		c.buf = append(c.buf, `","kind":"record","record":`...)
		c.buf = append(c.buf, p.rec...)
		c.buf = append(c.buf, '}')
		s.added(c.buf[start:])
		c.buf = append(c.buf, '\n')
		release(p.buf)
		p.rec, p.buf = nil, nil
		c.pos = append(c.pos, chainPos{seq: s.seq, sum: s.head})
		c.batch = append(c.batch, p)
		if s.merkle.Len() >= uint64(s.opts.CheckpointEvery) {
			if now.IsZero() {
				now = s.opts.Now()
			}
			c.buf, c.cps = s.checkpoint(c.buf, c.cps, now)
		}
	}
}

// finish ends commit c: a checkpoint when the interval's time is up, one is
// forced (forceCP), or the segment is sealed after c (decided here, once,
// so no sealed segment ends with unsigned entries), then the commit line.
func (s *FileSink) finish(c *commit, forceCP bool) {
	now := s.opts.Now()
	c.rotate = s.rotateDueAfter(len(c.buf))
	if s.merkle.Len() > 0 && (forceCP || now.Sub(s.lastCP) >= s.opts.CheckpointInterval || c.rotate) {
		c.buf, c.cps = s.checkpoint(c.buf, c.cps, now)
	}
	if len(c.buf) > 0 {
		c.buf = appendCommitHash(c.buf, s.seq, s.head)
	}
	c.last = s.seq
}

// added advances the chain over an entry's stored bytes.
func (s *FileSink) added(line []byte) {
	s.seq++
	s.head = sha256.Sum256(line)
	s.merkle.Add(leafOf(s.head))
}

// checkpoint appends a signed checkpoint over the open interval.
func (s *FileSink) checkpoint(buf []byte, cps []Checkpoint, now time.Time) ([]byte, []Checkpoint) {
	head := s.headHex()
	cp := Checkpoint{Gateway: s.opts.Gateway, From: s.from, Seq: s.seq, Head: head,
		Root: HexHash(s.merkle.Root()), Time: now.UTC()}
	cp.Sign(s.opts.Key)
	line, err := json.Marshal(Entry{Seq: s.seq + 1, Prev: head, Kind: KindCheckpoint, Checkpoint: &cp})
	if err != nil {
		panic(err) // a struct of strings, numbers and bytes always encodes
	}
	buf = append(append(buf, line...), '\n')
	s.seq++
	s.head = sha256.Sum256(line)
	s.merkle.Reset()
	s.from = s.seq + 1
	s.lastCP = now
	return buf, append(cps, cp)
}

func (s *FileSink) rotateDueAfter(n int) bool {
	return s.seq > s.segFirst && (s.end+int64(n) >= s.opts.SegmentBytes || s.opts.Now().Sub(s.segStart) >= s.opts.SegmentAge)
}

func (s *FileSink) rotateDue() bool { return s.rotateDueAfter(0) }

// writeCommit writes one commit at the end, growing the file first when
// it does not fit; the caller syncs it.
func (s *FileSink) writeCommit(buf []byte) error {
	err := s.checkSize()
	if err == nil {
		err = s.grow(int64(len(buf)))
	}
	if err == nil {
		_, err = s.file.WriteAt(buf, s.end)
	}
	return err
}

// write writes one commit at the end and syncs it.
func (s *FileSink) write(buf []byte) error {
	err := s.writeCommit(buf)
	if err == nil {
		err = syncData(s.file)
	}
	if err != nil {
		// Best effort: do not leave records that were reported lost
		// to be read as written.
		_ = writeZeros(s.file, s.end, int64(len(buf)))
		return err
	}
	s.end += int64(len(buf))
	s.durable.Store(s.seq)
	return nil
}

// Durable returns the seq of the last entry synced to disk. Written but
// unsynced entries could still be lost with the machine, and be replaced
// by others at the same seqs, so nothing past it may leave the gateway.
func (s *FileSink) Durable() uint64 { return s.durable.Load() }

// writeGenesis begins the segment: a genesis continuing the chain at
// s.seq, s.head (a new log if s.seq is 0).
func (s *FileSink) writeGenesis(now time.Time) error {
	head := s.headHex()
	g := &Genesis{Gateway: s.opts.Gateway, PublicKey: s.opts.Key.Public().(ed25519.PublicKey), Continues: head, Time: now.UTC()}
	line, err := json.Marshal(Entry{Seq: s.seq + 1, Prev: head, Kind: KindGenesis, Genesis: g})
	if err != nil {
		return err
	}
	s.merkle.Reset()
	s.from = s.seq + 1
	s.added(line)
	s.segFirst, s.segStart, s.lastCP = s.seq, g.Time, g.Time
	buf := appendCommitHash(append(line, '\n'), s.seq, s.head)
	if err := s.write(buf); err != nil {
		return err
	}
	return syncDir(s.path)
}

// rotate seals the active segment (trimmed of its zeros and renamed by its
// first seq) and begins the next one.
func (s *FileSink) rotate() error {
	if err := s.file.Truncate(s.end); err != nil {
		return err
	}
	if err := s.file.Sync(); err != nil {
		return err
	}
	if err := os.Rename(s.path, sealedName(s.path, s.segFirst)); err != nil {
		return err
	}
	if err := syncDir(s.path); err != nil {
		return err
	}
	f, err := os.OpenFile(s.path, os.O_RDWR|os.O_CREATE|os.O_EXCL, 0o600)
	if err != nil {
		return err
	}
	if err := lock(f); err != nil {
		f.Close()
		return err
	}
	s.file.Close()
	s.file, s.end, s.size = f, 0, 0
	return s.writeGenesis(s.opts.Now())
}

// checkSize fails if the file is shorter than the sink made it: something
// else truncated it (log rotation by copy and truncate is not supported), and
// writing on at the sink's offset would leave a gap the records end at.
func (s *FileSink) checkSize() error {
	info, err := s.file.Stat()
	if err != nil {
		return err
	}
	if info.Size() < s.size {
		return fmt.Errorf("the file was truncated to %d bytes by something else (it had %d)", info.Size(), s.size)
	}
	return nil
}

// grow adds zeroed chunks until n more bytes fit, and syncs the new size:
// one sync every few thousand records.
func (s *FileSink) grow(n int64) error {
	if s.end+n <= s.size {
		return nil
	}
	add := (s.end + n - s.size + chunk - 1) / chunk * chunk
	if err := allocate(s.file, s.size, add); err != nil {
		return err
	}
	if err := s.file.Sync(); err != nil {
		return err
	}
	s.size += add
	return nil
}

// Close checkpoints and syncs what is queued, then closes the file.
func (s *FileSink) Close() error {
	s.mu.Lock()
	if s.closed {
		s.mu.Unlock()
		return ErrClosed
	}
	s.closed, s.cpDue = true, true
	if s.cpTimer != nil {
		s.cpTimer.Stop()
	}
	s.startFlushLocked()
	for s.flushing {
		s.idle.Wait()
	}
	err := s.failed
	s.mu.Unlock()
	if s.aio != nil {
		s.aio.close() // flush has returned: no sync runs
	}
	if cerr := s.file.Close(); err == nil {
		err = cerr
	}
	return err
}

// writeZeros writes n zero bytes at off, a megabyte at a time.
func writeZeros(f *os.File, off, n int64) error {
	for n > 0 {
		k := min(n, int64(len(zeroBlock)))
		if _, err := f.WriteAt(zeroBlock[:k], off); err != nil {
			return err
		}
		off, n = off+k, n-k
	}
	return nil
}

// zeroBlock is what writeZeros writes: never written to, so it costs the
// process no memory of its own and the collector nothing.
var zeroBlock [1 << 20]byte

// syncDir makes a file's creation or renaming durable.
func syncDir(path string) error {
	d, err := os.Open(filepath.Dir(path))
	if err != nil {
		return err
	}
	defer d.Close()
	return d.Sync()
}
