package projection

import (
	"bytes"
	"encoding/json"
	"errors"
	"reflect"
	"strings"
	"sync"
	"testing"

	"github.com/lienthong/lienthong/catalog"
)

// FuzzProjectNeverLeaks feeds plans compiled against the property's schema
// (leakFields) arbitrary grants and backend bodies, and checks invariant 1
// with the oracle of oracle_test.go: encoding/json decodes the input and
// the output, a token walker looks for duplicate keys, and the oracle says
// what the output must be, or that the record must be refused. Every
// declared path is also claimed in verify mode against the plan.
//
// grantSpec is a comma-separated list of entries: "path" grants a path,
// "path=hash" (partial, nullify) grants it masked, "~path=hash" only masks.
// TestBenchLeakcheck runs the same check over generated pairs.
func FuzzProjectNeverLeaks(f *testing.F) {
	f.Add("fullName,permanentResidence.provinceCode,relatives.fullName", []byte(record30))
	f.Add("permanentResidence,relatives", []byte(`{"permanentResidence":{"religion":"x","Ethnicity":"y","provinceCode":"79"},"relatives":[{"fullName":"a","health":"z"}]}`))
	f.Add("father", []byte(`{"father":{"\u0066ullName":"x","\u0065thnicity":"y"}}`))
	f.Add("father", []byte(`{"father":{"fullName":"x","\u0066ullName":"y"}}`))
	f.Add("name", []byte(`{"name":1,"\u006eame":2}`))
	f.Add("a.b", []byte(`{"a.b":"secret","a":{"b":1}}`))
	f.Add("sex=nullify,personalId=hash,phoneNumber=partial,permanentResidence,~permanentResidence.wardCode=partial", []byte(record30))
	s := leakSchema(f)
	masker := testMasker(f)
	f.Fuzz(func(t *testing.T, grantSpec string, body []byte) {
		c := leakCase{grantSpec: grantSpec, body: body, claim: "*", decodeFirst: len(body)%2 == 1}
		if !json.Valid(body) {
			c.invalid = "invalid JSON"
		} else if c.dup = hasDuplicateKey(body); !c.dup {
			dec := json.NewDecoder(bytes.NewReader(body))
			dec.UseNumber()
			if err := dec.Decode(&c.truth); err != nil {
				c.invalid = err.Error()
			}
		}
		g := compileGrant(s, masker, grantSpec)
		if g == nil {
			return // a malformed grant is refused; nothing flows
		}
		if msg := checkLeak(g, &c); msg != "" {
			t.Fatalf("%s\n grant %q\n body  %q", msg, grantSpec, body)
		}
	})
}

var (
	leakSchemaOnce sync.Once
	leakSchemaV    *Schema
	leakSchemaErr  error
)

// leakSchema is the compiled schema of leakFields, shared by the tests.
func leakSchema(t testing.TB) *Schema {
	t.Helper()
	leakSchemaOnce.Do(func() { leakSchemaV, leakSchemaErr = NewSchema(leakFields) })
	if leakSchemaErr != nil {
		t.Fatal(leakSchemaErr)
	}
	return leakSchemaV
}

// parseGrantSpec reads the fuzzer's grant: see FuzzProjectNeverLeaks.
func parseGrantSpec(spec string) ([]string, map[string]catalog.Mask) {
	if spec == "" {
		return nil, nil
	}
	var fields []string
	masks := map[string]catalog.Mask{}
	for _, e := range strings.Split(spec, ",") {
		path, m, hasMask := cutLast(e, "=")
		mask := catalog.Mask(m)
		if !hasMask || (mask != catalog.MaskHash && mask != catalog.MaskPartial && mask != catalog.MaskNullify) {
			fields = append(fields, e)
			continue
		}
		if p, ok := strings.CutPrefix(path, "~"); ok {
			masks[p] = mask
			continue
		}
		fields = append(fields, path)
		masks[path] = mask
	}
	return fields, masks
}

