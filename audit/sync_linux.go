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
