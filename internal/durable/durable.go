// Package durable writes files so that a crash at any instant leaves either
// the old content or the new, never a torn or empty file, and so that what
// was written survives a power loss once the call returns.
//
// Every layer that keeps state on disk (keys, certificates, tokens, the
// gateway's last good configuration) writes through it: a file rewritten in
// place with os.WriteFile is truncated first, and a crash right then leaves
// an empty key that no restart can load.
package durable

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"syscall"
)

// WriteFile replaces path with data: it writes a temporary file in the same
// directory, syncs it, renames it over path and syncs the directory, so the
// rename itself is on disk before WriteFile returns.
func WriteFile(path string, data []byte, perm fs.FileMode) error {
	if err := writeTemp(path, data, perm); err != nil {
		return err
	}
	return SyncDir(filepath.Dir(path))
}

// writeTemp does WriteFile without the final directory sync, for callers
// that sync once after several renames.
func writeTemp(path string, data []byte, perm fs.FileMode) error {
	dir := filepath.Dir(path)
	tmp, err := os.CreateTemp(dir, "."+filepath.Base(path)+".tmp-*")
	if err != nil {
		return fmt.Errorf("write %s: %w", path, err)
	}
	defer os.Remove(tmp.Name()) // fails harmlessly after the rename
	fail := func(err error) error {
		tmp.Close()
		return fmt.Errorf("write %s: %w", path, err)
	}
	if err := tmp.Chmod(perm); err != nil {
		return fail(err)
	}
	if _, err := tmp.Write(data); err != nil {
		return fail(err)
	}
	if err := tmp.Sync(); err != nil {
		return fail(err)
	}
	if err := tmp.Close(); err != nil {
		return fmt.Errorf("write %s: %w", path, err)
	}
	if err := os.Rename(tmp.Name(), path); err != nil {
		return fmt.Errorf("write %s: %w", path, err)
	}
	return nil
}

// SyncDir makes the entries of dir (files created, renamed or removed in
// it) durable.
func SyncDir(dir string) error {
	d, err := os.Open(dir)
	if err != nil {
		return fmt.Errorf("sync %s: %w", dir, err)
	}
	defer d.Close()
	if err := d.Sync(); err != nil && !errors.Is(err, syscall.EINVAL) {
		return fmt.Errorf("sync %s: %w", dir, err)
	}
	return nil
}

// File is one file of a group replaced together.
type File struct {
	Path string
	Data []byte
	Perm fs.FileMode
}

// Suffixes of the files a group replacement leaves while under way.
const (
	nextSuffix   = ".next"
	commitSuffix = ".commit"
)

// ReplaceTogether replaces several files as one: after a crash at any point,
// Recover (which every reader of the group calls first) completes the
// replacement or undoes it, so readers see all the old files or all the new
// ones, e.g. a key and the certificate chain issued for it.
//
// The new contents go to "<path>.next" files; a commit file written beside
// the first path is the point of no return; then each .next is renamed over
// its path and the commit file is removed.
func ReplaceTogether(files ...File) error {
	if len(files) == 0 {
		return nil
	}
	paths := make([]string, len(files))
	for i, f := range files {
		paths[i] = f.Path
	}
	// Leftovers of an earlier replacement that crashed are settled first, so
	// its commit file cannot adopt this one's .next files.
	if err := Recover(paths...); err != nil {
		return err
	}
	for _, f := range files {
		if err := WriteFile(f.Path+nextSuffix, f.Data, f.Perm); err != nil {
			return err
		}
	}
	Crashpoint("replace-prepared", paths[0])
	commit := paths[0] + commitSuffix
	if err := WriteFile(commit, []byte(strings.Join(paths, "\n")+"\n"), 0o600); err != nil {
		return err
	}
	return finish(paths)
}

// finish renames every .next file that is still there over its path, syncs
// the directories and removes the commit file.
func finish(paths []string) error {
	dirs := map[string]bool{}
	for i, p := range paths {
		if i == 1 {
			Crashpoint("replace-half-renamed", paths[0])
		}
		if err := os.Rename(p+nextSuffix, p); err != nil && !errors.Is(err, fs.ErrNotExist) {
			return fmt.Errorf("replace %s: %w", p, err)
		}
		dirs[filepath.Dir(p)] = true
	}
	for d := range dirs {
		if err := SyncDir(d); err != nil {
			return err
		}
	}
	commit := paths[0] + commitSuffix
	if err := os.Remove(commit); err != nil && !errors.Is(err, fs.ErrNotExist) {
		return fmt.Errorf("replace %s: %w", paths[0], err)
	}
	return SyncDir(filepath.Dir(commit))
}

// Recover settles a group replacement that a crash interrupted: with its
// commit file present it completes it, otherwise it removes the .next files
// of a replacement that had not committed. It does nothing when no
// replacement was under way, and it is what makes ReplaceTogether atomic,
// so call it before reading the group.
func Recover(paths ...string) error {
	if len(paths) == 0 {
		return nil
	}
	commit := paths[0] + commitSuffix
	_, err := os.Stat(commit)
	switch {
	case err == nil:
		// The commit file lists the group for a person looking; the caller's
		// list wins, so a directory moved after a crash still recovers.
		return finish(paths)
	case !errors.Is(err, fs.ErrNotExist):
		return fmt.Errorf("recover %s: %w", paths[0], err)
	}
	removed := false
	for _, p := range paths {
		if err := os.Remove(p + nextSuffix); err == nil {
			removed = true
		} else if !errors.Is(err, fs.ErrNotExist) {
			return fmt.Errorf("recover %s: %w", p, err)
		}
	}
	if removed {
		return SyncDir(filepath.Dir(paths[0]))
	}
	return nil
}

// CrashEnv names the environment variable that crash tests set to make the
// process kill itself (SIGKILL, no clean-up) at a named point of a group
// replacement: "replace-prepared" (new files written, not committed) or
// "replace-half-renamed" (the first file of the group renamed, the others
// not), alone or followed by ":" and the base name of the group's first
// file to pick one group, e.g. "replace-half-renamed:key.pem". Nothing but
// tests sets it.
const CrashEnv = "LIENTHONG_TEST_CRASH_AT"

// Crashpoint kills the process when CrashEnv names point, alone or for the
// group whose first file is first.
func Crashpoint(point, first string) {
	if v := os.Getenv(CrashEnv); v != "" && (v == point || v == point+":"+filepath.Base(first)) {
		if p, err := os.FindProcess(os.Getpid()); err == nil {
			_ = p.Kill() // SIGKILL: no deferred call, no clean-up runs
		}
		select {} // the signal is on its way
	}
}
