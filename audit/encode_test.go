package audit

import (
	"bytes"
	"encoding/json"
	"math"
	"math/rand/v2"
	"strconv"
	"testing"
	"time"
)

// encodeSeeds are records at the edges of each fast path: strings json
// escapes, floats it writes in exponent form, times MarshalJSON refuses or
// writes with an offset, empty and nil lists.
func encodeSeeds() []Record {
	base := *benchRecord(1)
	at := func(f func(r *Record)) Record { r := base; f(&r); return r }
	return []Record{
		base,
		{},
		at(func(r *Record) { r.Purpose = `<script>"a"&b\c` + "\n\t\b\f\x00\x1f\x7f" }),
		at(func(r *Record) { r.Case = "hồ sơ điều tra \u2028\u2029 \xff\xfe invalid" }),
		at(func(r *Record) { r.Fields, r.Reasons, r.Subjects = []string{}, []string{""}, []string{"a", "<b>"} }),
		at(func(r *Record) { r.LatencyMS = 1e-7 }),
		at(func(r *Record) { r.LatencyMS = 1e21 }),
		at(func(r *Record) { r.LatencyMS = -0.0 }),
		at(func(r *Record) { r.LatencyMS = math.Copysign(0, -1) }),
		at(func(r *Record) { r.LatencyMS = 123456789.000001 }),
		at(func(r *Record) { r.LatencyMS = math.NaN() }),
		at(func(r *Record) { r.LatencyMS = math.Inf(-1) }),
		at(func(r *Record) { r.Time = time.Date(10000, 1, 1, 0, 0, 0, 0, time.UTC) }),
		at(func(r *Record) { r.Time = time.Date(-1, 1, 1, 0, 0, 0, 0, time.UTC) }),
		at(func(r *Record) { r.Time = time.Date(2026, 12, 5, 7, 0, 0, 1, time.FixedZone("ICT", 7*3600)) }),
		at(func(r *Record) { r.Time = time.Date(2026, 12, 5, 7, 0, 0, 0, time.FixedZone("odd", 7*3600+30)) }),
		at(func(r *Record) { r.Time = time.Date(2026, 12, 5, 7, 0, 0, 0, time.FixedZone("far", 25*3600)) }),
		at(func(r *Record) { r.Status, r.Bytes = -1, math.MinInt64 }),
	}
}

// sameAsJSON fails unless marshalRecord gives json.Marshal's bytes, or
// both refuse.
func sameAsJSON(t *testing.T, r *Record) {
	t.Helper()
	want, werr := json.Marshal(r)
	got, gerr := marshalRecord(r)
	if (werr != nil) != (gerr != nil) || !bytes.Equal(got, want) {
		t.Fatalf("record %+v:\nmarshalRecord %s (%v)\njson.Marshal  %s (%v)", r, got, gerr, want, werr)
	}
}

func TestMarshalRecordIsJSONMarshal(t *testing.T) {
	for _, r := range encodeSeeds() {
		sameAsJSON(t, &r)
	}
	rng := rand.New(rand.NewPCG(1, 2))
	alphabet := []rune("aZ09:.-_ \"\\<>&\n\x01\x7fđơư\u2028😀")
	str := func() string {
		r := make([]rune, rng.IntN(12))
		for i := range r {
			r[i] = alphabet[rng.IntN(len(alphabet))]
		}
		return string(r)
	}
	list := func() []string {
		switch rng.IntN(3) {
		case 0:
			return nil
		case 1:
			return []string{}
		}
		l := make([]string, 1+rng.IntN(3))
		for i := range l {
			l[i] = str()
		}
		return l
	}
	for range 2000 {
		r := Record{Time: time.Unix(rng.Int64N(1<<34)-1<<33, rng.Int64N(1e9)).In(time.FixedZone("", 60*(rng.IntN(24*60*2)-24*60))),
			ExchangeID: str(), Side: str(), Phase: Phase(str()), Consumer: str(), Provider: str(), Dataset: str(), Mode: str(),
			Purpose: str(), Case: str(), Subject: str(), Subjects: list(), Fields: list(), GrantID: str(), Reasons: list(),
			Status: rng.IntN(600), LatencyMS: math.Float64frombits(rng.Uint64()), Bytes: rng.Int64(), RequestHash: str(), PolicyRevision: str()}
		sameAsJSON(t, &r)
	}
}

// FuzzMarshalRecord: the fast encoder agrees with encoding/json on any
// record (make fuzz).
func FuzzMarshalRecord(f *testing.F) {
	for _, r := range encodeSeeds() {
		f.Add(r.Time.UnixNano(), r.ExchangeID, r.Purpose+r.Case, r.LatencyMS, int64(r.Status), r.Bytes)
	}
	f.Fuzz(func(t *testing.T, ns int64, id, text string, latency float64, status, n int64) {
		r := *benchRecord(0)
		r.Time, r.ExchangeID, r.Purpose, r.LatencyMS, r.Status, r.Bytes = time.Unix(0, ns).UTC(), id, text, latency, int(status), n
		r.Fields = append(r.Fields, text)
		sameAsJSON(t, &r)
	})
}

// appendMillis gives strconv's shortest form for every thousandth up to
// 200 ms and for thousandths and other doubles drawn across its range, and
// declines every double it does not cover.
func TestAppendMillisIsShortestForm(t *testing.T) {
	check := func(f float64) {
		t.Helper()
		want := strconv.AppendFloat(nil, f, 'f', -1, 64)
		if got, ok := appendMillis(nil, f); ok && !bytes.Equal(got, want) {
			t.Fatalf("%v: appendMillis %s, strconv %s", f, got, want)
		}
	}
	for n := range 200_000 {
		f := float64(n) / 1000
		check(f)
		if _, ok := appendMillis(nil, f); !ok && n > 0 {
			t.Fatalf("%v, a whole number of thousandths, not written by appendMillis", f)
		}
	}
	rng := rand.New(rand.NewPCG(3, 4))
	for range 50_000 {
		check(float64(rng.Int64N(1<<30)) / 1000)
		check(math.Float64frombits(rng.Uint64()))
		check(rng.Float64() * (1 << 21))
	}
	for _, f := range []float64{0, math.Copysign(0, -1), -1.5, 1 << 20, 0.0001, 1.0005, math.Nextafter(1.25, 2)} {
		if got, ok := appendMillis(nil, f); ok {
			t.Fatalf("%v written as %s: not a whole number of thousandths under 2^20", f, got)
		}
		check(f)
	}
}
