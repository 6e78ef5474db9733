package audit

import (
	"crypto/ed25519"
	"errors"
	"fmt"
	"log/slog"
	"time"
)

// Defaults of Options.
const (
	DefaultCommitDelay        = 5 * time.Millisecond
	DefaultCheckpointEvery    = 10_000
	DefaultCheckpointInterval = 10 * time.Second
	DefaultSegmentBytes       = 64 << 20
	DefaultSegmentAge         = 24 * time.Hour
)

// Options configure a FileSink.
type Options struct {
	// Gateway is the id the genesis and every checkpoint name.
	Gateway string
	// Key signs checkpoints; its public half is in each segment's genesis
	// and is enrolled at the control plane. Required.
	Key ed25519.PrivateKey
	// CheckpointEvery and CheckpointInterval: a checkpoint follows this
	// many entries, or this long since the last one, whichever first.
	CheckpointEvery    int
	CheckpointInterval time.Duration
	// SegmentBytes and SegmentAge: the active segment is sealed and a new
	// one begun once it is this large or this old.
	SegmentBytes int64
	SegmentAge   time.Duration
	// CommitDelay bounds how long a CommitSoon record waits for a commit.
	CommitDelay time.Duration
	// OnCheckpoint is called with each checkpoint once it is durable, from
	// the committing goroutine: it must not block (hand it to a queue, as
	// ship.Shipper does).
	OnCheckpoint func(Checkpoint)
	// OnCommit, if set, is called after each group commit is durable with
	// the number of records it carried and how long its write and fdatasync
	// took, from the committing goroutine: it must not block (a metrics
	// counter, a histogram). Commits that carry no record (a checkpoint on
	// its own, a segment's genesis) are reported with records 0.
	OnCommit func(records int, d time.Duration)
	// Log receives recovery notices; slog.Default() if nil.
	Log *slog.Logger
	// Now is the clock; time.Now if nil.
	Now func() time.Time
}

func (o *Options) defaults() error {
	if len(o.Key) != ed25519.PrivateKeySize {
		return errors.New("audit log: an Ed25519 checkpoint key is required")
	}
	if o.Gateway == "" {
		return errors.New("audit log: the gateway id is required")
	}
	if o.CheckpointEvery == 0 {
		o.CheckpointEvery = DefaultCheckpointEvery
	}
	if o.CheckpointEvery < 16 {
		// More checkpoints than that would let one commit's checkpoints
		// outgrow the torn-tail bound.
		return fmt.Errorf("audit log: checkpoint every %d entries; at least 16", o.CheckpointEvery)
	}
	if o.CheckpointInterval <= 0 {
		o.CheckpointInterval = DefaultCheckpointInterval
	}
	if o.SegmentBytes <= 0 {
		o.SegmentBytes = DefaultSegmentBytes
	}
	if o.SegmentAge <= 0 {
		o.SegmentAge = DefaultSegmentAge
	}
	if o.CommitDelay <= 0 {
		o.CommitDelay = DefaultCommitDelay
	}
	if o.Log == nil {
		o.Log = slog.Default()
	}
	if o.Now == nil {
		o.Now = time.Now
	}
	return nil
}
