// Package storetest is the conformance suite of catalog.Store. Every
// implementation runs it, so the control plane, the policy builder and the
// tests of other packages can rely on one behaviour whichever store they get:
//
//	func TestConformance(t *testing.T) {
//		storetest.Run(t, func(t *testing.T) catalog.Store { return openFresh(t) })
//	}
//
// It also holds PostgresDSN, the shared way for tests to find (or skip
// without) the PostgreSQL server.
package storetest

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"os"
	"reflect"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/lienthong/lienthong/catalog"
)

// PostgresDSN returns the DSN of the test PostgreSQL server from
// LIENTHONG_POSTGRES_DSN. When it is unset the test is skipped, unless
// LIENTHONG_REQUIRE_SERVICES=1 (set in CI), where a silent skip would hide
// that the PostgreSQL half of the suite never ran: then the test fails.
func PostgresDSN(t testing.TB) string {
	t.Helper()
	if dsn := os.Getenv("LIENTHONG_POSTGRES_DSN"); dsn != "" {
		return dsn
	}
	const msg = "PostgreSQL not available: set LIENTHONG_POSTGRES_DSN (scripts/postgres.sh start prints one)"
	if os.Getenv("LIENTHONG_REQUIRE_SERVICES") == "1" {
		t.Fatal(msg + "; LIENTHONG_REQUIRE_SERVICES=1 requires it")
		return ""
	}
	t.Skip(msg)
	return ""
}

// Run runs the conformance suite. open must return a new, empty store for
// each call and close it when the test ends (t.Cleanup). Each subtest opens
// its own store, so subtests do not see each other's data.
func Run(t *testing.T, open func(t *testing.T) catalog.Store) {
	tests := []struct {
		name string
		fn   func(t *testing.T, s catalog.Store)
	}{
		{"Members", testMembers},
		{"Systems", testSystems},
		{"SetAssessment", testSetAssessment},
		{"RevokeSystem", testRevokeSystem},
		{"DatasetVersions", testDatasetVersions},
		{"Datasets", testDatasets},
		{"Tokens", testTokens},
		{"AccessRequests", testAccessRequests},
		{"Grants", testGrants},
		{"Certificates", testCertificates},
		{"AgencyModules", testAgencyModules},
		{"Gateways", testGateways},
		{"Trail", testTrail},
		{"TrailDefaultLimit", testTrailDefaultLimit},
		{"NotFound", testNotFound},
		{"Conflict", testConflict},
		{"Rollback", testRollback},
		{"FailedWriteKeepsTxUsable", testFailedWriteKeepsTxUsable},
		{"ReadYourWrites", testReadYourWrites},
		{"EmptyLists", testEmptyLists},
		{"Times", testTimes},
		{"NestedJSON", testNestedJSON},
		{"ConcurrentUpdates", testConcurrentUpdates},
		{"View", testView},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			s := open(t)
			if s == nil {
				t.Fatal("open returned a nil store")
			}
			tc.fn(t, s)
		})
	}
}

// update runs fn in s.Update and fails the test on error.
func update(t *testing.T, s catalog.Store, fn func(ctx context.Context, tx catalog.Tx) error) {
	t.Helper()
	ctx := t.Context()
	if err := s.Update(ctx, func(tx catalog.Tx) error { return fn(ctx, tx) }); err != nil {
		t.Fatalf("Update: %v", err)
	}
}

// must takes a call's two results and gives v to a test that fails on err:
// must(s.GetMember(ctx, code))(t).
func must[T any](v T, err error) func(t *testing.T) T {
	return func(t *testing.T) T {
		t.Helper()
		if err != nil {
			t.Fatal(err)
		}
		return v
	}
}

// wantErr fails unless errors.Is(err, target).
func wantErr(t *testing.T, what string, err, target error) {
	t.Helper()
	if !errors.Is(err, target) {
		t.Errorf("%s: got error %v, want one wrapping %q", what, err, target)
	}
}

// check fails with a readable difference when got and want differ.
func check(t *testing.T, what string, got, want any) {
	t.Helper()
	if d := diff(got, want); d != "" {
		t.Errorf("%s differs (got vs want):\n%s", what, d)
	}
}