func cutLast(s, sep string) (string, string, bool) {
	i := strings.LastIndex(s, sep)
	if i < 0 {
		return s, "", false
	}
	return s[:i], s[i+len(sep):], true
}

// hasDuplicateKey walks body's tokens and reports whether any object
// repeats a key (as decoded). Invalid JSON counts as no duplicate: it is
// refused anyway.
func hasDuplicateKey(body []byte) bool {
	dec := json.NewDecoder(bytes.NewReader(body))
	dec.UseNumber() // else 1e700 ends the walk with a range error
	type frame struct {
		keys     map[string]bool
		isObject bool
		wantKey  bool
	}
	var stack []*frame
	for {
		tok, err := dec.Token()
		if err != nil {
			return false
		}
		var top *frame
		if len(stack) > 0 {
			top = stack[len(stack)-1]
		}
		if top != nil && top.isObject && top.wantKey {
			if d, ok := tok.(json.Delim); ok && d == '}' {
				stack = stack[:len(stack)-1]
				continue
			}
			k := tok.(string)
			if top.keys[k] {
				return true
			}
			top.keys[k] = true
			top.wantKey = false
			continue
		}
		if top != nil && top.isObject {
			top.wantKey = true // this token is a value
		}
		switch tok {
		case json.Delim('{'):
			stack = append(stack, &frame{keys: map[string]bool{}, isObject: true, wantKey: true})
		case json.Delim('['):
			stack = append(stack, &frame{})
		case json.Delim(']'):
			stack = stack[:len(stack)-1]
		}
	}
}

// FuzzDecoderAgreesWithEncodingJSON checks the package's own JSON parser
// against encoding/json: the same inputs are valid, and a valid input
// without duplicate keys decodes to the same value — above all the same
// keys, since a key the filter reads differently from the consumer's parser
// is a key the grant did not decide on.
func FuzzDecoderAgreesWithEncodingJSON(f *testing.F) {
	for _, s := range []string{
		`{"a":"\ud83d\ude00","\u006eame":1}`, `"\ud83d"`, `"\ud83dx"`, `"\ud83d\u0041"`, `"\udc00\ud800"`,
		`"\ud83d\ud83d\ude00"`, `"\u00e9\u00E9\/\b\f\n\r\t\"\\"`, "\"a\xffb\xc3(\xed\xa0\x80\"", `"\u00"`, "\"\x01\"",
		`[-0.0e-0,1E+2,0,-1,1.5e300,1e999,01]`, `[1.]`, `[-]`, `[.5]`, `[1e]`, `[+1]`, `{"a":1,"a":2}`,
		`{"a" :{ "b" : [ true , false , null ] } }`, ` [ ] `, `{}`, `{"a":1,}`, `[1,]`, `[1 2]`, `{"a" 1}`,
		`nul`, `true false`, "\xef\xbb\xbf{}", `{"":{"":{"":[]}}}`,
	} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, body []byte) {
		var d decoder
		d.init(bytes.NewReader(body), 10000, -1)
		v, err := d.value(1)
		if err == nil {
			err = d.end()
		}
		switch {
		case !json.Valid(body):
			if err == nil {
				t.Fatalf("accepted invalid JSON %q", body)
			}
		case hasDuplicateKey(body):
			if !errors.Is(err, ErrDuplicateKey) {
				t.Fatalf("duplicate key in %q not reported: %v", body, err)
			}
		case err != nil:
			t.Fatalf("refused valid JSON %q: %v", body, err)
		default:
			dec := json.NewDecoder(bytes.NewReader(body))
			dec.UseNumber()
			var want any
			if err := dec.Decode(&want); err != nil {
				t.Fatal(err)
			}
			if got := toAny(&v); !reflect.DeepEqual(got, want) {
				t.Fatalf("%q decodes to %#v; encoding/json says %#v", body, got, want)
			}
		}
	})
}
