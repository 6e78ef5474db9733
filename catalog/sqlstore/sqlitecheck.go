package sqlstore

import (
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
	"io/fs"
	"os"
)

// ErrDamaged is matched (errors.Is) by the error OpenSQLite returns when the
// database file or its write-ahead log is damaged in a way that would make
// SQLite silently drop committed data, e.g. an empty catalog where there
// was one. Nothing has been written when it is returned.
var ErrDamaged = errors.New("the catalog database is damaged")

// checkSQLiteFiles reads, without changing anything, the database file at
// path and its write-ahead log, and refuses what SQLite would open by
// quietly losing committed transactions:
//
//   - a WAL whose header is damaged (SQLite would ignore the whole log);
//   - a WAL frame of the current log that fails its checksum while a
//     later frame commits (SQLite would drop that commit and all after it);
//   - a database file shorter than the pages it must hold (truncated).
//
// A torn tail, frames of a transaction that never committed, is what a
// crash leaves and is accepted: SQLite rolls it back, and nothing
// acknowledged is lost.
func checkSQLiteFiles(path string) error {
	wal, err := os.ReadFile(path + "-wal")
	if err != nil && !errors.Is(err, fs.ErrNotExist) {
		return fmt.Errorf("read %s-wal: %w", path, err)
	}
	log, err := checkWAL(wal)
	if err != nil {
		return fmt.Errorf("%w: write-ahead log %s-wal: %v", ErrDamaged, path, err)
	}
	fi, err := os.Stat(path)
	if errors.Is(err, fs.ErrNotExist) {
		if log.dbPages > 0 {
			return fmt.Errorf("%w: %s is missing but its write-ahead log is not", ErrDamaged, path)
		}
		return nil // a new database
	}
	if err != nil {
		return err
	}
	size := fi.Size()
	f, err := os.Open(path)
	if err != nil {
		return err
	}
	defer f.Close()
	hdr := make([]byte, 100)
	n, _ := f.ReadAt(hdr, 0)
	if size == 0 && log.dbPages == 0 {
		return nil // created but never written: SQLite starts it afresh
	}
	pageSize := log.pageSize
	if !log.pages[1] {
		if n < 100 || !bytes.HasPrefix(hdr, []byte("SQLite format 3\x00")) {
			return fmt.Errorf("%w: %s is not a SQLite database (its header is missing or damaged; %d bytes)", ErrDamaged, path, size)
		}
		pageSize = int64(binary.BigEndian.Uint16(hdr[16:18]))
		if pageSize == 1 {
			pageSize = 65536
		}
	}
	if pageSize < 512 || pageSize&(pageSize-1) != 0 {
		return fmt.Errorf("%w: %s has a damaged header (page size %d)", ErrDamaged, path, pageSize)
	}
	filePages := size / pageSize
	if size%pageSize != 0 {
		return fmt.Errorf("%w: %s is %d bytes, not a whole number of %d-byte pages: it was truncated", ErrDamaged, path, size, pageSize)
	}
	need := int64(log.dbPages)
	if need == 0 && n >= 100 {
		// Without a committed log, the header's page count holds when it
		// was written by the same change as the header (SQLite's rule).
		if bytes.Equal(hdr[24:28], hdr[92:96]) {
			need = int64(binary.BigEndian.Uint32(hdr[28:32]))
		}
	}
	for p := int64(1); p <= need; p++ {
		if !log.pages[uint32(p)] && p > filePages {
			return fmt.Errorf("%w: %s holds %d pages but the catalog needs %d: it was truncated", ErrDamaged, path, filePages, need)
		}
	}
	return nil
}

// walState is what the committed part of a write-ahead log holds.
type walState struct {
	pageSize int64
	// dbPages is the database size, in pages, after the last commit in the
	// log (0: no commit).
	dbPages uint32
	// pages are the pages the committed log holds.
	pages map[uint32]bool
}

const (
	walHeaderSize      = 32
	walFrameHeaderSize = 24
)

