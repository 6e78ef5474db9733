package storetest

import (
	"fmt"
	"testing"
	"time"
)

// fakeTB records Skip and Fatal instead of stopping the test.
type fakeTB struct {
	testing.TB
	skipped, fatal string
}

func (f *fakeTB) Helper()           {}
func (f *fakeTB) Skip(args ...any)  { f.skipped = fmt.Sprint(args...) }
func (f *fakeTB) Fatal(args ...any) { f.fatal = fmt.Sprint(args...) }

func TestPostgresDSN(t *testing.T) {
	for _, tc := range []struct {
		name, dsn, require string
		wantDSN            string
		wantSkip, wantFail bool
	}{
		{name: "set", dsn: "postgres://x@127.0.0.1/db", wantDSN: "postgres://x@127.0.0.1/db"},
		{name: "set and required", dsn: "postgres://x@127.0.0.1/db", require: "1", wantDSN: "postgres://x@127.0.0.1/db"},
		{name: "unset skips", wantSkip: true},
		{name: "unset but required fails", require: "1", wantFail: true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Setenv("LIENTHONG_POSTGRES_DSN", tc.dsn)
			t.Setenv("LIENTHONG_REQUIRE_SERVICES", tc.require)
			f := &fakeTB{TB: t}
			if got := PostgresDSN(f); got != tc.wantDSN {
				t.Errorf("DSN %q, want %q", got, tc.wantDSN)
			}
			if (f.skipped != "") != tc.wantSkip || (f.fatal != "") != tc.wantFail {
				t.Errorf("skipped %q, failed %q; want skip %v, fail %v", f.skipped, f.fatal, tc.wantSkip, tc.wantFail)
			}
			for _, msg := range []string{f.skipped, f.fatal} {
				if msg != "" && msg[:len("PostgreSQL not available: set LIENTHONG_POSTGRES_DSN (scripts/postgres.sh start prints one)")] != "PostgreSQL not available: set LIENTHONG_POSTGRES_DSN (scripts/postgres.sh start prints one)" {
					t.Errorf("message %q", msg)
				}
			}
		})
	}
}

// The comparison the suite relies on: instants not locations, nil equals empty.
func TestDiff(t *testing.T) {
	utc := time.Date(2025, 1, 2, 3, 4, 5, 6000, time.UTC)
	type rec struct {
		At    time.Time
		P     *time.Time
		B     []byte
		S     []string
		N     int
		Inner struct{ X string }
	}
	a := rec{At: utc, P: &utc, B: nil, S: nil, N: 1}
	b := rec{At: utc.In(time.FixedZone("ICT", 7*3600)), P: &utc, B: []byte{}, S: []string{}, N: 1}
	if d := diff(a, b); d != "" {
		t.Errorf("equal values differ:\n%s", d)
	}
	b.N, b.Inner.X, b.P = 2, "y", nil
	if d := diff(a, b); d == "" {
		t.Error("different values compare equal")
	}
}
