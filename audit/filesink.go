package audit

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"sync"
	"time"
)

// DefaultCommitDelay bounds how long a CommitSoon record may wait for a
// commit when no CommitNow record brings one.
const DefaultCommitDelay = 5 * time.Millisecond

// chunk is how much the file grows at a time, filled with zeros.
const chunk = 4 << 20

// FileSink appends records as JSON lines to a file and syncs them to disk. It
// is the interim sink until the tamper-evident log replaces it.
//
// Writes are group-committed: records submitted while a sync is under way
// are written and synced together by the next one, so throughput is not
// bounded by one fsync per exchange while each receipt still settles only
// once its own record is on disk. CommitSoon records start no sync of their
// own: they ride the next one, or a timer syncs them after the commit delay.
// Under load that halves the syncs, so a waiting record rarely finds the
// disk busy with one it does not need.
//
// The file grows in chunks of zeros (allocated, not written, where the
// filesystem can), synced when they are added, and records overwrite the
// zeros: a record's sync then flushes only its data
// (fdatasync), not the file's size and block map through the filesystem's
// journal, which costs more and makes the syncs of every file on the disk
// wait for each other. Records end at the first NUL byte (ReadFile); on
// open, a torn record after the last whole line (written, never
// acknowledged) is zeroed.
//
// A failed write or sync is final: every later record is refused with the
// same error. After a failed fsync the kernel may have dropped the dirty
// pages, so retrying could report success for records that never reached
// the disk; a gateway whose log fails must stop answering instead.
type FileSink struct {
	file  *os.File
	delay time.Duration
	// end is where the next record goes; size is the file's length, zeros
	// from end on. Only the flushing goroutine (or OpenFile) touches them.
	end, size int64

	mu       sync.Mutex
	queue    []pending
	urgent   bool // the queue holds a CommitNow record
	flushing bool
	timer    *time.Timer // armed while only CommitSoon records wait
	closed   bool
	failed   error
	idle     *sync.Cond // signalled when a flush round ends
}

type pending struct {
	line    []byte
	receipt *Receipt
}

// ErrClosed refuses records submitted after Close.
var ErrClosed = errors.New("audit sink closed")

// OpenFile opens (or creates, mode 0600) an audit file and finds where its
// records end.
func OpenFile(path string) (*FileSink, error) {
	f, err := os.OpenFile(path, os.O_RDWR|os.O_CREATE, 0o600)
	if err != nil {
		return nil, fmt.Errorf("open audit file: %w", err)
	}
	s := &FileSink{file: f, delay: DefaultCommitDelay}
	s.idle = sync.NewCond(&s.mu)
	if err := s.recover(); err != nil {
		f.Close()
		return nil, fmt.Errorf("open audit file %s: %w", path, err)
	}
	return s, nil
}

// recover finds the end of the last whole record and zeroes anything after
// it: the tail of a record whose write a crash cut short.
func (s *FileSink) recover() error {
	info, err := s.file.Stat()
	if err != nil {
		return err
	}
	s.size = info.Size()
	// Scan back over the zeros to the last byte written.
	last := s.size
	buf := make([]byte, 64<<10)
	for last > 0 {
		n := min(int64(len(buf)), last)
		if _, err := s.file.ReadAt(buf[:n], last-n); err != nil {
			return err
		}
		i := int64(len(bytes.TrimRight(buf[:n], "\x00")))
		if i > 0 {
			last = last - n + i
			break
		}
		last -= n
	}
	// The records end after the last newline at or before it.
	s.end = last
	for s.end > 0 {
		n := min(int64(len(buf)), s.end)
		if _, err := s.file.ReadAt(buf[:n], s.end-n); err != nil {
			return err
		}
		if i := bytes.LastIndexByte(buf[:n], '\n'); i >= 0 {
			s.end = s.end - n + int64(i) + 1
			break
		}
		s.end -= n
	}
	if torn := last - s.end; torn > 0 {
		if _, err := s.file.WriteAt(make([]byte, torn), s.end); err != nil {
			return err
		}
		return s.file.Sync()
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

// Submit queues r for a group commit: the next one for CommitNow, the next
// one or the one the commit delay brings for CommitSoon.
func (s *FileSink) Submit(r *Record, c Commit) *Receipt {
	line, err := json.Marshal(r)
	if err != nil {
		return Refused(fmt.Errorf("audit record %s: %w", r.ExchangeID, err))
	}
	line = append(line, '\n')
	s.mu.Lock()
	defer s.mu.Unlock()
	switch {
	case s.closed:
		return Refused(ErrClosed)
	case s.failed != nil:
		return Refused(s.failed)
	}
	rc := NewReceipt()
	s.queue = append(s.queue, pending{line: line, receipt: rc})
	if c == CommitNow {
		s.urgent = true
		s.startFlushLocked()
	} else if !s.flushing && s.timer == nil {
		s.timer = time.AfterFunc(s.delay, s.commitDeferred)
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

// flush writes and syncs queued records in rounds while some record waits:
// a round left with only CommitSoon records hands them to the timer.
func (s *FileSink) flush() {
	var buf []byte
	for round := 0; ; round++ {
		s.mu.Lock()
		batch := s.queue
		// After the first round, what is queued arrived during a sync; go
		// on only if someone waits for it (or the sink is closing).
		if len(batch) == 0 || (round > 0 && !s.urgent && !s.closed) {
			s.flushing = false
			if len(batch) > 0 && s.timer == nil {
				s.timer = time.AfterFunc(s.delay, s.commitDeferred)
			}
			s.idle.Broadcast()
			s.mu.Unlock()
			return
		}
		s.queue, s.urgent = nil, false
		err := s.failed
		s.mu.Unlock()
		if err == nil {
			buf = buf[:0]
			for _, p := range batch {
				buf = append(buf, p.line...)
			}
			if err = s.grow(int64(len(buf))); err == nil {
				if _, err = s.file.WriteAt(buf, s.end); err == nil {
					err = syncData(s.file)
				}
			}
			if err == nil {
				s.end += int64(len(buf))
			}
			if err != nil {
				err = fmt.Errorf("audit log: %w", err)
				s.mu.Lock()
				s.failed = err
				s.mu.Unlock()
			}
		}
		for _, p := range batch {
			p.receipt.Settle(err)
		}
	}
}

// Close syncs what is queued, then closes the file.
func (s *FileSink) Close() error {
	s.mu.Lock()
	s.closed = true
	if len(s.queue) > 0 {
		s.startFlushLocked()
	}
	for s.flushing {
		s.idle.Wait()
	}
	s.mu.Unlock()
	return s.file.Close()
}

// ReadFile returns the records of an audit file, in order.
func ReadFile(path string) ([]Record, error) {
	bs, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("read audit file: %w", err)
	}
	if i := bytes.IndexByte(bs, 0); i >= 0 {
		bs = bs[:i]
	}
	var recs []Record
	for n, line := range bytes.Split(bytes.TrimSuffix(bs, []byte("\n")), []byte("\n")) {
		if len(line) == 0 {
			continue
		}
		var r Record
		if err := json.Unmarshal(line, &r); err != nil {
			return nil, fmt.Errorf("audit file %s line %d: %w", path, n+1, err)
		}
		recs = append(recs, r)
	}
	return recs, nil
}

// writeZeros writes n zero bytes at off, a megabyte at a time.
func writeZeros(f *os.File, off, n int64) error {
	zeros := make([]byte, min(n, 1<<20))
	for n > 0 {
		k := min(n, int64(len(zeros)))
		if _, err := f.WriteAt(zeros[:k], off); err != nil {
			return err
		}
		off, n = off+k, n-k
	}
	return nil
}
