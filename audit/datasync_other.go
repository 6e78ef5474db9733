//go:build !(linux && (amd64 || arm64 || riscv64 || loong64 || ppc64le))

package audit

import "os"

// dataSyncer is the AIO sync of 64-bit little-endian Linux
// (datasync_linux.go); elsewhere there is none and the sink syncs with
// syncData.
type dataSyncer struct{}

func newDataSyncer() *dataSyncer          { return nil }
func (*dataSyncer) sync(f *os.File) error { return syncData(f) }
func (*dataSyncer) close()                {}
