package audit

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"sync"
)

// FileSink appends records as JSON lines to a file and syncs them to disk
// before Write returns, so an acknowledged exchange survives a crash. It is
// the interim sink until the tamper-evident log replaces it.
//
// Writes are group-committed: records arriving while a sync is under way
// are written and synced together by the next one, so throughput is not
// bounded by one fsync per exchange while each Write still returns only
// after its own record is on disk.
type FileSink struct {
	file *os.File

	mu       sync.Mutex
	queue    []pending
	flushing bool
	closed   bool
	idle     *sync.Cond // signalled when a flush round ends
}

type pending struct {
	line []byte
	done chan error
}

// ErrClosed is returned by Write after Close.
var ErrClosed = errors.New("audit sink closed")

// OpenFile opens (or creates, mode 0600) an append-only audit file.
func OpenFile(path string) (*FileSink, error) {
	f, err := os.OpenFile(path, os.O_WRONLY|os.O_APPEND|os.O_CREATE, 0o600)
	if err != nil {
		return nil, fmt.Errorf("open audit file: %w", err)
	}
	s := &FileSink{file: f}
	s.idle = sync.NewCond(&s.mu)
	return s, nil
}

// Write queues r and waits until it is written and synced.
func (s *FileSink) Write(ctx context.Context, r *Record) error {
	line, err := json.Marshal(r)
	if err != nil {
		return fmt.Errorf("audit record %s: %w", r.ExchangeID, err)
	}
	line = append(line, '\n')
	done := make(chan error, 1)
	s.mu.Lock()
	if s.closed {
		s.mu.Unlock()
		return ErrClosed
	}
	s.queue = append(s.queue, pending{line: line, done: done})
	if !s.flushing {
		s.flushing = true
		go s.flush()
	}
	s.mu.Unlock()
	select {
	case err := <-done:
		if err != nil {
			return fmt.Errorf("audit record %s: %w", r.ExchangeID, err)
		}
		return nil
	case <-ctx.Done():
		// The record may still reach the disk; the exchange fails anyway.
		return ctx.Err()
	}
}

// flush writes and syncs queued records in rounds until the queue is empty.
func (s *FileSink) flush() {
	for {
		s.mu.Lock()
		batch := s.queue
		s.queue = nil
		if len(batch) == 0 {
			s.flushing = false
			s.idle.Broadcast()
			s.mu.Unlock()
			return
		}
		s.mu.Unlock()
		var buf []byte
		for _, p := range batch {
			buf = append(buf, p.line...)
		}
		_, err := s.file.Write(buf)
		if err == nil {
			err = s.file.Sync()
		}
		for _, p := range batch {
			p.done <- err
		}
	}
}

// Close waits for queued records, then closes the file.
func (s *FileSink) Close() error {
	s.mu.Lock()
	s.closed = true
	for s.flushing {
		s.idle.Wait()
	}
	s.mu.Unlock()
	return s.file.Close()
}