// keys returns the sorted keys of xs, to compare listings as sets: the
// interface leaves most orders open.
func keys[T any](xs []T, key func(T) string) []string {
	out := make([]string, len(xs))
	for i, x := range xs {
		out[i] = key(x)
	}
	slices.Sort(out)
	return out
}

// sorted returns want sorted by key, to compare with a listing sorted the same way.
func sorted[T any](xs []T, key func(T) string) []T {
	out := slices.Clone(xs)
	slices.SortStableFunc(out, func(a, b T) int { return strings.Compare(key(a), key(b)) })
	return out
}

// wantKeys checks a listing's keys as a set and that the listing is not nil.
func wantKeys[T any](t *testing.T, what string, got []T, key func(T) string, want ...string) {
	t.Helper()
	if got == nil {
		t.Errorf("%s: got a nil slice, want a non-nil one", what)
	}
	w := slices.Clone(want)
	slices.Sort(w)
	if w == nil {
		w = []string{}
	}
	if g := keys(got, key); !slices.Equal(g, w) {
		t.Errorf("%s: got %q, want %q", what, g, w)
	}
}

var timeType = reflect.TypeFor[time.Time]()

// diff compares two values field by field and describes up to ten
// differences. Times compare with Equal (the instant, not the location), byte
// slices with bytes.Equal and other slices by their elements, so nil and
// empty are the same; everything else must be equal.
func diff(got, want any) string {
	d := &differ{}
	d.walk("", reflect.ValueOf(got), reflect.ValueOf(want))
	return strings.Join(d.out, "\n")
}

type differ struct{ out []string }

func (d *differ) report(path string, got, want any) {
	if len(d.out) == 10 {
		d.out = append(d.out, "…")
	}
	if len(d.out) > 10 {
		return
	}
	if path == "" {
		path = "(value)"
	}
	d.out = append(d.out, fmt.Sprintf("  %s: %s vs %s", path, show(got), show(want)))
}

func show(v any) string {
	switch x := v.(type) {
	case []byte:
		if len(x) > 64 {
			return fmt.Sprintf("%q… (%d bytes)", x[:64], len(x))
		}
		return fmt.Sprintf("%q", x)
	case time.Time:
		return x.Format(time.RFC3339Nano)
	}
	return fmt.Sprintf("%#v", v)
}

func (d *differ) walk(path string, a, b reflect.Value) {
	if !a.IsValid() || !b.IsValid() {
		if a.IsValid() != b.IsValid() {
			d.report(path, a, b)
		}
		return
	}
	if a.Type() != b.Type() {
		d.report(path, a.Type().String(), b.Type().String())
		return
	}
	if a.Type() == timeType {
		ta, tb := a.Interface().(time.Time), b.Interface().(time.Time)
		if !ta.Equal(tb) {
			d.report(path, ta, tb)
		}
		return
	}
	switch a.Kind() {
	case reflect.Pointer, reflect.Interface:
		if a.IsNil() || b.IsNil() {
			if a.IsNil() != b.IsNil() {
				d.report(path, a.Interface(), b.Interface())
			}
			return
		}
		d.walk(path, a.Elem(), b.Elem())
	case reflect.Slice:
		if a.Type().Elem().Kind() == reflect.Uint8 {
			if !bytes.Equal(a.Bytes(), b.Bytes()) {
				d.report(path, a.Bytes(), b.Bytes())
			}
			return
		}
		if a.Len() != b.Len() {
			d.report(path+".len", a.Len(), b.Len())
		}
		for i := range min(a.Len(), b.Len()) {
			d.walk(fmt.Sprintf("%s[%d]", path, i), a.Index(i), b.Index(i))
		}
	case reflect.Struct:
		for i := range a.NumField() {
			f := a.Type().Field(i)
			if !f.IsExported() {
				continue
			}
			d.walk(path+"."+f.Name, a.Field(i), b.Field(i))
		}
	default:
		if !reflect.DeepEqual(a.Interface(), b.Interface()) {
			d.report(path, a.Interface(), b.Interface())
		}
	}
}
