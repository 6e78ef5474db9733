package ship

import (
	"context"
	"crypto/ed25519"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"time"

	"github.com/lienthong/lienthong/audit"
	"github.com/lienthong/lienthong/internal/problem"
)

// Options tune a Shipper.
type Options struct {
	// Key is the gateway's checkpoint key, enrolled at each session's start.
	Key ed25519.PublicKey
	// Batch is about how many entries one request carries (default 1000).
	Batch int
	// Poll is how often the log is read when nothing nudges (default 1 s).
	Poll time.Duration
	// MaxBackoff bounds the wait after a failure (default 1 min).
	MaxBackoff time.Duration
	// Durable, if set, is the sink's FileSink.Durable: entries written but
	// not yet synced are not shipped (a power cut could replace them). It
	// is also the log head the shipper reports with each shipment and in
	// heartbeats, so the control plane knows how far behind its copy is;
	// without it the shipper reports nothing.
	Durable func() uint64
	// Heartbeat is how often the head is reported while there is nothing
	// to ship (default 10 s).
	Heartbeat time.Duration
	Log       *slog.Logger
}

// Shipper sends a log's committed entries and its checkpoints to the
// control plane, at least once: each session asks the control plane where
// its copy ends and reads the log from there, so either side may crash and
// shipping resumes without a gap; entries sent twice are skipped by the
// control plane, which holds them by seq and hash. A fork or a broken chain
// (409 audit-fork, audit-chain) is an alert: it is logged as an error and
// retried slowly, never papered over.
type Shipper struct {
	c      *Client
	active string
	opts   Options
	wake   chan struct{}
	// now is the clock (time.Now; a test sets its own).
	now func() time.Time
	// reported is when the head was last reported; beatsFrom, when the
	// next heartbeat may be tried after the control plane said it has no
	// heartbeat route (an older one, mid-upgrade).
	reported  time.Time
	beatsFrom time.Time
}

// HeartbeatRetryAfter is how many Heartbeat periods the shipper waits
// before it asks again a control plane that said it takes no heartbeats:
// the control plane may be upgraded under a running gateway, so the
// shipper never gives up for good.
const HeartbeatRetryAfter = 10

// New returns a shipper of the log whose active segment is active.
func New(c *Client, active string, opts Options) *Shipper {
	if opts.Batch <= 0 {
		opts.Batch = 1000
	}
	if opts.Poll <= 0 {
		opts.Poll = time.Second
	}
	if opts.MaxBackoff <= 0 {
		opts.MaxBackoff = time.Minute
	}
	if opts.Heartbeat <= 0 {
		opts.Heartbeat = 10 * time.Second
	}
	if opts.Log == nil {
		opts.Log = slog.Default()
	}
	return &Shipper{c: c, active: active, opts: opts, wake: make(chan struct{}, 1), now: time.Now}
}

// Nudge asks for a round now; it never blocks, so it serves as the sink's
// OnCheckpoint hook: a checkpoint leaves the gateway as soon as it is
// durable.
func (s *Shipper) Nudge(audit.Checkpoint) {
	select {
	case s.wake <- struct{}{}:
	default:
	}
}

// Run ships until ctx ends.
func (s *Shipper) Run(ctx context.Context) {
	backoff := s.opts.Poll
	for ctx.Err() == nil {
		shipped, err := s.session(ctx)
		if ctx.Err() != nil {
			return
		}
		if shipped {
			backoff = s.opts.Poll
		}
		var ae *Error
		switch {
		case errors.As(err, &ae) && (ae.Problem("audit-fork") || ae.Problem("audit-chain")):
			s.opts.Log.Error("audit shipping: the control plane's copy and this log disagree", "error", err.Error())
			backoff = s.opts.MaxBackoff
		default:
			s.opts.Log.Warn("audit shipping interrupted", "error", err.Error(), "retry_in", backoff)
		}
		select {
		case <-ctx.Done():
			return
		case <-time.After(backoff):
		}
		backoff = min(2*backoff, s.opts.MaxBackoff)
	}
}

