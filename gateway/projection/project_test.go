package projection

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"strings"
	"sync"
	"testing"
	"testing/iotest"

	"github.com/lienthong/lienthong/catalog"
)

// testKey is a fixed 32-byte HMAC key for tests.
var testKey = []byte("0123456789abcdef0123456789abcdef")

func testMasker(t testing.TB) *Masker {
	t.Helper()
	m, err := NewMasker(testKey, 0)
	if err != nil {
		t.Fatal(err)
	}
	return m
}

// run projects in with the given grant and masks.
func run(t testing.TB, fields []string, masks map[string]catalog.Mask, in string, opts Options) (string, Stats, error) {
	t.Helper()
	p, err := NewPlan(fields, masks, testMasker(t))
	if err != nil {
		t.Fatalf("NewPlan(%q, %v): %v", fields, masks, err)
	}
	var out bytes.Buffer
	st, err := p.Project(&out, strings.NewReader(in), opts)
	return out.String(), st, err
}

type projCase struct {
	name   string
	fields []string
	masks  map[string]catalog.Mask
	in     string
	want   string // compared byte for byte
	err    error  // wanted error, checked with errors.Is
}

func runCases(t *testing.T, cases []projCase) {
	t.Helper()
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			got, _, err := run(t, c.fields, c.masks, c.in, Options{})
			if c.err != nil {
				if !errors.Is(err, c.err) {
					t.Fatalf("error = %v; want %v", err, c.err)
				}
				if !strings.HasPrefix(c.in, "[") && got != "" {
					t.Fatalf("a single record wrote %q before failing", got)
				}
				return
			}
			if err != nil {
				t.Fatalf("unexpected error: %v", err)
			}
			if got != c.want {
				t.Fatalf("\n got  %s\n want %s", got, c.want)
			}
			if !json.Valid([]byte(got)) {
				t.Fatalf("output is not valid JSON: %s", got)
			}
		})
	}
}

func TestProjectObjects(t *testing.T) {
	runCases(t, []projCase{
		{name: "leaf", fields: []string{"fullName"},
			in:   `{"fullName":"Nguyễn Văn An","religion":"01","ethnicity":"01"}`,
			want: `{"fullName":"Nguyễn Văn An"}`},
		{name: "object path allows its subtree", fields: []string{"permanentResidence"},
			in:   `{"permanentResidence":{"provinceCode":"01","wardCode":"00001","extra":{"x":[1,2]}},"religion":"01"}`,
			want: `{"permanentResidence":{"provinceCode":"01","wardCode":"00001","extra":{"x":[1,2]}}}`},
		{name: "leaf below an object emits the parent with just it", fields: []string{"permanentResidence.provinceCode"},
			in:   `{"permanentResidence":{"provinceCode":"01","wardCode":"00001","addressLine":"Số 12"},"fullName":"A"}`,
			want: `{"permanentResidence":{"provinceCode":"01"}}`},
		{name: "ancestor and leaf: the ancestor wins", fields: []string{"permanentResidence.provinceCode", "permanentResidence"},
			in:   `{"permanentResidence":{"provinceCode":"01","wardCode":"00001"}}`,
			want: `{"permanentResidence":{"provinceCode":"01","wardCode":"00001"}}`},
		{name: "a scalar where only parts of an object are allowed is dropped", fields: []string{"father.fullName"},
			in:   `{"father":"Nguyễn Văn B","mother":{"fullName":"C"}}`,
			want: `{}`},
		{name: "null where only parts are allowed stays null", fields: []string{"spouse.fullName"},
			in:   `{"spouse":null}`,
			want: `{"spouse":null}`},
		{name: "an object without the allowed part is emitted empty", fields: []string{"spouse.fullName"},
			in:   `{"spouse":{"personalId":"001099012345"}}`,
			want: `{"spouse":{}}`},
		{name: "missing fields are not invented", fields: []string{"fullName", "a.b"},
			in: `{"x":1}`, want: `{}`},
		{name: "no fields allowed", fields: nil,
			in: `{"fullName":"A","a":{"b":1}}`, want: `{}`},
		{name: "five levels deep with siblings at each level", fields: []string{"a.b.c.d.e"},
			in:   `{"a":{"x":1,"b":{"x":2,"c":{"x":3,"d":{"x":4,"e":{"deep":true},"y":5}}}},"z":0}`,
			want: `{"a":{"b":{"c":{"d":{"e":{"deep":true}}}}}}`},
		{name: "key order of the source is kept", fields: []string{"b", "a", "c"},
			in: `{"c":3,"x":0,"a":1,"b":2}`, want: `{"c":3,"a":1,"b":2}`},
		{name: "white space is not kept", fields: []string{"a"},
			in: " {\n\t\"a\" : [ 1 , { \"b\" : null } ] \r\n} \n", want: `{"a":[1,{"b":null}]}`},
		{name: "booleans and null", fields: []string{"t", "f", "n"},
			in: `{"t":true,"f":false,"n":null,"x":true}`, want: `{"t":true,"f":false,"n":null}`},
	})
}

