package rest

import (
	"context"
	"errors"
	"fmt"
	"io"
	"sync"

	"github.com/lienthong/lienthong/adapters"
)

// limitedBody streams a backend body to the gateway while enforcing the
// size limit and the fetch deadline. It fails (rather than truncating) past
// the limit, so a cut-off document can never be mistaken for a whole one,
// and it releases the fetch's context when closed.
type limitedBody struct {
	rc        io.ReadCloser
	ctx       context.Context
	cancel    context.CancelFunc
	limit     int64
	remaining int64
	what      string

	err error // sticky: once failed, every Read fails the same way

	// closeOnce makes Close idempotent. Close may be called from another
	// goroutine while a Read blocks (the gateway aborting a transfer);
	// closing the underlying body unblocks that Read.
	closeOnce sync.Once
	closeErr  error
}

// Read reads from the backend, failing with adapters.ErrTooLarge once more
// than the limit has arrived and with adapters.ErrTimeout past the deadline.
//
// Read is not safe for concurrent use with itself (as for any io.Reader).
func (b *limitedBody) Read(p []byte) (int, error) {
	if b.err != nil {
		return 0, b.err
	}
	if len(p) == 0 {
		return 0, nil
	}
	// Ask for at most one byte past the limit: enough to detect overflow
	// without buffering anything beyond it.
	if int64(len(p)) > b.remaining+1 {
		p = p[:b.remaining+1]
	}
	n, err := b.rc.Read(p)
	if int64(n) > b.remaining {
		n = int(b.remaining)
		b.remaining = 0
		b.err = fmt.Errorf("rest: %s: body exceeds %d bytes: %w", b.what, b.limit, adapters.ErrTooLarge)
		return n, b.err
	}
	b.remaining -= int64(n)
	switch {
	case err == nil || err == io.EOF:
		return n, err
	case errors.Is(b.ctx.Err(), context.DeadlineExceeded) || errors.Is(err, context.DeadlineExceeded):
		b.err = fmt.Errorf("rest: %s: body not received in time: %w", b.what, adapters.ErrTimeout)
	case errors.Is(b.ctx.Err(), context.Canceled):
		b.err = fmt.Errorf("rest: %s: reading body: %w", b.what, context.Canceled)
	default:
		b.err = fmt.Errorf("rest: %s: reading body: %w: %v", b.what, adapters.ErrBackend, err)
	}
	return n, b.err
}

// Close closes the backend body and ends the fetch's context. A body read
// to the end has already returned its connection to the pool; closing one
// early drops the connection, which is what an aborted transfer needs.
func (b *limitedBody) Close() error {
	b.closeOnce.Do(func() {
		b.closeErr = b.rc.Close()
		b.cancel()
	})
	return b.closeErr
}