// session enrols the key, asks the position and ships from there until an
// error; shipped says whether anything was accepted.
func (s *Shipper) session(ctx context.Context) (shipped bool, err error) {
	if s.opts.Key != nil {
		if err := s.c.PutKey(ctx, s.opts.Key); err != nil {
			return false, fmt.Errorf("enrol checkpoint key: %w", err)
		}
	}
	pos, err := s.c.Position(ctx)
	if err != nil {
		return false, fmt.Errorf("position: %w", err)
	}
	t, err := audit.NewTailer(s.active, pos.Next)
	if err != nil {
		return false, err
	}
	t.Limit = s.opts.Durable
	defer t.Close()
	s.reported = time.Time{} // a new session reports at once
	for {
		lines, err := t.Next(s.opts.Batch)
		if err != nil {
			return shipped, err
		}
		head := s.head()
		if len(lines) == 0 {
			if err := s.heartbeat(ctx, head); err != nil {
				return shipped, fmt.Errorf("heartbeat: %w", err)
			}
			select {
			case <-ctx.Done():
				return shipped, ctx.Err()
			case <-s.wake:
			case <-time.After(s.opts.Poll):
			}
			continue
		}
		// A checkpoint goes out after the entries it covers and before its
		// own entry: a session that stops between the two finds its
		// entry first next time and posts the checkpoint again, so none
		// is lost however either side crashes.
		start := 0
		for i, l := range lines {
			if audit.IsRecordLine(l) {
				continue
			}
			e, err := audit.ParseEntry(l)
			if err != nil {
				return shipped, err
			}
			if e.Checkpoint == nil {
				continue
			}
			if i > start {
				if _, err := s.c.PostEntries(ctx, lines[start:i], head); err != nil {
					return shipped, fmt.Errorf("entries: %w", err)
				}
				shipped, start = true, i
			}
			if err := s.c.PostCheckpoint(ctx, e.Checkpoint); err != nil {
				return shipped, fmt.Errorf("checkpoint %d..%d: %w", e.Checkpoint.From, e.Checkpoint.Seq, err)
			}
		}
		if _, err := s.c.PostEntries(ctx, lines[start:], head); err != nil {
			return shipped, fmt.Errorf("entries: %w", err)
		}
		shipped = true
		if head != 0 {
			s.reported = s.now()
		}
	}
}

// head is the last seq of the log to report (0: unknown, not reported).
func (s *Shipper) head() uint64 {
	if s.opts.Durable == nil {
		return 0
	}
	return s.opts.Durable()
}

// heartbeat reports the head when the last report is Heartbeat old. When
// the control plane itself answers that it has no such route (404
// urn:lienthong:problem:not-found: one older than heartbeats, as during a
// rolling upgrade that moved the gateways first), heartbeats pause for
// HeartbeatRetryAfter periods and are tried again; shipments still carry
// the head meanwhile. Any other failure, a 404 from a proxy in between
// included, is an error like any other: the session ends and is retried
// with backoff.
func (s *Shipper) heartbeat(ctx context.Context, head uint64) error {
	now := s.now()
	if head == 0 || now.Before(s.beatsFrom) || now.Sub(s.reported) < s.opts.Heartbeat {
		return nil
	}
	err := s.c.PutHead(ctx, head)
	var ae *Error
	if errors.As(err, &ae) && ae.Status == http.StatusNotFound && ae.Type == problem.TypePrefix+"not-found" {
		retry := HeartbeatRetryAfter * s.opts.Heartbeat
		s.opts.Log.Info("audit shipping: the control plane takes no heartbeats yet; the log head goes with shipments only", "retry_in", retry)
		s.beatsFrom = now.Add(retry)
		return nil
	}
	if err != nil {
		return err
	}
	s.reported = now
	return nil
}