func TestProjectArrays(t *testing.T) {
	runCases(t, []projCase{
		{name: "array of objects keeps the allowed key of each item", fields: []string{"relatives.fullName"},
			in:   `{"relatives":[{"relationship":"Con đẻ","personalId":"001099012345","fullName":"A"},{"fullName":"B","personalId":"001099012346"},{}]}`,
			want: `{"relatives":[{"fullName":"A"},{"fullName":"B"},{}]}`},
		{name: "array of arrays is transparent", fields: []string{"m.x"},
			in:   `{"m":[[{"x":1,"y":2}],[{"x":3},{"y":4}],[]]}`,
			want: `{"m":[[{"x":1}],[{"x":3},{}],[]]}`},
		{name: "array of scalars is kept when its path is allowed", fields: []string{"phones"},
			in: `{"phones":["0912345678","0987654321"],"x":[1]}`, want: `{"phones":["0912345678","0987654321"]}`},
		{name: "scalars in an array where only parts are allowed are dropped", fields: []string{"tags.x"},
			in: `{"tags":["a",{"x":1,"y":2},null,7,true,[{"x":2,"z":3},"b"]]}`, want: `{"tags":[{"x":1},null,[{"x":2}]]}`},
		{name: "array granted whole keeps mixed items", fields: []string{"tags"},
			in: `{"tags":[1,"a",{"k":2},[true,null]]}`, want: `{"tags":[1,"a",{"k":2},[true,null]]}`},
		{name: "nested arrays of objects of arrays", fields: []string{"a.b.c"},
			in: `{"a":[{"b":[{"c":1,"d":2},{"d":3}],"e":4}]}`, want: `{"a":[{"b":[{"c":1},{}]}]}`},
		{name: "top-level array of records", fields: []string{"fullName"},
			in: `[{"fullName":"A","x":1},{"fullName":"B"},{"y":2}]`, want: `[{"fullName":"A"},{"fullName":"B"},{}]`},
		{name: "top-level empty array", fields: []string{"fullName"}, in: ` [ ] `, want: `[]`},
		{name: "top-level array with a scalar item", fields: []string{"a"}, in: `[{"a":1},2]`, err: ErrInvalidRecord},
		{name: "top-level array with a nested array item", fields: []string{"a"}, in: `[[{"a":1}]]`, err: ErrInvalidRecord},
		{name: "top-level string", fields: []string{"a"}, in: `"a"`, err: ErrInvalidRecord},
		{name: "top-level number", fields: []string{"a"}, in: `12`, err: ErrInvalidRecord},
		{name: "top-level null", fields: []string{"a"}, in: `null`, err: ErrInvalidRecord},
	})
}

