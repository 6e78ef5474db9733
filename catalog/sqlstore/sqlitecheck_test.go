package sqlstore

import (
	"context"
	"encoding/binary"
	"errors"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/lienthong/lienthong/catalog"
)

// crashCopy makes a catalog with its data in the WAL, as a process killed
// before checkpointing leaves it, and returns the copied database path and
// the WAL's bytes.
func crashCopy(t *testing.T) (string, []byte) {
	t.Helper()
	ctx := context.Background()
	live := filepath.Join(t.TempDir(), "catalog.db")
	s, err := OpenSQLite(ctx, live)
	if err != nil {
		t.Fatal(err)
	}
	for _, code := range []string{"000.00.00.G01", "000.00.00.G02", "000.00.00.G03", "000.00.00.G04"} {
		if err := s.Update(ctx, func(tx catalog.Tx) error {
			return tx.CreateMember(ctx, &catalog.Member{Code: code, Name: "Bộ " + code, CreatedAt: time.Now()})
		}); err != nil {
			t.Fatal(err)
		}
	}
	dir := t.TempDir()
	db := filepath.Join(dir, "catalog.db")
	for _, suffix := range []string{"", "-wal"} {
		b, err := os.ReadFile(live + suffix)
		if err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(db+suffix, b, 0o600); err != nil {
			t.Fatal(err)
		}
	}
	s.Close()
	wal, _ := os.ReadFile(db + "-wal")
	if len(wal) < walHeaderSize+4*(walFrameHeaderSize+512) {
		t.Fatalf("WAL of %d bytes: the store checkpointed already", len(wal))
	}
	return db, wal
}

func TestCheckSQLiteFiles(t *testing.T) {
	_, wal := crashCopy(t)
	pageSize := int64(binary.BigEndian.Uint32(wal[8:12]))
	frame := walFrameHeaderSize + pageSize
	frames := (int64(len(wal)) - walHeaderSize) / frame
	cases := []struct {
		name    string
		change  func(wal []byte) []byte
		damaged bool
	}{
		{"as the crash left it", func(w []byte) []byte { return w }, false},
		{"torn in the last frame", func(w []byte) []byte { return w[:int64(len(w))-frame/2] }, false},
		{"last frame's page garbled (as a power cut may leave it: SQLite rolls back that transaction alone)", func(w []byte) []byte {
			w[int64(len(w))-10] ^= 0xff
			return w
		}, false},
		{"header garbled", func(w []byte) []byte { w[3] ^= 0xff; return w }, true},
		{"header checksum wrong", func(w []byte) []byte { w[26] ^= 0xff; return w }, true},
		{"first frame's page garbled", func(w []byte) []byte { w[walHeaderSize+walFrameHeaderSize+100] ^= 0xff; return w }, true},
		{"a middle frame's salt garbled", func(w []byte) []byte { w[walHeaderSize+(frames/2)*frame+9] ^= 0xff; return w }, true},
		{"shorter than its header", func(w []byte) []byte { return w[:20] }, true},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			db, orig := crashCopy(t)
			changed := c.change(append([]byte(nil), orig...))
			if err := os.WriteFile(db+"-wal", changed, 0o600); err != nil {
				t.Fatal(err)
			}
			err := checkSQLiteFiles(db)
			if c.damaged != (err != nil) || (err != nil && !errors.Is(err, ErrDamaged)) {
				t.Fatalf("damaged %v, check said %v", c.damaged, err)
			}
			if c.damaged {
				return
			}
			// What the check accepts, SQLite opens with the committed
			// members in it.
			s, err := OpenSQLite(context.Background(), db)
			if err != nil {
				t.Fatal(err)
			}
			defer s.Close()
			ms, err := s.ListMembers(context.Background())
			if err != nil || len(ms) < 3 {
				t.Errorf("after opening: %d members, %v", len(ms), err)
			}
		})
	}
}

func TestCheckExistingSQLite(t *testing.T) {
	ctx := context.Background()
	db := filepath.Join(t.TempDir(), "catalog.db")
	if err := CheckExistingSQLite(db); !errors.Is(err, ErrDamaged) {
		t.Errorf("missing file: %v", err)
	}
	s, err := OpenSQLite(ctx, db)
	if err != nil {
		t.Fatal(err)
	}
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	if fi, err := os.Stat(db + "-wal"); err == nil && fi.Size() > 0 {
		t.Errorf("WAL of %d bytes after Close: not checkpointed", fi.Size())
	}
	if err := CheckExistingSQLite(db); err != nil {
		t.Errorf("whole file refused: %v", err)
	}
	fi, _ := os.Stat(db)
	for _, size := range []int64{fi.Size() - 4096, fi.Size() - 1, 50, 0} {
		if err := os.Truncate(db, size); err != nil {
			t.Fatal(err)
		}
		if err := CheckExistingSQLite(db); !errors.Is(err, ErrDamaged) {
			t.Errorf("truncated to %d bytes: %v", size, err)
		}
	}
}

// FuzzCheckWAL feeds arbitrary bytes to the WAL walk: it must never panic,
// and what it accepts names a page size SQLite allows.
func FuzzCheckWAL(f *testing.F) {
	f.Add([]byte{})
	f.Add(make([]byte, 32))
	f.Add(append([]byte{0x37, 0x7f, 0x06, 0x82, 0, 0x2d, 0xe2, 0x18, 0, 0, 0x10, 0}, make([]byte, 60)...))
	f.Fuzz(func(t *testing.T, wal []byte) {
		st, err := checkWAL(wal)
		if err == nil && len(wal) > 0 && (st.pageSize < 512 || st.pageSize > 65536) {
			t.Fatalf("accepted a WAL with page size %d", st.pageSize)
		}
	})
}
