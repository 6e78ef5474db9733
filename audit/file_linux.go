package audit

import (
	"errors"
	"os"
	"syscall"
)

// syncData flushes a file's data to the disk, and its metadata only where
// reading the data needs it (fdatasync): a preallocated file's records need
// no journal commit.
func syncData(f *os.File) error {
	for {
		err := syscall.Fdatasync(int(f.Fd()))
		if !errors.Is(err, syscall.EINTR) {
			return err
		}
	}
}

// allocate extends f by n bytes of zeros from off: allocated blocks that read
// as zeros, without writing them, where the filesystem supports it.
func allocate(f *os.File, off, n int64) error {
	for {
		err := syscall.Fallocate(int(f.Fd()), 0, off, n)
		switch {
		case err == nil:
			return nil
		case errors.Is(err, syscall.EINTR):
			continue
		case errors.Is(err, syscall.EOPNOTSUPP), errors.Is(err, syscall.ENOSYS):
			return writeZeros(f, off, n)
		default:
			return err
		}
	}
}

// lock takes an exclusive advisory lock on f, or fails at once if another
// process (or another sink in this one) holds it: records are written at an
// offset the sink keeps, so two writers would overwrite each other's.
func lock(f *os.File) error {
	if err := syscall.Flock(int(f.Fd()), syscall.LOCK_EX|syscall.LOCK_NB); err != nil {
		if errors.Is(err, syscall.EWOULDBLOCK) {
			return errors.New("another process has the audit file open for writing")
		}
		return err
	}
	return nil
}