func TestProjectKeys(t *testing.T) {
	runCases(t, []projCase{
		{name: "escaped key is compared unescaped", fields: []string{"name"},
			in: `{"\u006eame":"A","x":1}`, want: `{"name":"A"}`},
		{name: "escaped ungranted key is dropped", fields: []string{"fullName"},
			in: `{"fullName":"A","\u0072eligion":"01","r\u0065ligion2":"02"}`, want: `{"fullName":"A"}`},
		{name: "escaped key below an object", fields: []string{"a.b"},
			in: `{"\u0061":{"\u0062":1,"c":2}}`, want: `{"a":{"b":1}}`},
		{name: "surrogate pair key", fields: []string{"😀.ok"},
			in: `{"\ud83d\ude00":{"ok":1,"no":2},"\ud83d\ude01":3}`, want: `{"😀":{"ok":1}}`},
		{name: "a lone surrogate is U+FFFD, not granted", fields: []string{"a"},
			in: `{"\ud800":1,"a":2}`, want: `{"a":2}`},
		{name: "dotted key never matches a dotted path", fields: []string{"a.b"},
			in: `{"a.b":"secret","a":{"b":"ok","c":"no"}}`, want: `{"a":{"b":"ok"}}`},
		{name: "escaped dot is a dot", fields: []string{"a.b"},
			in: `{"a\u002eb":"secret","a\u002Eb":"secret"}`, err: ErrDuplicateKey},
		{name: "escaped dotted key is dropped", fields: []string{"a.b"},
			in: `{"a\u002eb":"secret"}`, want: `{}`},
		{name: "dotted key is dropped even inside a whole subtree", fields: []string{"a"},
			in: `{"a":{"x.y":1,"x":{"y":2},"arr":[{"p.q":3,"p":4}]}}`, want: `{"a":{"x":{"y":2},"arr":[{"p":4}]}}`},
		{name: "empty keys are dropped", fields: []string{"a"},
			in: `{"":1,"a":{"":2,"b":3}}`, want: `{"a":{"b":3}}`},
		{name: "keys are re-encoded canonically", fields: []string{"q\"k", "n\nk", "u\u00e9"},
			in: `{"q\"k":1,"n\nk":2,"u\u00e9":3,"u\u00c9":4}`, want: `{"q\"k":1,"n\nk":2,"ué":3}`},
		{name: "html is not escaped", fields: []string{"<a>&"},
			in: `{"<a>&":"<b>&amp;"}`, want: `{"<a>&":"<b>&amp;"}`},
	})
}

func TestProjectValues(t *testing.T) {
	runCases(t, []projCase{
		{name: "numbers are passed through as written", fields: []string{"n"},
			in:   `{"n":[0,-0,1.0,1.50,1e400,-2.5E-10,12345678901234567890123456789,0.1000000000000000000001]}`,
			want: `{"n":[0,-0,1.0,1.50,1e400,-2.5E-10,12345678901234567890123456789,0.1000000000000000000001]}`},
		{name: "strings are re-encoded", fields: []string{"s"},
			in:   `{"s":["\u00e9\/x","\u0000\u001f\b\f\n\r\t","\u2028\u2029","\ud83d\ude00","\"\\"]}`,
			want: "{\"s\":[\"é/x\",\"\\u0000\\u001f\\b\\f\\n\\r\\t\",\"\\u2028\\u2029\",\"😀\",\"\\\"\\\\\"]}"},
		{name: "invalid UTF-8 becomes U+FFFD", fields: []string{"s"},
			in: "{\"s\":\"a\xffb\"}", want: `{"s":"a` + "\ufffd" + `b"}`},
	})
}

