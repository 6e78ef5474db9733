package audit

import (
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"time"
)

// SetAside moves a damaged active segment out of the gateway's way, so the
// next start begins a new segment whose genesis continues the damaged one's
// last good entry. Nothing is rewritten: the file is renamed, whole, to
// "<path>.<first seq>.damaged", where `audit verify` still reads it and
// reports its damage. A file from before the hash chain is renamed to
// "<path>.<time>.legacy". It refuses while a gateway holds the log open, and
// for a segment that is not damaged (a torn tail the gateway cuts itself is
// not damage). It returns the new name.
func SetAside(path string) (string, error) {
	f, err := os.OpenFile(path, os.O_RDWR, 0)
	if err != nil {
		return "", fmt.Errorf("set aside: %w", err)
	}
	defer f.Close()
	if err := lock(f); err != nil {
		return "", fmt.Errorf("set aside %s: %w (stop the gateway first)", path, err)
	}
	_, err = recoverTail(f, path, slog.New(slog.NewTextHandler(io.Discard, nil)), false)
	var to string
	var d *Damage
	switch {
	case errors.Is(err, ErrLegacy):
		to = fmt.Sprintf("%s.%s.legacy", path, time.Now().UTC().Format("20060102T150405Z"))
	case errors.As(err, &d):
		first := genesisSeq(f)
		if first == 0 {
			prev, perr := continuation(path)
			if perr != nil {
				return "", perr
			}
			first = prev.Seq + 1
		}
		to = sealedName(path, first) + ".damaged"
	case err != nil:
		return "", fmt.Errorf("set aside %s: %w", path, err)
	default:
		return "", fmt.Errorf("set aside %s: the segment is not damaged (the gateway recovers it by itself)", path)
	}
	if _, err := os.Stat(to); err == nil {
		return "", fmt.Errorf("set aside %s: %s exists", path, to)
	}
	if err := os.Rename(path, to); err != nil {
		return "", fmt.Errorf("set aside: %w", err)
	}
	return to, syncDir(path)
}

// st0 returns the seq of a segment's genesis, or 0 if it is unreadable.
func genesisSeq(f *os.File) uint64 {
	lr := newLineReader(io.NewSectionReader(f, 0, 1<<62))
	line, _, err := lr.next()
	if err != nil {
		return 0
	}
	e, err := ParseEntry(line)
	if err != nil || e.Kind != KindGenesis {
		return 0
	}
	return e.Seq
}
