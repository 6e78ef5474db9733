//go:build !linux

package audit

import "os"

// syncData flushes a file to the disk; without fdatasync, a full sync.
func syncData(f *os.File) error { return f.Sync() }

// allocate extends f by n bytes of zeros from off.
func allocate(f *os.File, off, n int64) error { return writeZeros(f, off, n) }

// lock is a no-op where flock is not used; run one gateway per audit file.
func lock(*os.File) error { return nil }