func TestProjectDuplicateKeys(t *testing.T) {
	runCases(t, []projCase{
		{name: "top level", fields: []string{"name"}, in: `{"name":"A","name":"B"}`, err: ErrDuplicateKey},
		{name: "after unescaping", fields: []string{"name"}, in: `{"name":1,"\u006eame":2}`, err: ErrDuplicateKey},
		{name: "ungranted duplicate", fields: []string{"fullName"}, in: `{"fullName":"A","religion":"01","religion":"02"}`, err: ErrDuplicateKey},
		{name: "at depth 5 in an ungranted subtree", fields: []string{"fullName"},
			in: `{"fullName":"A","x":{"y":{"z":{"w":{"k":1,"k":2}}}}}`, err: ErrDuplicateKey},
		{name: "at depth 5 in a granted subtree", fields: []string{"x"},
			in: `{"x":{"y":{"z":{"w":{"k":1,"\u006b":2}}}}}`, err: ErrDuplicateKey},
		{name: "inside an array element", fields: []string{"r.n"},
			in: `{"r":[{"n":1},{"n":1,"m":0,"n":2}]}`, err: ErrDuplicateKey},
		{name: "in a large object", fields: []string{"k0"},
			in: `{"k0":0,"k1":1,"k2":2,"k3":3,"k4":4,"k5":5,"k6":6,"k7":7,"k8":8,"k9":9,"k10":10,"k11":11,"k\u0035":12}`, err: ErrDuplicateKey},
		{name: "dotted duplicate", fields: []string{"a"}, in: `{"a.b":1,"a.b":2}`, err: ErrDuplicateKey},
		{name: "empty duplicate", fields: []string{"a"}, in: `{"":1,"":2}`, err: ErrDuplicateKey},
		{name: "in the second record of an array", fields: []string{"a"}, in: `[{"a":1},{"b":1,"b":2}]`, err: ErrDuplicateKey},
		{name: "equal keys in different objects are fine", fields: []string{"a", "b"},
			in: `{"a":{"k":1},"b":{"k":2}}`, want: `{"a":{"k":1},"b":{"k":2}}`},
	})
}

func TestProjectInvalidJSON(t *testing.T) {
	for _, in := range []string{
		``, `   `, `{`, `{"a":1`, `{"a":1}}`, `{"a":1} x`, `{"a":1}{"b":2}`, `{"a":1} []`,
		`[{"a":1} {"b":2}]`, `[{"a":1},]`, `[{"a":1}`, `[{"a":1}] ]`, `{"a" 1}`, `{"a":01}`,
		`{"a":"\x"}`, `{"a":1,}`, `{a:1}`, `{"a":tru}`, `{"a":"unterminated}`, "\xef\xbb\xbf{}", `{"a":NaN}`,
	} {
		t.Run(fmt.Sprintf("%q", in), func(t *testing.T) {
			got, _, err := run(t, []string{"a", "b"}, nil, in, Options{})
			if !errors.Is(err, ErrInvalidJSON) {
				t.Fatalf("error = %v; want ErrInvalidJSON", err)
			}
			if !strings.HasPrefix(strings.TrimSpace(in), "[") && got != "" {
				t.Fatalf("wrote %q before failing", got)
			}
		})
	}
}

func TestProjectErrorsNameNoData(t *testing.T) {
	for _, in := range []string{
		`{"secretkey":1,"secretkey":2}`, `{"a":"secretvalue`, `{"a":secretvalue}`, `{"secretkey":1} secretvalue`,
		`[{"secretkey":1},"secretvalue"]`, `{"a":"\Secret"}`,
	} {
		_, _, err := run(t, []string{"a"}, nil, in, Options{})
		if err == nil {
			t.Fatalf("%s: no error", in)
		}
		if msg := strings.ToLower(err.Error()); strings.Contains(msg, "secret") || strings.Contains(msg, "'s'") {
			t.Errorf("error for %s quotes the input: %v", in, err)
		}
	}
}

