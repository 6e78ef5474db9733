//go:build linux && (amd64 || arm64 || riscv64 || loong64 || ppc64le)

package audit

import (
	"fmt"
	"os"
	"runtime"
	"syscall"
	"unsafe"
)

// dataSyncer makes a commit durable exactly as fdatasync(2) does, without
// a goroutine blocked in the system call while the disk works: it hands
// the sync to the kernel through Linux AIO (IOCB_CMD_FDSYNC, which runs
// the same vfs_fsync(file, datasync) in a kernel worker; Linux 4.18+) and
// waits on an eventfd in the runtime's network poller.
//
// Why: a goroutine in fdatasync keeps one of the scheduler's Ps until the
// runtime's monitor takes it back, and the monitor, after a while with
// nothing to take, looks only every 10 ms, longer than a sync lasts. On a
// two-core gateway each commit's sync then left a core idle: under 64
// callers the gateway bench's process used 1.55 of its 2 cores, the
// runtime counted no P idle, and GOMAXPROCS=3 alone raised its rate by a
// third. Waiting in the poller leaves the P to the exchanges.
//
// The durability is fdatasync's: the same kernel call on the same open
// file, its error (a failed writeback included) returned as the sync's.
// A kernel without AIO, or without AIO fsync, gets fdatasync itself.
type dataSyncer struct {
	ctx  uintptr  // aio_context_t, room for one request
	ev   *os.File // eventfd the kernel signals on completion, in the poller
	evfd uint32   // ev's descriptor (ev.Fd() would make it blocking)
	// plain is set once io_submit refuses FDSYNC (a kernel before 4.18,
	// AIO barred) or a completion could not be reaped: from then on sync
	// is fdatasync. Only the committing goroutine of one sink reads and
	// writes the syncer, one sync at a time.
	plain bool
	seq   uint64 // the last request's number, in its aio_data
	// The request, the array io_submit reads it through and the event
	// io_getevents writes: kept here, on the heap, where nothing moves
	// them while the kernel reads or writes them.
	cb    iocb
	cbs   [1]*iocb
	event ioEvent
}

// iocb is the kernel's struct iocb (linux/aio_abi.h) on a 64-bit
// little-endian machine, where aio_key comes before aio_rw_flags (the
// build constraint above; other machines use fdatasync).
type iocb struct {
	data     uint64
	key      uint32
	rwFlags  int32
	opcode   uint16
	reqprio  int16
	fildes   uint32
	buf      uint64
	nbytes   uint64
	offset   int64
	reserved uint64
	flags    uint32
	resfd    uint32
}

// ioEvent is the kernel's struct io_event: res is the call's result, a
// negative errno on failure.
type ioEvent struct {
	data, obj uint64
	res, res2 int64
}

// The kernel's sizes (64 and 32 bytes): a layout that drifts from them
// does not compile.
var (
	_ = [1]struct{}{}[unsafe.Sizeof(iocb{})-64]
	_ = [1]struct{}{}[unsafe.Sizeof(ioEvent{})-32]
)

const (
	iocbCmdFdsync = 3      // IOCB_CMD_FDSYNC
	iocbFlagResfd = 1 << 0 // IOCB_FLAG_RESFD: signal resfd on completion
)

// newDataSyncer sets up an AIO context and its eventfd, or returns nil
// when the kernel offers none (no CONFIG_AIO, or aio-max-nr reached): the
// sink then uses fdatasync.
func newDataSyncer() *dataSyncer {
	var ctx uintptr
	if _, _, e := syscall.Syscall(syscall.SYS_IO_SETUP, 1, uintptr(unsafe.Pointer(&ctx)), 0); e != 0 {
		return nil
	}
	fd, _, e := syscall.Syscall(syscall.SYS_EVENTFD2, 0, syscall.O_NONBLOCK|syscall.O_CLOEXEC, 0)
	if e != 0 {
		syscall.Syscall(syscall.SYS_IO_DESTROY, ctx, 0, 0)
		return nil
	}
	// A non-blocking descriptor: NewFile puts it in the poller.
	return &dataSyncer{ctx: ctx, ev: os.NewFile(fd, "audit-sync-eventfd"), evfd: uint32(fd)}
}

// sync makes f's written data durable. One sync runs at a time.
func (d *dataSyncer) sync(f *os.File) error {
	if d.plain {
		return syncData(f)
	}
	d.seq++
	d.cb = iocb{data: d.seq, opcode: iocbCmdFdsync, fildes: uint32(f.Fd()), flags: iocbFlagResfd, resfd: d.evfd}
	d.cbs[0] = &d.cb
	for {
		// io_submit copies the iocb and takes its own reference to f's
		// open file: none of d, nor f's descriptor, is the kernel's once
		// it returns.
		_, _, e := syscall.Syscall(syscall.SYS_IO_SUBMIT, d.ctx, 1, uintptr(unsafe.Pointer(&d.cbs[0])))
		runtime.KeepAlive(f)
		switch e {
		case 0:
		case syscall.EINTR:
			continue
		case syscall.EAGAIN:
			// The context is full, which one sync at a time never
			// makes it: sync this commit without it.
			return syncData(f)
		case syscall.EINVAL, syscall.ENOSYS, syscall.EPERM:
			// No AIO fsync in this kernel, none for this file (where
			// fdatasync gives the real answer), or AIO barred (a
			// seccomp filter): fdatasync from now on.
			d.plain = true
			return syncData(f)
		default:
			return fmt.Errorf("fdatasync (io_submit): %w", e)
		}
		break
	}
	if err := d.reap(); err != nil {
		// A request may still be in flight: never use the context
		// again, or its completion would be read as a later one's.
		d.plain = true
		return err
	}
	if d.event.res < 0 {
		return fmt.Errorf("fdatasync: %w", syscall.Errno(-d.event.res))
	}
	return nil
}

// reap waits for the submitted request's completion and reads its event,
// checking it is that request's.
func (d *dataSyncer) reap() error {
	var n [8]byte
	if _, err := d.ev.Read(n[:]); err != nil {
		return fmt.Errorf("fdatasync (completion): %w", err)
	}
	for {
		// The event is in the ring before the eventfd is signalled, so
		// this returns at once.
		got, _, e := syscall.Syscall6(syscall.SYS_IO_GETEVENTS, d.ctx, 1, 1, uintptr(unsafe.Pointer(&d.event)), 0, 0)
		if e == syscall.EINTR || (e == 0 && got == 0) {
			continue
		}
		if e != 0 {
			return fmt.Errorf("fdatasync (io_getevents): %w", e)
		}
		break
	}
	if d.event.data != d.seq {
		return fmt.Errorf("fdatasync: completion of request %d while waiting for %d", d.event.data, d.seq)
	}
	return nil
}

// close releases the context and the eventfd; no sync may be running.
func (d *dataSyncer) close() {
	syscall.Syscall(syscall.SYS_IO_DESTROY, d.ctx, 0, 0)
	d.ev.Close()
}
