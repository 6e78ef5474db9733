package auditapi

import (
	"errors"
	"math"
	"strconv"
	"strings"
	"testing"

	"github.com/lienthong/lienthong/audit/ship"
	"github.com/lienthong/lienthong/catalog"
)

// FuzzParseLogHead: whatever a gateway (or anything in between) puts in the
// log head header, parseLogHead either takes a seq the index can store (1
// to math.MaxInt64, the canonical decimal of the header read back) or
// refuses it with a validation problem that names the header; empty is no
// head. Seeds in testdata/fuzz/FuzzParseLogHead.
func FuzzParseLogHead(f *testing.F) {
	for _, s := range []string{"", "1", "7", "0", "-1", "seven", "+5", "007", " 5",
		"9223372036854775807", "9223372036854775808", "18446744073709551615", "18446744073709551616"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, v string) {
		head, err := parseLogHead(v)
		if err != nil {
			var ve *catalog.ValidationError
			if head != 0 || !errors.As(err, &ve) || !strings.Contains(err.Error()+ve.Error(), ship.HeadHeader) {
				t.Fatalf("%q: head %d, %v; want 0 and a validation error naming %s", v, head, err, ship.HeadHeader)
			}
			return
		}
		if v == "" {
			if head != 0 {
				t.Fatalf("no header read as head %d", head)
			}
			return
		}
		if head < 1 || head > math.MaxInt64 {
			t.Fatalf("%q taken as head %d, which the index cannot store", v, head)
		}
		if n, _ := strconv.ParseUint(v, 10, 64); n != head {
			t.Fatalf("%q taken as head %d", v, head)
		}
	})
}