func TestProjectMaxDepth(t *testing.T) {
	nest := func(n int) string { // n nested objects: depth n
		return strings.Repeat(`{"a":`, n-1) + `{}` + strings.Repeat(`}`, n-1)
	}
	if _, _, err := run(t, []string{"a"}, nil, nest(64), Options{}); err != nil {
		t.Fatalf("depth 64: %v", err)
	}
	if _, _, err := run(t, []string{"a"}, nil, nest(65), Options{}); !errors.Is(err, ErrTooDeep) {
		t.Fatalf("depth 65: %v; want ErrTooDeep", err)
	}
	if _, _, err := run(t, []string{"a"}, nil, nest(3), Options{MaxDepth: 2}); !errors.Is(err, ErrTooDeep) {
		t.Fatalf("depth 3 with MaxDepth 2: %v; want ErrTooDeep", err)
	}
	// Arrays count, and so does the top-level array around records.
	if _, _, err := run(t, []string{"a"}, nil, `[`+nest(64)+`]`, Options{}); !errors.Is(err, ErrTooDeep) {
		t.Fatalf("record of depth 64 in an array: %v; want ErrTooDeep", err)
	}
	deepArray := `{"a":` + strings.Repeat("[", 70) + strings.Repeat("]", 70) + `}`
	if _, _, err := run(t, []string{"a"}, nil, deepArray, Options{}); !errors.Is(err, ErrTooDeep) {
		t.Fatalf("deep array: %v; want ErrTooDeep", err)
	}
	// Hostile depth far beyond the bound fails fast, without recursing.
	hostile := strings.Repeat("[", 1<<20)
	if _, _, err := run(t, []string{"a"}, nil, `{"a":`+hostile, Options{}); !errors.Is(err, ErrTooDeep) {
		t.Fatalf("hostile depth: %v; want ErrTooDeep", err)
	}
}

func TestProjectMaxBytes(t *testing.T) {
	in := `{"a":"0123456789"}` // 18 bytes
	if got, st, err := run(t, []string{"a"}, nil, in, Options{MaxBytes: 18}); err != nil || got != in || st.BytesIn != 18 {
		t.Fatalf("at the limit: %q %+v %v", got, st, err)
	}
	if _, _, err := run(t, []string{"a"}, nil, in, Options{MaxBytes: 17}); !errors.Is(err, ErrTooLarge) {
		t.Fatalf("over the limit: %v; want ErrTooLarge", err)
	}
	if _, _, err := run(t, []string{"a"}, nil, in+"   ", Options{MaxBytes: 18}); !errors.Is(err, ErrTooLarge) {
		t.Fatalf("trailing space over the limit: %v; want ErrTooLarge", err)
	}
	// The default bound, and no bound, on input that costs no memory.
	long := func() io.Reader { return io.MultiReader(&spaces{n: DefaultMaxBytes}, strings.NewReader(in)) }
	if _, _, err := run2(t, []string{"a"}, long(), Options{}); !errors.Is(err, ErrTooLarge) {
		t.Fatalf("over the default limit: %v; want ErrTooLarge", err)
	}
	if got, _, err := run2(t, []string{"a"}, long(), Options{MaxBytes: -1}); err != nil || got != in {
		t.Fatalf("no limit: %q %v", got, err)
	}
}

// spaces reads as n spaces.
type spaces struct{ n int }

func (s *spaces) Read(p []byte) (int, error) {
	if s.n == 0 {
		return 0, io.EOF
	}
	p = p[:min(len(p), s.n)]
	for i := range p {
		p[i] = ' '
	}
	s.n -= len(p)
	return len(p), nil
}

// run2 is run with a reader.
func run2(t testing.TB, fields []string, src io.Reader, opts Options) (string, Stats, error) {
	t.Helper()
	p, err := NewPlan(fields, nil, nil)
	if err != nil {
		t.Fatal(err)
	}
	var out bytes.Buffer
	st, err := p.Project(&out, src, opts)
	return out.String(), st, err
}

func TestProjectStats(t *testing.T) {
	in := `[{"fullName":"A","personalId":"001099012345","religion":"01","relatives":[{"fullName":"B","x":1}]},{"fullName":"C"}]`
	got, st, err := run(t, []string{"fullName", "personalId", "relatives.fullName"},
		map[string]catalog.Mask{"personalId": catalog.MaskPartial}, in, Options{})
	if err != nil {
		t.Fatal(err)
	}
	want := Stats{Records: 2, Dropped: 2, Masked: 1, BytesIn: int64(len(in)), BytesOut: int64(len(got))}
	if st != want {
		t.Fatalf("stats = %+v; want %+v", st, want)
	}
}

