package console

import (
	"io/fs"
	"os"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/lienthong/lienthong/catalog"
	"github.com/lienthong/lienthong/controlplane/service"
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

// A certificate warns when a renewal is overdue: less than a third of its
// lifetime left (at most 14 days), and only the newest of its system.
func TestCertificateWarnings(t *testing.T) {
	now := time.Date(2026, 12, 5, 0, 0, 0, 0, time.UTC)
	cert := func(lifetime, left time.Duration, status service.CertificateStatus) service.CertificateView {
		return service.CertificateView{Certificate: catalog.Certificate{NotBefore: now.Add(left - lifetime), NotAfter: now.Add(left)}, Status: status}
	}
	day := 24 * time.Hour
	for _, tc := range []struct {
		name       string
		c          service.CertificateView
		superseded bool
		want       string
	}{
		{"3-day cert, fresh", cert(3*day, 71*time.Hour, service.CertificateValid), false, "ok"},
		{"3-day cert, renewal overdue", cert(3*day, 23*time.Hour, service.CertificateValid), false, "warn"},
		{"1-year cert, 20 days left", cert(365*day, 20*day, service.CertificateValid), false, "ok"},
		{"1-year cert, 13 days left", cert(365*day, 13*day, service.CertificateValid), false, "warn"},
		{"superseded by a renewal", cert(3*day, time.Hour, service.CertificateValid), true, "gone"},
		{"revoked", cert(3*day, time.Hour, service.CertificateRevoked), false, "gone"},
	} {
		if got, _ := certLevel(tc.c, now, tc.superseded); got != tc.want {
			t.Errorf("%s: %s, want %s", tc.name, got, tc.want)
		}
	}
}
