package audit

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
)

// A log is its active segment, the file the gateway's auditFile names, and
// the sealed segments next to it: "<auditFile>.<first seq, 20 digits>",
// renamed from the active file when it rotates. A segment an operator set
// aside after damage is "<auditFile>.<first seq>.damaged". A file of records
// from before the hash chain, set aside, is "<auditFile>.<time>.legacy".

// Damage reports a log that does not verify: where, why, and the last
// positions that did.
type Damage struct {
	File string
	// Offset is the byte offset of the first bad line.
	Offset int64
	// Seq is the first bad position: the seq the bad line should have had.
	Seq    uint64
	Reason string
	// LastGood is the last entry that verified; LastCheckpoint the last
	// checkpoint that did (nil if none).
	LastGood       Position
	LastCheckpoint *Checkpoint
}

// Error names the file, the position and the last good checkpoint.
func (d *Damage) Error() string {
	cp := "no checkpoint verified before it"
	if d.LastCheckpoint != nil {
		cp = fmt.Sprintf("last good checkpoint at seq %d (covers %d..%d, head %.12s…)",
			d.LastCheckpoint.Seq+1, d.LastCheckpoint.From, d.LastCheckpoint.Seq, d.LastCheckpoint.Head)
	}
	return fmt.Sprintf("audit log %s: damaged at seq %d (byte %d): %s; last good entry seq %d; %s",
		d.File, d.Seq, d.Offset, d.Reason, d.LastGood.Seq, cp)
}

// ErrLegacy refuses a file of records from before the hash chain: nothing
// proves they were not altered, so they are never verified nor migrated into
// a chain (signing them now would vouch for history nobody can check).
var ErrLegacy = errors.New("the file holds records from before the hash chain, which cannot be verified; read them with `lienthong audit read`, and move the file aside with `lienthong audit set-aside` so the gateway starts a chained log")

// isLegacyLine says whether a line is a record of the unchained format.
func isLegacyLine(line []byte) bool {
	var m map[string]json.RawMessage
	if json.Unmarshal(line, &m) != nil {
		return false
	}
	_, rec := m["exchangeId"]
	_, seq := m["seq"]
	return rec && !seq
}

// segmentFile is one file of a log.
type segmentFile struct {
	path    string
	first   uint64 // 0 for the active segment
	damaged bool
}

// listSegments returns the sealed and set-aside segments of the log whose
// active segment is active, oldest first (the active one not included).
func listSegments(active string) ([]segmentFile, error) {
	dir, base := filepath.Split(active)
	if dir == "" {
		dir = "."
	}
	ents, err := os.ReadDir(dir)
	if err != nil {
		return nil, fmt.Errorf("audit segments: %w", err)
	}
	var segs []segmentFile
	for _, e := range ents {
		rest, ok := strings.CutPrefix(e.Name(), base+".")
		if !ok {
			continue
		}
		num, damaged := strings.CutSuffix(rest, ".damaged")
		if len(num) != 20 {
			continue
		}
		first, err := strconv.ParseUint(num, 10, 64)
		if err != nil {
			continue
		}
		segs = append(segs, segmentFile{path: filepath.Join(dir, e.Name()), first: first, damaged: damaged})
	}
	sort.Slice(segs, func(i, j int) bool { return segs[i].first < segs[j].first })
	return segs, nil
}

func sealedName(active string, first uint64) string {
	return fmt.Sprintf("%s.%020d", active, first)
}

// LogFiles returns every file of the log whose active segment is path, in
// order: sealed and set-aside segments, then path if it exists. A path that
// is itself a segment returns just that file.
func LogFiles(path string) ([]string, error) {
	segs, err := listSegments(path)
	if err != nil {
		return nil, err
	}
	var files []string
	for _, s := range segs {
		files = append(files, s.path)
	}
	if _, err := os.Stat(path); err == nil {
		files = append(files, path)
	} else if len(files) == 0 {
		return nil, fmt.Errorf("audit log: %w", err)
	}
	return files, nil
}

// EachEntry streams the entries of the given segment files, in order,
// without verifying them (see Verify): fn gets each entry and its stored
// bytes, valid only during the call. It stops at the first line that is not
// an entry, naming where.
func EachEntry(files []string, fn func(e *Entry, line []byte) error) error {
	for _, path := range files {
		if err := eachLine(path, func(line []byte, off int64) error {
			if isCommitLine(line) {
				return nil
			}
			e, err := ParseEntry(line)
			if err != nil {
				if off == 0 && isLegacyLine(line) {
					return fmt.Errorf("audit log %s: %w", path, ErrLegacy)
				}
				return fmt.Errorf("audit log %s byte %d: %w", path, off, err)
			}
			return fn(e, line)
		}); err != nil {
			return err
		}
	}
	return nil
}

// eachLine streams a file's whole lines, with their offsets; a line cut
// short at the end is an error.
func eachLine(path string, fn func(line []byte, off int64) error) error {
	f, err := os.Open(path)
	if err != nil {
		return fmt.Errorf("audit log: %w", err)
	}
	defer f.Close()
	lr := newLineReader(f)
	for {
		line, off, err := lr.next()
		if errors.Is(err, io.EOF) {
			return nil
		}
		if err != nil {
			return fmt.Errorf("audit log %s byte %d: %w: %.40q", path, off, err, line)
		}
		if err := fn(line, off); err != nil {
			return err
		}
	}
}

// ReadFile returns the records of a log (the sealed segments of path, then
// path), in order. A file from before the hash chain is read as it is. It
// holds every record in memory: for tests and small logs; EachEntry streams.
func ReadFile(path string) ([]Record, error) {
	files, err := LogFiles(path)
	if err != nil {
		return nil, err
	}
	var recs []Record
	err = EachEntry(files, func(e *Entry, _ []byte) error {
		if e.Record != nil {
			recs = append(recs, *e.Record)
		}
		return nil
	})
	if errors.Is(err, ErrLegacy) {
		return ReadLegacy(path)
	}
	return recs, err
}

// ReadLegacy streams a file of records from before the hash chain.
func ReadLegacy(path string) ([]Record, error) {
	var recs []Record
	err := eachLine(path, func(line []byte, off int64) error {
		var r Record
		d := json.NewDecoder(bytes.NewReader(line))
		if err := d.Decode(&r); err != nil {
			return fmt.Errorf("audit file %s byte %d: %w", path, off, err)
		}
		recs = append(recs, r)
		return nil
	})
	return recs, err
}
