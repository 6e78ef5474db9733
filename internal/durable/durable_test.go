package durable

import (
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
)

func read(t *testing.T, path string) string {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

func TestWriteFileReplacesWithModeAndLeavesNoTemp(t *testing.T) {
	dir := t.TempDir()
	p := filepath.Join(dir, "key.pem")
	for _, content := range []string{"first", "second, longer than the first", "3"} {
		if err := WriteFile(p, []byte(content), 0o600); err != nil {
			t.Fatal(err)
		}
		if got := read(t, p); got != content {
			t.Fatalf("content %q, want %q", got, content)
		}
	}
	if fi, _ := os.Stat(p); fi.Mode().Perm() != 0o600 {
		t.Errorf("mode %v, want 0600", fi.Mode().Perm())
	}
	entries, _ := os.ReadDir(dir)
	if len(entries) != 1 {
		t.Errorf("directory holds %d entries, want only the file: %v", len(entries), entries)
	}
	if err := WriteFile(filepath.Join(dir, "missing", "x"), []byte("x"), 0o600); err == nil {
		t.Error("write into a missing directory succeeded")
	}
}

// TestRecoverSettlesEveryCrashState builds on disk each state a crash can
// leave inside ReplaceTogether and checks Recover yields a whole group: all
// old or all new, never a mix.
func TestRecoverSettlesEveryCrashState(t *testing.T) {
	cases := []struct {
		name string
		// before Recover: files present (relative name -> content)
		files map[string]string
		want  [2]string // key, cert after Recover
	}{
		{"nothing under way", map[string]string{"key": "old-k", "cert": "old-c"}, [2]string{"old-k", "old-c"}},
		{"one .next written, not committed", map[string]string{"key": "old-k", "cert": "old-c", "key.next": "new-k"}, [2]string{"old-k", "old-c"}},
		{"both .next written, not committed", map[string]string{"key": "old-k", "cert": "old-c", "key.next": "new-k", "cert.next": "new-c"}, [2]string{"old-k", "old-c"}},
		{"committed, nothing renamed", map[string]string{"key": "old-k", "cert": "old-c", "key.next": "new-k", "cert.next": "new-c", "key.commit": "x"}, [2]string{"new-k", "new-c"}},
		{"committed, key renamed, cert not", map[string]string{"key": "new-k", "cert": "old-c", "cert.next": "new-c", "key.commit": "x"}, [2]string{"new-k", "new-c"}},
		{"committed, both renamed", map[string]string{"key": "new-k", "cert": "new-c", "key.commit": "x"}, [2]string{"new-k", "new-c"}},
		{"first replacement ever, committed", map[string]string{"key.next": "new-k", "cert.next": "new-c", "key.commit": "x"}, [2]string{"new-k", "new-c"}},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			dir := t.TempDir()
			for name, content := range c.files {
				if err := os.WriteFile(filepath.Join(dir, name), []byte(content), 0o600); err != nil {
					t.Fatal(err)
				}
			}
			key, cert := filepath.Join(dir, "key"), filepath.Join(dir, "cert")
			if err := Recover(key, cert); err != nil {
				t.Fatal(err)
			}
			if got := [2]string{read(t, key), read(t, cert)}; got != c.want {
				t.Errorf("after recovery %v, want %v", got, c.want)
			}
			entries, _ := os.ReadDir(dir)
			if len(entries) != 2 {
				t.Errorf("leftovers after recovery: %v", entries)
			}
		})
	}
}

func TestReplaceTogether(t *testing.T) {
	dir := t.TempDir()
	key, cert := filepath.Join(dir, "key.pem"), filepath.Join(dir, "cert.pem")
	// A stale uncommitted .next from an earlier crash must not be adopted.
	if err := os.WriteFile(cert+".next", []byte("stale"), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := ReplaceTogether(File{key, []byte("k1"), 0o600}, File{cert, []byte("c1"), 0o644}); err != nil {
		t.Fatal(err)
	}
	if read(t, key) != "k1" || read(t, cert) != "c1" {
		t.Fatalf("got %q %q", read(t, key), read(t, cert))
	}
	if fi, _ := os.Stat(cert); fi.Mode().Perm() != 0o644 {
		t.Errorf("cert mode %v", fi.Mode().Perm())
	}
	entries, _ := os.ReadDir(dir)
	if len(entries) != 2 {
		t.Errorf("leftovers: %v", entries)
	}
}

// TestReplaceTogetherSurvivesSIGKILL kills a real process (this test binary,
// run again) at each crash point and checks the survivor sees a whole group.
func TestReplaceTogetherSurvivesSIGKILL(t *testing.T) {
	if dir := os.Getenv("DURABLE_TEST_CHILD_DIR"); dir != "" {
		_ = ReplaceTogether(
			File{filepath.Join(dir, "key.pem"), []byte("new-k"), 0o600},
			File{filepath.Join(dir, "cert.pem"), []byte("new-c"), 0o600},
		)
		os.Exit(0)
	}
	for _, point := range []string{"replace-prepared", "replace-half-renamed"} {
		t.Run(point, func(t *testing.T) {
			dir := t.TempDir()
			key, cert := filepath.Join(dir, "key.pem"), filepath.Join(dir, "cert.pem")
			for p, c := range map[string]string{key: "old-k", cert: "old-c"} {
				if err := os.WriteFile(p, []byte(c), 0o600); err != nil {
					t.Fatal(err)
				}
			}
			cmd := exec.Command(os.Args[0], "-test.run=^TestReplaceTogetherSurvivesSIGKILL$")
			cmd.Env = append(os.Environ(), "DURABLE_TEST_CHILD_DIR="+dir, CrashEnv+"="+point)
			err := cmd.Run()
			if err == nil || !strings.Contains(err.Error(), "killed") {
				t.Fatalf("child was not killed at %s: %v", point, err)
			}
			if err := Recover(key, cert); err != nil {
				t.Fatal(err)
			}
			got := read(t, key) + "/" + read(t, cert)
			if got != "old-k/old-c" && got != "new-k/new-c" {
				t.Fatalf("after a crash at %s the pair is %s: a mix", point, got)
			}
		})
	}
}