// checkWAL walks a write-ahead log as SQLite does and reports committed
// frames it would drop.
func checkWAL(wal []byte) (walState, error) {
	st := walState{pages: map[uint32]bool{}}
	if len(wal) == 0 {
		return st, nil
	}
	if len(wal) < walHeaderSize {
		return st, fmt.Errorf("%d bytes, shorter than its header", len(wal))
	}
	magic := binary.BigEndian.Uint32(wal[0:4])
	if magic&^1 != 0x377f0682 {
		return st, errors.New("its header is damaged (bad magic number); SQLite would ignore every transaction in it")
	}
	var order binary.ByteOrder = binary.LittleEndian
	if magic&1 == 1 {
		order = binary.BigEndian
	}
	s0, s1 := walChecksum(order, wal[0:24], 0, 0)
	if s0 != binary.BigEndian.Uint32(wal[24:28]) || s1 != binary.BigEndian.Uint32(wal[28:32]) {
		return st, errors.New("its header fails its checksum; SQLite would ignore every transaction in it")
	}
	pageSize := int64(binary.BigEndian.Uint32(wal[8:12]))
	if pageSize < 512 || pageSize > 65536 || pageSize&(pageSize-1) != 0 {
		return st, fmt.Errorf("its header names page size %d", pageSize)
	}
	st.pageSize = pageSize
	salt := wal[16:24]
	frameSize := walFrameHeaderSize + pageSize
	pending := map[uint32]bool{}
	for i, off := 0, int64(walHeaderSize); off+frameSize <= int64(len(wal)); i, off = i+1, off+frameSize {
		fh := wal[off : off+walFrameHeaderSize]
		if !bytes.Equal(fh[8:16], salt) {
			// A frame of an earlier log: this log ends here, unless frames
			// of this log follow (then the salt itself was damaged).
			if later := committedAfter(wal, off+frameSize, frameSize, salt); later > 0 {
				return st, fmt.Errorf("frame %d is damaged and %d committed transaction(s) follow it; SQLite would drop them", i, later)
			}
			break
		}
		s0, s1 = walChecksum(order, fh[0:8], s0, s1)
		s0, s1 = walChecksum(order, wal[off+walFrameHeaderSize:off+frameSize], s0, s1)
		if s0 != binary.BigEndian.Uint32(fh[16:20]) || s1 != binary.BigEndian.Uint32(fh[20:24]) {
			// A torn tail is fine; a damaged frame followed by a commit of
			// this same log is committed data SQLite would drop.
			if later := committedAfter(wal, off+frameSize, frameSize, salt); later > 0 {
				return st, fmt.Errorf("frame %d fails its checksum and %d committed transaction(s) follow it; SQLite would drop them", i, later)
			}
			break
		}
		pending[binary.BigEndian.Uint32(fh[0:4])] = true
		if commit := binary.BigEndian.Uint32(fh[4:8]); commit > 0 {
			st.dbPages = commit
			for p := range pending {
				st.pages[p] = true
			}
			clear(pending)
		}
	}
	return st, nil
}

// committedAfter counts the commit frames of the log with salt from off on.
func committedAfter(wal []byte, off, frameSize int64, salt []byte) int {
	n := 0
	for ; off+frameSize <= int64(len(wal)); off += frameSize {
		fh := wal[off : off+walFrameHeaderSize]
		if !bytes.Equal(fh[8:16], salt) {
			break
		}
		if binary.BigEndian.Uint32(fh[4:8]) > 0 {
			n++
		}
	}
	return n
}

// walChecksum is SQLite's WAL checksum: over 32-bit words in the log's
// byte order, two running sums.
func walChecksum(order binary.ByteOrder, b []byte, s0, s1 uint32) (uint32, uint32) {
	for i := 0; i+8 <= len(b); i += 8 {
		s0 += order.Uint32(b[i:]) + s1
		s1 += order.Uint32(b[i+4:]) + s0
	}
	return s0, s1
}

// CheckExistingSQLite checks, without changing anything, a database that
// must already hold a catalog (its data directory holds state made with
// it): a missing or empty file is refused as well as a damaged one, since
// opening it would start an empty catalog.
func CheckExistingSQLite(path string) error {
	fi, err := os.Stat(path)
	if errors.Is(err, fs.ErrNotExist) {
		return fmt.Errorf("%w: %s is missing", ErrDamaged, path)
	}
	if err != nil {
		return err
	}
	if fi.Size() == 0 {
		if wal, err := os.Stat(path + "-wal"); err != nil || wal.Size() == 0 {
			return fmt.Errorf("%w: %s is empty", ErrDamaged, path)
		}
	}
	return checkSQLiteFiles(path)
}
