package audit

import (
	"context"
	"encoding/json"
	"fmt"
	"os"
	"sync"
)

// FileSink appends records as JSON lines to a file and syncs each one to
// disk before Write returns, so an acknowledged exchange survives a crash.
// It is the interim sink until the tamper-evident log replaces it.
type FileSink struct {
	mu   sync.Mutex
	file *os.File
}

// OpenFile opens (or creates, mode 0600) an append-only audit file.
func OpenFile(path string) (*FileSink, error) {
	f, err := os.OpenFile(path, os.O_WRONLY|os.O_APPEND|os.O_CREATE, 0o600)
	if err != nil {
		return nil, fmt.Errorf("open audit file: %w", err)
	}
	return &FileSink{file: f}, nil
}

// Write appends r and syncs. Records are small; one write call keeps each
// line whole even if several processes were to share the file.
func (s *FileSink) Write(ctx context.Context, r *Record) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	line, err := json.Marshal(r)
	if err != nil {
		return fmt.Errorf("audit record %s: %w", r.ExchangeID, err)
	}
	line = append(line, '\n')
	s.mu.Lock()
	defer s.mu.Unlock()
	if _, err := s.file.Write(line); err != nil {
		return fmt.Errorf("audit record %s: %w", r.ExchangeID, err)
	}
	if err := s.file.Sync(); err != nil {
		return fmt.Errorf("audit record %s: sync: %w", r.ExchangeID, err)
	}
	return nil
}

// Close closes the file.
func (s *FileSink) Close() error {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.file.Close()
}
