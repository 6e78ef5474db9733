package auditapi_test

import (
	"bytes"
	"context"
	"io"
	"net/http"
	"strings"
	"testing"

	"github.com/getkin/kin-openapi/openapi3"
	"github.com/getkin/kin-openapi/openapi3filter"
	"github.com/getkin/kin-openapi/routers"
	"github.com/getkin/kin-openapi/routers/gorillamux"

	"github.com/lienthong/lienthong/audit/index"
	"github.com/lienthong/lienthong/controlplane/api"
	"github.com/lienthong/lienthong/controlplane/auditapi"
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
