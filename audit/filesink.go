package audit

import (
	"bufio"
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
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
// The file grows in 4 MiB chunks, allocated ahead (fallocate; zeros written
// where the filesystem cannot) and synced when they are added, and records
// overwrite the zeros, so a record's sync never has to extend the file.
// Measured on ext4 under the gateways' load, that halved the mean sync time
// against appending. Records end at the first NUL byte (ReadFile); on open
// the log is read forward and ends at the first byte that is not part of a
// whole record, and anything after it is zeroed (see recover). The sink
// holds an exclusive lock on the file; rotate logs by renaming, never by
// copying and truncating.
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
	if err := lock(f); err != nil {
		f.Close()
		return nil, fmt.Errorf("open audit file %s: %w", path, err)
	}
	if err := s.recover(); err != nil {
		f.Close()
		return nil, fmt.Errorf("open audit file %s: %w", path, err)
	}
	return s, nil
}

// recover finds where the whole records end and zeroes anything after it.
//
// Records are read forward from the start: the log ends at the first zero
// byte or the first line that is not a whole JSON record. What follows was
// written by a group commit whose sync never completed (a crash can leave
// any of its pages on disk, in any order, the rest reading as zeros), so no
// answer depended on it; it is zeroed, so later records follow the whole
// ones without a gap.
func (s *FileSink) recover() error {
	info, err := s.file.Stat()
	if err != nil {
		return err
	}
	s.size = info.Size()
	s.end = 0
	r := bufio.NewReaderSize(io.NewSectionReader(s.file, 0, s.size), 256<<10)
	for {
		line, err := r.ReadSlice('\n')
		if errors.Is(err, bufio.ErrBufferFull) && bytes.IndexByte(line, 0) < 0 {
			// A line longer than the buffer: gather it, unless it runs
			// into the zeros.
			long := append([]byte(nil), line...)
			for errors.Is(err, bufio.ErrBufferFull) && bytes.IndexByte(line, 0) < 0 {
				line, err = r.ReadSlice('\n')
				long = append(long, line...)
			}
			line = long
		}
		if err != nil || bytes.IndexByte(line, 0) >= 0 || !json.Valid(line) {
			break // io.EOF (a last line without its newline is torn too), or the end
		}
		s.end += int64(len(line))
	}
	// Scan back over the zeros to the last byte written.
	last := s.size
	buf := make([]byte, 64<<10)
	for last > s.end {
		n := min(int64(len(buf)), last-s.end)
		if _, err := s.file.ReadAt(buf[:n], last-n); err != nil {
			return err
		}
		if i := int64(len(bytes.TrimRight(buf[:n], "\x00"))); i > 0 {
			last = last - n + i
			break
		}
		last -= n
	}
	if last > s.end {
		if err := writeZeros(s.file, s.end, last-s.end); err != nil {
			return err
		}
		return s.file.Sync()
	}
	return nil
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
			if err = s.checkSize(); err == nil {
				err = s.grow(int64(len(buf)))
			}
			if err == nil {
				if _, err = s.file.WriteAt(buf, s.end); err == nil {
					err = syncData(s.file)
				}
				if err != nil {
					// Best effort: do not leave records that were reported
					// lost to be read as written.
					_ = writeZeros(s.file, s.end, int64(len(buf)))
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
