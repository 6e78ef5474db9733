//go:build unix

package server_test

import (
	"syscall"
	"time"
)

// cpuTime is the process's user and system CPU time so far, GC included:
// on a shared machine it moves less with other load than wall time does.
func cpuTime() time.Duration {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		return 0
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}
