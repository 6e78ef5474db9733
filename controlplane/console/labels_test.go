package console

import (
	"io/fs"
	"os"
	"regexp"
	"strings"
	"testing"
	"time"
)

// Every label a template or handler asks for exists in both languages, so
// no page shows a bare key in either.
func TestEveryLabelHasBothLanguages(t *testing.T) {
	used := map[string]bool{}
	tmpl := regexp.MustCompile(`T "([a-z.]+)"`)
	code := regexp.MustCompile(`T\("([a-z.]+)"\)`)
	err := fs.WalkDir(templateFS, "templates", func(p string, d fs.DirEntry, err error) error {
		if err != nil || d.IsDir() {
			return err
		}
		b, err := fs.ReadFile(templateFS, p)
		for _, m := range tmpl.FindAllStringSubmatch(string(b), -1) {
			used[m[1]] = true
		}
		return err
	})
	if err != nil {
		t.Fatal(err)
	}
	files, _ := fs.Glob(os.DirFS("."), "*.go")
	for _, f := range files {
		b, err := os.ReadFile(f)
		if err != nil {
			t.Fatal(err)
		}
		for _, m := range code.FindAllStringSubmatch(string(b), -1) {
			used[m[1]] = true
		}
	}
	for _, k := range []string{"access.done.approved", "access.done.refused", "access.done.revoked", "diff.added", "diff.removed", "diff.reclassified", "diff.retyped"} {
		used[k] = true
	}
	if len(used) < 100 {
		t.Fatalf("found only %d labels in use; the scan is broken", len(used))
	}
	for k := range used {
		l, ok := labels[k]
		if !ok || strings.TrimSpace(l[0]) == "" || strings.TrimSpace(l[1]) == "" {
			t.Errorf("label %q lacks Vietnamese or English", k)
		}
	}
}

// A login link's code works once, and not after it expires.
func TestLoginLinkCodeIsSingleUseAndExpires(t *testing.T) {
	now := time.Date(2026, 12, 5, 0, 0, 0, 0, time.UTC)
	l := newLoginLinks(func() time.Time { return now })
	add := func(code string, ttl time.Duration) {
		l.m[sum(code)] = pendingLink{tokenID: "tok-" + code, expires: now.Add(ttl)}
	}
	add("a", time.Minute)
	add("b", time.Minute)
	if id, ok := l.take("a"); !ok || id != "tok-a" {
		t.Fatalf("first use of a: %q %v", id, ok)
	}
	if _, ok := l.take("a"); ok {
		t.Fatal("a worked twice")
	}
	if _, ok := l.take("nope"); ok {
		t.Fatal("an unknown code worked")
	}
	now = now.Add(time.Minute)
	if _, ok := l.take("b"); ok {
		t.Fatal("b worked after its expiry")
	}
}

// A post-login destination never leaves the console.
func TestSafeNextStaysOnTheConsole(t *testing.T) {
	for in, want := range map[string]string{
		"/console/access": "/console/access", "//evil.example/console": "/console", "https://evil.example": "/console",
		"/console\\@evil": "/console", "": "/console", "/v1/tokens": "/console",
	} {
		if got := safeNext(in); got != want {
			t.Errorf("safeNext(%q) = %q, want %q", in, got, want)
		}
	}
}
