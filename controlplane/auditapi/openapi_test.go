package auditapi_test

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"math"
	"math/big"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/getkin/kin-openapi/openapi3"
	"github.com/getkin/kin-openapi/openapi3filter"
	"github.com/getkin/kin-openapi/routers"
	"github.com/getkin/kin-openapi/routers/gorillamux"
	"go.yaml.in/yaml/v3"

	"github.com/lienthong/lienthong/audit/index"
	"github.com/lienthong/lienthong/audit/ship"
	"github.com/lienthong/lienthong/catalog"
	"github.com/lienthong/lienthong/controlplane/api"
	"github.com/lienthong/lienthong/controlplane/auditapi"
	"github.com/lienthong/lienthong/controlplane/client"
)

func init() {
	// The export streams JSON lines; the document types it as text.
	openapi3filter.RegisterBodyDecoder("application/jsonl", openapi3filter.FileBodyDecoder)
}

// documented holds every request and response of the tests to the
// management API's OpenAPI document.
type documented struct {
	t      *testing.T
	next   http.RoundTripper
	router routers.Router
}

func newDocumented(t *testing.T, serverURL string, next http.RoundTripper) *documented {
	t.Helper()
	doc, err := openapi3.NewLoader().LoadFromData(api.OpenAPIDocument())
	if err != nil {
		t.Fatal(err)
	}
	doc.Servers = openapi3.Servers{{URL: serverURL}}
	router, err := gorillamux.NewRouter(doc)
	if err != nil {
		t.Fatal(err)
	}
	return &documented{t: t, next: next, router: router}
}

func (d *documented) RoundTrip(req *http.Request) (*http.Response, error) {
	route, params, err := d.router.FindRoute(req)
	if err != nil {
		d.t.Errorf("%s %s is not in the OpenAPI document: %v", req.Method, req.URL.Path, err)
		return d.next.RoundTrip(req)
	}
	opts := &openapi3filter.Options{AuthenticationFunc: openapi3filter.NoopAuthenticationFunc, MultiError: true}
	in := &openapi3filter.RequestValidationInput{Request: req, PathParams: params, Route: route, Options: opts}
	var body []byte
	if req.Body != nil {
		body, _ = io.ReadAll(req.Body)
		req.Body = io.NopCloser(bytes.NewReader(body))
	}
	// Requests that are wrong on purpose (a personal ID in a URL) are not checked.
	if !strings.Contains(req.URL.RawQuery, "personalId") && !strings.Contains(req.URL.RawQuery, "cursor=bm9wZQ") {
		if err := openapi3filter.ValidateRequest(req.Context(), in); err != nil {
			d.t.Errorf("request %s %s does not match the document: %v", req.Method, req.URL.Path, err)
		}
	}
	req.Body = io.NopCloser(bytes.NewReader(body))
	resp, err := d.next.RoundTrip(req)
	if err != nil {
		return nil, err
	}
	respBody, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	resp.Body = io.NopCloser(bytes.NewReader(respBody))
	rin := &openapi3filter.ResponseValidationInput{RequestValidationInput: in, Status: resp.StatusCode, Header: resp.Header,
		Body: io.NopCloser(bytes.NewReader(respBody)), Options: opts}
	if err := openapi3filter.ValidateResponse(req.Context(), rin); err != nil {
		d.t.Errorf("response %d to %s %s does not match the document: %v", resp.StatusCode, req.Method, req.URL.Path, err)
	}
	return resp, nil
}

func TestEveryAuditRouteIsDocumented(t *testing.T) {
	doc, err := openapi3.NewLoader().LoadFromData(api.OpenAPIDocument())
	if err != nil {
		t.Fatal(err)
	}
	if err := doc.Validate(context.Background()); err != nil {
		t.Fatal(err)
	}
	doc.Servers = openapi3.Servers{{URL: "https://cp.example"}}
	router, err := gorillamux.NewRouter(doc)
	if err != nil {
		t.Fatal(err)
	}
	routes := auditapi.New(nil, index.SubjectKey{}, nil, nil).Routes()
	patterns := []string{"GET /v1/citizen/disclosures"}
	for _, r := range routes {
		patterns = append(patterns, r.Pattern)
	}
	for _, p := range patterns {
		method, path, _ := strings.Cut(p, " ")
		req, _ := http.NewRequest(method, "https://cp.example"+strings.ReplaceAll(path, "{gateway}", "VN:GOV:000.00.00.G01:GW"), nil)
		if _, _, err := router.FindRoute(req); err != nil {
			t.Errorf("route %s is not in openapi.yaml", p)
		}
	}
}