func TestProjectValidateAndKeep(t *testing.T) {
	in := `[{"id":"1","province":"01","name":"A"},{"id":"2","province":"79","name":"B"},{"id":"3","province":"01","name":"C"}]`
	var seen []string
	opts := Options{
		Validate: func(rec any) error {
			seen = append(seen, rec.(map[string]any)["province"].(string))
			return nil
		},
		// The row scope decides on a field the consumer is not granted.
		Keep: func(rec any) bool { return rec.(map[string]any)["province"] == "01" },
	}
	got, st, err := run(t, []string{"id", "name"}, nil, in, opts)
	if err != nil {
		t.Fatal(err)
	}
	if want := `[{"id":"1","name":"A"},{"id":"3","name":"C"}]`; got != want {
		t.Fatalf("got %s; want %s", got, want)
	}
	if st.Records != 2 || st.Filtered != 1 || len(seen) != 3 {
		t.Fatalf("stats %+v, validated %v", st, seen)
	}

	// Everything filtered: still an array.
	got, _, err = run(t, []string{"id"}, nil, in, Options{Keep: func(any) bool { return false }})
	if err != nil || got != "[]" {
		t.Fatalf("all filtered: %q %v", got, err)
	}
	// A single record filtered: no output at all, the caller decides.
	got, st, err = run(t, []string{"id"}, nil, `{"id":"1"}`, Options{Keep: func(any) bool { return false }})
	if err != nil || got != "" || st.Filtered != 1 || st.Records != 0 {
		t.Fatalf("single filtered: %q %+v %v", got, st, err)
	}

	// A validation failure stops everything and wraps the validator's error.
	bad := errors.New("bad record")
	got, _, err = run(t, []string{"id"}, nil, `{"id":"1"}`, Options{Validate: func(any) error { return bad }})
	if !errors.Is(err, ErrInvalidRecord) || !errors.Is(err, bad) || got != "" {
		t.Fatalf("invalid single record: %q %v", got, err)
	}
	_, _, err = run(t, []string{"id"}, nil, in, Options{Validate: func(rec any) error {
		if rec.(map[string]any)["id"] == "2" {
			return bad
		}
		return nil
	}})
	if !errors.Is(err, ErrInvalidRecord) || !strings.Contains(err.Error(), "record 1") {
		t.Fatalf("invalid second record: %v", err)
	}

	// Validate and Keep see numbers as written.
	_, _, err = run(t, []string{"n"}, nil, `{"n":1.50}`, Options{Validate: func(rec any) error {
		if n := rec.(map[string]any)["n"]; n != json.Number("1.50") {
			return fmt.Errorf("n = %#v", n)
		}
		return nil
	}})
	if err != nil {
		t.Fatal(err)
	}
}

// TestProjectNothingOfAFailingRecordIsWritten checks the streaming contract:
// records before the failing one may be written, nothing of it or after it.
func TestProjectNothingOfAFailingRecordIsWritten(t *testing.T) {
	in := `[{"a":"first"},{"a":"second","b":1,"b":2},{"a":"third"}]`
	got, _, err := run(t, []string{"a"}, nil, in, Options{})
	if !errors.Is(err, ErrDuplicateKey) {
		t.Fatalf("error = %v", err)
	}
	if got != `[{"a":"first"}` {
		t.Fatalf("partial output %q", got)
	}
}

