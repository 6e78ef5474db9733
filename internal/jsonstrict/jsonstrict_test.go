package jsonstrict_test

import (
	"encoding/json"
	"fmt"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/lienthong/lienthong/internal/jsonstrict"
)

type duration struct{ time.Duration }

func (d *duration) UnmarshalJSON(b []byte) error {
	var s string
	if err := json.Unmarshal(b, &s); err != nil {
		return fmt.Errorf("duration must be a string such as \"30s\"")
	}
	v, err := time.ParseDuration(s)
	d.Duration = v
	return err
}

type backend struct {
	Path string `json:"path"`
	REST *struct {
		BaseURL string   `json:"baseUrl"`
		Timeout duration `json:"timeout"`
	} `json:"rest,omitempty"`
}

type config struct {
	Member       string   `json:"member"`
	MaxStaleness duration `json:"maxStaleness,omitempty"`
	RateLimit    struct {
		PerSecond float64 `json:"perSecond"`
	} `json:"rateLimit"`
	Backends map[string]backend `json:"backends"`
	Hosts    []string           `json:"hosts"`
}

func TestDecodeRefusesNamingThePath(t *testing.T) {
	for _, tc := range []struct {
		name, doc string
		want      []string
	}{
		{"typo", `{"member":"G01","maxStalness":"5m"}`, []string{"maxStalness: unknown key"}},
		{"case variant", `{"Member":"G01"}`, []string{"Member: unknown key"}},
		{"nested typo", `{"backends":{"a/b":{"rest":{"baseUrl":"x","timout":"1s"}}}}`, []string{`backends["a/b"].rest.timout: unknown key`}},
		{"bad duration", `{"backends":{"a/b":{"rest":{"timeout":"soon"}}}}`, []string{`backends["a/b"].rest.timeout:`}},
		{"wrong type", `{"rateLimit":{"perSecond":"fast"}}`, []string{"rateLimit.perSecond: want a number, not a JSON string"}},
		{"duplicate", `{"member":"G01","member":"G02"}`, []string{"/member: key given twice"}},
		{"duplicate in another case, deep", `{"backends":{"a/b":{"rest":{"timeout":"1s","Timeout":"2s"}}}}`, []string{"/backends/a~1b/rest/Timeout: key given twice"}},
		{"not an object", `{"rateLimit":[1]}`, []string{"rateLimit: want an object"}},
		{"list item", `{"hosts":["a",2]}`, []string{"hosts[1]: want a string"}},
		{"two errors", `{"a":1,"b":2}`, []string{"a: unknown key", "b: unknown key"}},
		{"trailing value", `{} {}`, []string{"more than one JSON value"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var c config
			err := jsonstrict.Decode([]byte(tc.doc), &c)
			if err == nil {
				t.Fatalf("accepted %s", tc.doc)
			}
			for _, w := range tc.want {
				if !strings.Contains(err.Error(), w) {
					t.Errorf("error %q does not say %q", err, w)
				}
			}
		})
	}
}

func TestDecodeAcceptsAGoodDocument(t *testing.T) {
	var c config
	doc := `{"member":"G01","maxStaleness":"5m","rateLimit":{"perSecond":2.5},"hosts":["a"],
		"backends":{"a/b":{"path":"p","rest":{"baseUrl":"http://x","timeout":"1s"}},"c/d":{"path":"q","rest":null}}}`
	if err := jsonstrict.Decode([]byte(doc), &c); err != nil {
		t.Fatal(err)
	}
	if c.Member != "G01" || c.MaxStaleness.Duration != 5*time.Minute || c.RateLimit.PerSecond != 2.5 ||
		c.Backends["a/b"].REST.Timeout.Duration != time.Second || c.Backends["c/d"].REST != nil || c.Hosts[0] != "a" {
		t.Fatalf("decoded %+v", c)
	}
}

func FuzzDecode(f *testing.F) {
	f.Add(`{"member":"G01","backends":{"a":{"rest":{"timeout":"1s"}}}}`)
	f.Add(`{"hosts":[1,"a",null],"rateLimit":{"perSecond":1e309}}`)
	// Whatever the strict decoder accepts, encoding/json accepts too and
	// decodes to the same value: strictness only ever refuses.
	f.Fuzz(func(t *testing.T, doc string) {
		var strict, loose config
		if jsonstrict.Decode([]byte(doc), &strict) != nil {
			return
		}
		if err := json.Unmarshal([]byte(doc), &loose); err != nil {
			t.Fatalf("strict accepted what encoding/json refuses (%v): %q", err, doc)
		}
		if !reflect.DeepEqual(strict, loose) {
			t.Fatalf("decoded differently from encoding/json: %q\nstrict %+v\nloose  %+v", doc, strict, loose)
		}
	})
}