// TestDocumentBoundsTheLogHead reads from openapi.yaml (numbers kept
// exact) the range of the log head a gateway reports in the
// X-Lt-Audit-Log-Head header and in PUT .../head: 1 to math.MaxInt64, the
// seqs the index can store. The document as served is JSON made through
// float64, where math.MaxInt64 is 2^63: there the bound must still read
// "below 2^63". The server takes both ends and refuses one past each, in
// both places (through a plain client: a validator reading numbers as
// float64 cannot tell math.MaxInt64 from 2^63).
func TestDocumentBoundsTheLogHead(t *testing.T) {
	raw, err := os.ReadFile(filepath.Join("..", "api", "openapi.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	var source any
	if err := yaml.Unmarshal(raw, &source); err != nil {
		t.Fatal(err)
	}
	var served any
	if err := json.Unmarshal(api.OpenAPIDocument(), &served); err != nil {
		t.Fatal(err)
	}
	headerSchema := func(doc any) map[string]any {
		for _, p := range dig(t, doc, "paths", "/v1/audit/gateways/{gateway}/entries", "post", "parameters").([]any) {
			if p := p.(map[string]any); p["name"] == ship.HeadHeader {
				return p["schema"].(map[string]any)
			}
		}
		t.Fatalf("no %s parameter", ship.HeadHeader)
		return nil
	}
	bodySchema := func(doc any) map[string]any {
		return dig(t, doc, "paths", "/v1/audit/gateways/{gateway}/head", "put", "requestBody", "content", "application/json",
			"schema", "properties", "head").(map[string]any)
	}
	lo, hi := integerRange(t, headerSchema(source))
	if blo, bhi := integerRange(t, bodySchema(source)); blo.Cmp(lo) != 0 || bhi.Cmp(hi) != 0 {
		t.Errorf("the header allows %v..%v, the body %v..%v", lo, hi, blo, bhi)
	}
	if lo.Cmp(big.NewInt(1)) != 0 || hi.Cmp(big.NewInt(math.MaxInt64)) != 0 {
		t.Errorf("the document allows heads %v..%v, the server 1..%d", lo, hi, int64(math.MaxInt64))
	}
	for _, s := range []map[string]any{headerSchema(served), bodySchema(served)} {
		if s["maximum"] != math.Exp2(63) || s["exclusiveMaximum"] != true {
			t.Errorf("served, the bound reads maximum %v exclusive %v, not below 2^63", s["maximum"], s["exclusiveMaximum"])
		}
	}

	f := newFixture(t)
	ctx := context.Background()
	gwToken, err := f.admin.CreateToken(ctx, client.NewToken{Name: "mps gateway", Role: catalog.RoleMemberAdmin, Member: mps})
	if err != nil {
		t.Fatal(err)
	}
	plain := client.NewWithHTTP(f.srv.URL, gwToken.Token, f.srv.Client())
	one := big.NewInt(1)
	for _, c := range []struct {
		head *big.Int
		ok   bool
	}{{lo, true}, {hi, true}, {new(big.Int).Sub(lo, one), false}, {new(big.Int).Add(hi, one), false}} {
		err := plain.Do(ctx, "PUT", "/v1/audit/gateways/"+gwMPS+"/head", map[string]json.Number{"head": json.Number(c.head.String())}, nil)
		if (err == nil) != c.ok {
			t.Errorf("PUT head %v: %v, want taken %v", c.head, err, c.ok)
		}
		req, _ := http.NewRequestWithContext(ctx, "POST", f.srv.URL+"/v1/audit/gateways/"+gwMPS+"/entries", strings.NewReader(`{"entries":[]}`))
		req.Header.Set("Authorization", "Bearer "+gwToken.Token)
		req.Header.Set("Content-Type", "application/json")
		req.Header.Set(ship.HeadHeader, c.head.String())
		resp, err := f.srv.Client().Do(req)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if (resp.StatusCode == http.StatusOK) != c.ok || (!c.ok && resp.StatusCode != http.StatusBadRequest) {
			t.Errorf("a shipment with %s %v: %d, want taken %v", ship.HeadHeader, c.head, resp.StatusCode, c.ok)
		}
	}
}

// dig walks a decoded JSON document along keys.
func dig(t *testing.T, v any, keys ...string) any {
	t.Helper()
	for _, k := range keys {
		m, ok := v.(map[string]any)
		if !ok || m[k] == nil {
			t.Fatalf("the document has no %s (path %v)", k, keys)
		}
		v = m[k]
	}
	return v
}

// integerRange is the smallest and largest integer a schema decoded from
// YAML allows (OpenAPI 3.0: exclusive bounds are flags).
func integerRange(t *testing.T, s map[string]any) (lo, hi *big.Int) {
	t.Helper()
	if s["type"] != "integer" {
		t.Fatalf("not an integer schema: %v", s)
	}
	bound := func(key, exclusive string, step int64) *big.Int {
		n, ok := s[key]
		if !ok {
			t.Fatalf("the schema has no %s: %v", key, s)
		}
		b, ok := new(big.Int).SetString(fmt.Sprint(n), 10)
		if !ok {
			t.Fatalf("%s %v is not an integer", key, n)
		}
		if s[exclusive] == true {
			b.Add(b, big.NewInt(step))
		}
		return b
	}
	return bound("minimum", "exclusiveMinimum", 1), bound("maximum", "exclusiveMaximum", -1)
}