func TestProjectSourceAndSinkErrors(t *testing.T) {
	p, err := NewPlan([]string{"a"}, nil, nil)
	if err != nil {
		t.Fatal(err)
	}
	broken := errors.New("connection reset")
	src := io.MultiReader(strings.NewReader(`{"a":`), iotest.ErrReader(broken))
	_, err = p.Project(io.Discard, src, Options{})
	if !errors.Is(err, broken) || errors.Is(err, ErrInvalidJSON) {
		t.Fatalf("read error: %v", err)
	}
	_, err = p.Project(failWriter{broken}, strings.NewReader(`{"a":1}`), Options{})
	if !errors.Is(err, broken) {
		t.Fatalf("write error: %v", err)
	}
	// A source that never makes progress is given up on.
	_, err = p.Project(io.Discard, stuckReader{}, Options{})
	if !errors.Is(err, io.ErrNoProgress) {
		t.Fatalf("stuck reader: %v", err)
	}
	// A source that times out half way is a read error too.
	_, err = p.Project(io.Discard, iotest.TimeoutReader(iotest.OneByteReader(strings.NewReader(`{"a":1}`))), Options{})
	if !errors.Is(err, iotest.ErrTimeout) {
		t.Fatalf("timeout: %v", err)
	}
	// Odd but valid readers work: one byte at a time, data with io.EOF,
	// short reads. Tokens are split at every possible place.
	in := `[{"a":1.5e3,"b":2},{"a":"\u00e9\ud83d\ude00 Nguyễn"},{"a":[true,false,null]}]`
	want := `[{"a":1.5e3},{"a":"é😀 Nguyễn"},{"a":[true,false,null]}]`
	for name, src := range map[string]func() io.Reader{
		"one byte":  func() io.Reader { return iotest.OneByteReader(strings.NewReader(in)) },
		"data+EOF":  func() io.Reader { return iotest.DataErrReader(strings.NewReader(in)) },
		"half":      func() io.Reader { return iotest.HalfReader(strings.NewReader(in)) },
		"one chunk": func() io.Reader { return strings.NewReader(in) },
	} {
		var out bytes.Buffer
		if _, err := p.Project(&out, src(), Options{}); err != nil || out.String() != want {
			t.Errorf("%s: %q %v", name, out.String(), err)
		}
	}
}

type stuckReader struct{}

func (stuckReader) Read([]byte) (int, error) { return 0, nil }

type failWriter struct{ err error }

func (w failWriter) Write([]byte) (int, error) { return 0, w.err }

func TestProjectConcurrentUseOfAPlan(t *testing.T) {
	p, err := NewPlan([]string{"a", "c.d"}, map[string]catalog.Mask{"a": catalog.MaskHash}, testMasker(t))
	if err != nil {
		t.Fatal(err)
	}
	in := `[{"a":"x","b":1,"c":{"d":2,"e":3}},{"a":"y"}]`
	var want bytes.Buffer
	if _, err := p.Project(&want, strings.NewReader(in), Options{}); err != nil {
		t.Fatal(err)
	}
	var wg sync.WaitGroup
	for range 8 {
		wg.Go(func() {
			for range 50 {
				var out bytes.Buffer
				if _, err := p.Project(&out, strings.NewReader(in), Options{}); err != nil || out.String() != want.String() {
					t.Errorf("concurrent: %q %v", out.String(), err)
					return
				}
			}
		})
	}
	wg.Wait()
}

func TestNewPlanRefusesBrokenDecisions(t *testing.T) {
	m := testMasker(t)
	for _, c := range []struct {
		fields []string
		masks  map[string]catalog.Mask
		m      *Masker
	}{
		{fields: []string{""}, m: m},
		{fields: []string{"a..b"}, m: m},
		{fields: []string{".a"}, m: m},
		{fields: []string{"a."}, m: m},
		{fields: []string{"a"}, masks: map[string]catalog.Mask{"a": "redact"}, m: m},
		{fields: []string{"a"}, masks: map[string]catalog.Mask{"a..b": catalog.MaskHash}, m: m},
		{fields: []string{"a"}, masks: map[string]catalog.Mask{"a": catalog.MaskHash}},
		{fields: []string{"a"}, masks: map[string]catalog.Mask{"a": catalog.MaskPartial}},
	} {
		if _, err := NewPlan(c.fields, c.masks, c.m); err == nil {
			t.Errorf("NewPlan(%q, %v) accepted", c.fields, c.masks)
		}
	}
	// nullify and no mask need no key.
	if _, err := NewPlan([]string{"a"}, map[string]catalog.Mask{"a": catalog.MaskNullify, "b": catalog.MaskNone}, nil); err != nil {
		t.Errorf("nullify without a Masker: %v", err)
	}
}
