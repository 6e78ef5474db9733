package rest_test

import (
	"bytes"
	"compress/gzip"
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/sha256"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"math/big"
	"net"
	"net/http"
	"net/http/httptest"
	"net/url"
	"os"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/lienthong/lienthong/adapters"
	"github.com/lienthong/lienthong/adapters/rest"
	"github.com/lienthong/lienthong/catalog"
)

// testDocument describes the test backend: a list with two query
// parameters, a search, a record by personal id (with a path-level query
// parameter) and a free-form item path.
const testDocument = `
openapi: 3.0.3
info: {title: Test population, version: "1"}
paths:
  /citizens:
    get:
      operationId: listCitizens
      parameters:
        - {name: limit, in: query, schema: {type: integer}}
        - {name: province, in: query, schema: {type: string}}
      responses: {'200': {description: ok}}
  /citizens/search:
    get:
      operationId: searchCitizens
      parameters:
        - {name: name, in: query, schema: {type: string}}
      responses: {'200': {description: ok}}
  /citizens/{personalId}:
    parameters:
      - {name: lang, in: query, schema: {type: string}}
    get:
      operationId: getCitizen
      parameters:
        - {name: personalId, in: path, required: true, schema: {type: string, pattern: '^[0-9]{12}$'}}
      responses: {'200': {description: ok}}
  /items/{id}:
    get:
      operationId: getItem
      parameters:
        - {name: id, in: path, required: true, schema: {type: string}}
      responses: {'200': {description: ok}}
  /admin/{id}:
    post:
      operationId: notAGet
      parameters:
        - {name: id, in: path, required: true, schema: {type: string}}
      responses: {'200': {description: ok}}
`

func dataset(t *testing.T, doc []byte) *catalog.Dataset {
	t.Helper()
	sum := sha256.Sum256(doc)
	return &catalog.Dataset{
		System: "VN:GOV:000.00.00.G01:CSDLDC", Code: "population", Version: 1,
		Digest: hex.EncodeToString(sum[:]), Document: doc,
	}
}

// backend is a loopback HTTP server that records what reaches it.
type backend struct {
	srv      *httptest.Server
	hits     atomic.Int64
	newConns atomic.Int64

	mu       sync.Mutex
	requests []*http.Request
}

// newBackend starts a backend serving h under /api. stop is closed when
// the test ends, so handlers that stall can return.
func newBackend(t *testing.T, h func(w http.ResponseWriter, r *http.Request, n int64, stop <-chan struct{})) *backend {
	t.Helper()
	b := &backend{}
	stop := make(chan struct{})
	b.srv = httptest.NewUnstartedServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		n := b.hits.Add(1)
		b.mu.Lock()
		b.requests = append(b.requests, r.Clone(r.Context()))
		b.mu.Unlock()
		h(w, r, n, stop)
	}))
	b.srv.Config.ConnState = func(_ net.Conn, s http.ConnState) {
		if s == http.StateNew {
			b.newConns.Add(1)
		}
	}
	b.srv.Start()
	t.Cleanup(func() {
		close(stop)
		b.srv.Close()
	})
	return b
}

func (b *backend) last(t *testing.T) *http.Request {
	t.Helper()
	b.mu.Lock()
	defer b.mu.Unlock()
	if len(b.requests) == 0 {
		t.Fatal("no request reached the backend")
	}
	return b.requests[len(b.requests)-1]
}

func jsonOK(w http.ResponseWriter, body string) {
	w.Header().Set("Content-Type", "application/json")
	io.WriteString(w, body)
}

func newAdapter(t *testing.T, cfg rest.Config) *rest.Adapter {
	t.Helper()
	a, err := rest.New(cfg)
	if err != nil {
		t.Fatalf("New: %v", err)
	}
	t.Cleanup(a.Close)
	return a
}

// fetchAll fetches and reads the whole body.
func fetchAll(t *testing.T, a *rest.Adapter, req adapters.Request) ([]byte, error) {
	t.Helper()
	resp, err := a.Fetch(t.Context(), req)
	if err != nil {
		return nil, err
	}
	defer resp.Body.Close()
	if resp.Scoped {
		t.Error("REST responses must not claim to be row-scoped")
	}
	return io.ReadAll(resp.Body)
}

func TestNewValidatesConfig(t *testing.T) {
	tests := []struct {
		name string
		cfg  rest.Config
		want string
	}{
		{"relative URL", rest.Config{BaseURL: "/api"}, "scheme"},
		{"other scheme", rest.Config{BaseURL: "ftp://127.0.0.1/api"}, "scheme"},
		{"no host", rest.Config{BaseURL: "http:///api"}, "no host"},
		{"credentials", rest.Config{BaseURL: "http://u:p@127.0.0.1/api"}, "credentials"},
		{"query", rest.Config{BaseURL: "http://127.0.0.1/api?x=1"}, "query"},
		{"TLS over http", rest.Config{BaseURL: "http://127.0.0.1/api", TLS: &tls.Config{}}, "https"},
		{"negative timeout", rest.Config{BaseURL: "http://127.0.0.1", Timeout: -time.Second}, "negative"},
		{"negative limit", rest.Config{BaseURL: "http://127.0.0.1", MaxResponseBytes: -1}, "negative"},
		{"too many retries", rest.Config{BaseURL: "http://127.0.0.1", Retries: 99}, "retries"},
		{"bad header name", rest.Config{BaseURL: "http://127.0.0.1", Headers: map[string]string{"X Key": "v"}}, "token"},
		{"reserved header", rest.Config{BaseURL: "http://127.0.0.1", Headers: map[string]string{"host": "evil.example"}}, "cannot be configured"},
		{"header injection", rest.Config{BaseURL: "http://127.0.0.1", Headers: map[string]string{"X-Key": "v\r\nHost: evil"}}, "line break"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := rest.New(tt.cfg)
			if err == nil || !strings.Contains(err.Error(), tt.want) {
				t.Fatalf("New: got %v, want an error mentioning %q", err, tt.want)
			}
		})
	}
}

func TestFetchPaths(t *testing.T) {
	b := newBackend(t, func(w http.ResponseWriter, r *http.Request, _ int64, _ <-chan struct{}) { jsonOK(w, `{}`) })
	a := newAdapter(t, rest.Config{BaseURL: b.srv.URL + "/api/"})
	ds := dataset(t, []byte(testDocument))

	tests := []struct {
		path string
		want string // the request URI the backend sees; "" when refused
	}{
		{"citizens/079203001234", "/api/citizens/079203001234"},
		{"citizens", "/api/citizens"},
		{"citizens/search", "/api/citizens/search"},
		{"items/@evil.example", "/api/items/@evil.example"},
		{"items/evil.example:443", "/api/items/evil.example:443"},
		{"items/Nguyễn Văn An", ""}, // spaces are refused
		{"items/Nguyễn", "/api/items/Nguy%E1%BB%85n"},
		{"items/a&b=c", "/api/items/a&b=c"},

		{"", ""},
		{"../x", ""},
		{"..", ""},
		{"//evil", ""},
		{"//evil.example/citizens", ""},
		{"/citizens/079203001234", ""},
		{"citizens/079203001234/", ""},
		{"citizens//079203001234", ""},
		{"citizens/../admin/1", ""},
		{"citizens/./079203001234", ""},
		{"%2e%2e", ""},
		{"%2e%2e/%2e%2e/etc/passwd", ""},
		{"items/%2e%2e", ""},
		{"items/%252e%252e", ""},
		{"items/..%2f..%2fadmin", ""},
		{"items/..;", ""},
		{"citizens\\..\\admin", ""},
		{"http://evil.example/x", ""},
		{"citizens/079203001234?admin=1", ""},
		{"citizens/079203001234#frag", ""},
		{"items/a\x00b", ""},
		{"items/a\nb", ""},
		{"items/\xff", ""},
		{"admin/1", ""},                      // only POST is documented
		{"undocumented", ""},                 // no such path
		{"items/a/b", ""},                    // too many segments for the template
		{"citizens/07920300123", ""},         // 11 digits: the pattern refuses it
		{"citizens/1' OR '1'='1", ""},        // spaces and quotes
		{"citizens/1'OR'1'='1", ""},          // no spaces, still not 12 digits
		{strings.Repeat("a/", 40) + "a", ""}, // too many segments
		{"items/" + strings.Repeat("x", 3000), ""},
	}
	for _, tt := range tests {
		t.Run(fmt.Sprintf("%q", tt.path), func(t *testing.T) {
			before := b.hits.Load()
			body, err := fetchAll(t, a, adapters.Request{Dataset: ds, Path: tt.path})
			if tt.want == "" {
				if !errors.Is(err, adapters.ErrNotFound) || !errors.Is(err, rest.ErrInvalidPath) {
					t.Fatalf("Fetch(%q): got %v, want ErrInvalidPath and ErrNotFound", tt.path, err)
				}
				if b.hits.Load() != before {
					t.Fatalf("Fetch(%q) was refused but a request reached the backend", tt.path)
				}
				if len(tt.path) > 3 && strings.Contains(err.Error(), tt.path) {
					t.Errorf("the error repeats the path: %v", err)
				}
				return
			}
			if err != nil {
				t.Fatalf("Fetch(%q): %v", tt.path, err)
			}
			if string(body) != "{}" {
				t.Errorf("body %q", body)
			}
			r := b.last(t)
			if r.RequestURI != tt.want {
				t.Errorf("backend saw %q, want %q", r.RequestURI, tt.want)
			}
			if r.Host != b.srv.Listener.Addr().String() {
				t.Errorf("backend saw host %q", r.Host)
			}
		})
	}
}

// TestFetchPopulationDocument runs against the published population
// dataset's own document, which declares only the lookup by personal id.
func TestFetchPopulationDocument(t *testing.T) {
	doc, err := os.ReadFile("../../examples/population.yaml")
	if err != nil {
		t.Fatal(err)
	}
	b := newBackend(t, func(w http.ResponseWriter, r *http.Request, _ int64, _ <-chan struct{}) {
		jsonOK(w, `{"personalId":"079203001234"}`)
	})
	a := newAdapter(t, rest.Config{BaseURL: b.srv.URL})
	ds := dataset(t, doc)
	body, err := fetchAll(t, a, adapters.Request{Dataset: ds, Path: "citizens/079203001234", Query: url.Values{"x": {"1"}}})
	if err != nil {
		t.Fatal(err)
	}
	if string(body) != `{"personalId":"079203001234"}` {
		t.Errorf("body %s", body)
	}
	if got := b.last(t).RequestURI; got != "/citizens/079203001234" {
		t.Errorf("backend saw %q", got)
	}
	if _, err := fetchAll(t, a, adapters.Request{Dataset: ds, Path: "citizens"}); !errors.Is(err, rest.ErrInvalidPath) {
		t.Errorf("listing is not in the document; got %v", err)
	}
	if _, err := fetchAll(t, a, adapters.Request{Dataset: &catalog.Dataset{System: "s", Code: "c"}, Path: "citizens/079203001234"}); err == nil {
		t.Error("a dataset without a document was accepted")
	}
}

func TestFetchQueryAndHeaders(t *testing.T) {
	b := newBackend(t, func(w http.ResponseWriter, r *http.Request, _ int64, _ <-chan struct{}) { jsonOK(w, `[]`) })
	a := newAdapter(t, rest.Config{BaseURL: b.srv.URL + "/api", Headers: map[string]string{"X-Api-Key": "k1"}})
	ds := dataset(t, []byte(testDocument))

	tests := []struct {
		name  string
		path  string
		query url.Values
		want  string
	}{
		{"declared kept, unknown dropped", "citizens",
			url.Values{"limit": {"5"}, "province": {"01", "79"}, "debug": {"1"}, "fields": {"ethnicity"}, "LIMIT": {"9"}},
			"limit=5&province=01&province=79"},
		{"path-level parameter kept, other operation's dropped", "citizens/079203001234",
			url.Values{"lang": {"vi"}, "limit": {"5"}}, "lang=vi"},
		{"values are encoded", "citizens/search",
			url.Values{"name": {"Nguyễn Văn An&admin=1"}, "lang": {"vi"}}, "name=Nguy%E1%BB%85n+V%C4%83n+An%26admin%3D1"},
		{"nothing declared", "items/x", url.Values{"limit": {"5"}}, ""},
		{"no query", "citizens", nil, ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if _, err := fetchAll(t, a, adapters.Request{Dataset: ds, Path: tt.path, Query: tt.query}); err != nil {
				t.Fatal(err)
			}
			r := b.last(t)
			if r.URL.RawQuery != tt.want {
				t.Errorf("backend saw query %q, want %q", r.URL.RawQuery, tt.want)
			}
			if got := r.Header.Get("Accept"); got != "application/json" {
				t.Errorf("Accept %q", got)
			}
			if got := r.Header.Get("X-Api-Key"); got != "k1" {
				t.Errorf("X-Api-Key %q", got)
			}
			if r.Method != http.MethodGet {
				t.Errorf("method %s", r.Method)
			}
		})
	}
}

func TestFetchRetriesAndStatuses(t *testing.T) {
	ds := dataset(t, []byte(testDocument))
	tests := []struct {
		name     string
		retries  int
		statuses []int // answer n uses statuses[min(n, len-1)]
		wantErr  error
		wantHits int64
	}{
		{"503 twice then 200", 0, []int{503, 503, 200}, nil, 3},
		{"502 then 200", 0, []int{502, 200}, nil, 2},
		{"504 then 200", 0, []int{504, 200}, nil, 2},
		{"503 until retries run out", 0, []int{503}, adapters.ErrBackend, 3},
		{"three retries", 3, []int{503, 503, 503, 200}, nil, 4},
		{"retries disabled", -1, []int{503, 200}, adapters.ErrBackend, 1},
		{"400 is not retried", 0, []int{400, 200}, adapters.ErrBackend, 1},
		{"401 is not retried", 0, []int{401, 200}, adapters.ErrBackend, 1},
		{"404 is not found and not retried", 0, []int{404, 200}, adapters.ErrNotFound, 1},
		{"410 is not found", 0, []int{410, 200}, adapters.ErrNotFound, 1},
		{"500 is not retried", 0, []int{500, 200}, adapters.ErrBackend, 1},
		{"redirects are not followed", 0, []int{302, 200}, adapters.ErrBackend, 1},
		{"204 is not a record", 0, []int{204}, adapters.ErrBackend, 1},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			b := newBackend(t, func(w http.ResponseWriter, r *http.Request, n int64, _ <-chan struct{}) {
				status := tt.statuses[min(int(n)-1, len(tt.statuses)-1)]
				switch status {
				case 200:
					jsonOK(w, `{"ok":true}`)
				case 302:
					http.Redirect(w, r, "http://evil.example/steal", http.StatusFound)
				default:
					w.Header().Set("Content-Type", "application/json")
					w.WriteHeader(status)
					io.WriteString(w, `{"detail":"SECRET backend detail 079203001234"}`)
				}
			})
			a := newAdapter(t, rest.Config{BaseURL: b.srv.URL, Retries: tt.retries})
			body, err := fetchAll(t, a, adapters.Request{Dataset: ds, Path: "citizens/079203001234"})
			if tt.wantErr == nil {
				if err != nil || string(body) != `{"ok":true}` {
					t.Fatalf("got %q, %v", body, err)
				}
			} else {
				if !errors.Is(err, tt.wantErr) {
					t.Fatalf("got %v, want %v", err, tt.wantErr)
				}
				if strings.Contains(err.Error(), "SECRET") || strings.Contains(err.Error(), "079203001234") {
					t.Errorf("the error leaks the body or the record id: %v", err)
				}
			}
			if got := b.hits.Load(); got != tt.wantHits {
				t.Errorf("backend got %d requests, want %d", got, tt.wantHits)
			}
		})
	}
}

// TestFetchRetriesConnectionErrors drops the first connection without an
// answer, as a backend restarting would.
func TestFetchRetriesConnectionErrors(t *testing.T) {
	ds := dataset(t, []byte(testDocument))
	for _, tt := range []struct {
		name     string
		retries  int
		wantErr  error
		wantHits int64
	}{
		{"retried", 0, nil, 2},
		{"not retried when disabled", -1, adapters.ErrBackend, 1},
	} {
		t.Run(tt.name, func(t *testing.T) {
			b := newBackend(t, func(w http.ResponseWriter, r *http.Request, n int64, _ <-chan struct{}) {
				if n == 1 {
					conn, _, err := http.NewResponseController(w).Hijack()
					if err == nil {
						conn.Close()
					}
					return
				}
				jsonOK(w, `{}`)
			})
			a := newAdapter(t, rest.Config{BaseURL: b.srv.URL, Retries: tt.retries})
			_, err := fetchAll(t, a, adapters.Request{Dataset: ds, Path: "citizens/079203001234"})
			if tt.wantErr == nil && err != nil || tt.wantErr != nil && !errors.Is(err, tt.wantErr) {
				t.Fatalf("got %v, want %v", err, tt.wantErr)
			}
			if got := b.hits.Load(); got != tt.wantHits {
				t.Errorf("backend got %d requests, want %d", got, tt.wantHits)
			}
		})
	}
	t.Run("nothing listening", func(t *testing.T) {
		l, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		addr := l.Addr().String()
		l.Close()
		a := newAdapter(t, rest.Config{BaseURL: "http://" + addr})
		_, err = fetchAll(t, a, adapters.Request{Dataset: ds, Path: "citizens/079203001234"})
		if !errors.Is(err, adapters.ErrBackend) || !strings.Contains(err.Error(), "3 attempt") {
			t.Fatalf("got %v, want ErrBackend after 3 attempts", err)
		}
	})
}

func TestFetchTimeouts(t *testing.T) {
	ds := dataset(t, []byte(testDocument))
	const timeout = 150 * time.Millisecond
	tests := []struct {
		name        string
		handler     func(w http.ResponseWriter, r *http.Request, n int64, stop <-chan struct{})
		failOnFetch bool
	}{
		{"no headers in time", func(w http.ResponseWriter, r *http.Request, _ int64, stop <-chan struct{}) {
			select {
			case <-r.Context().Done():
			case <-stop:
			}
		}, true},
		{"body stalls", func(w http.ResponseWriter, r *http.Request, _ int64, stop <-chan struct{}) {
			w.Header().Set("Content-Type", "application/json")
			io.WriteString(w, `[{"personalId":`)
			http.NewResponseController(w).Flush()
			select {
			case <-r.Context().Done():
			case <-stop:
			}
		}, false},
		{"503 for longer than the timeout", func(w http.ResponseWriter, r *http.Request, _ int64, _ <-chan struct{}) {
			time.Sleep(60 * time.Millisecond)
			w.WriteHeader(503)
		}, true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			b := newBackend(t, tt.handler)
			a := newAdapter(t, rest.Config{BaseURL: b.srv.URL, Timeout: timeout, Retries: 10})
			start := time.Now()
			resp, err := a.Fetch(t.Context(), adapters.Request{Dataset: ds, Path: "citizens/079203001234"})
			if !tt.failOnFetch {
				if err != nil {
					t.Fatalf("Fetch: %v", err)
				}
				_, err = io.ReadAll(resp.Body)
				resp.Body.Close()
			}
			if !errors.Is(err, adapters.ErrTimeout) {
				t.Fatalf("got %v, want ErrTimeout", err)
			}
			if d := time.Since(start); d > timeout+2*time.Second {
				t.Errorf("took %v with a timeout of %v", d, timeout)
			}
		})
	}
	t.Run("caller's deadline", func(t *testing.T) {
		b := newBackend(t, tests[0].handler)
		a := newAdapter(t, rest.Config{BaseURL: b.srv.URL})
		ctx, cancel := context.WithTimeout(t.Context(), 100*time.Millisecond)
		defer cancel()
		_, err := a.Fetch(ctx, adapters.Request{Dataset: ds, Path: "citizens/079203001234"})
		if !errors.Is(err, adapters.ErrTimeout) {
			t.Fatalf("got %v, want ErrTimeout", err)
		}
	})
}

func TestFetchSizeLimit(t *testing.T) {
	ds := dataset(t, []byte(testDocument))
	const limit = 1024
	record := func(n int) string { return `"` + strings.Repeat("a", n-2) + `"` }
	tests := []struct {
		name        string
		handler     func(w http.ResponseWriter, r *http.Request)
		failOnFetch bool
		wantErr     error
	}{
		{"announced too large", func(w http.ResponseWriter, r *http.Request) {
			w.Header().Set("Content-Length", "4096")
			jsonOK(w, record(4096))
		}, true, adapters.ErrTooLarge},
		{"streamed too large", func(w http.ResponseWriter, r *http.Request) {
			w.Header().Set("Content-Type", "application/json")
			for range 8 {
				io.WriteString(w, strings.Repeat(" ", 512))
				http.NewResponseController(w).Flush()
			}
		}, false, adapters.ErrTooLarge},
		{"one byte over", func(w http.ResponseWriter, r *http.Request) {
			w.Header().Set("Content-Type", "application/json")
			io.WriteString(w, record(limit))
			http.NewResponseController(w).Flush()
			io.WriteString(w, " ")
		}, false, adapters.ErrTooLarge},
		{"exactly the limit", func(w http.ResponseWriter, r *http.Request) {
			w.Header().Set("Content-Type", "application/json")
			io.WriteString(w, record(limit))
		}, false, nil},
		{"compressed bomb", func(w http.ResponseWriter, r *http.Request) {
			if !strings.Contains(r.Header.Get("Accept-Encoding"), "gzip") {
				jsonOK(w, `{}`)
				return
			}
			var buf bytes.Buffer
			zw := gzip.NewWriter(&buf)
			zw.Write(bytes.Repeat([]byte(" "), 1<<20))
			zw.Close()
			w.Header().Set("Content-Type", "application/json")
			w.Header().Set("Content-Encoding", "gzip")
			w.Write(buf.Bytes())
		}, false, adapters.ErrTooLarge},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			b := newBackend(t, func(w http.ResponseWriter, r *http.Request, _ int64, _ <-chan struct{}) { tt.handler(w, r) })
			a := newAdapter(t, rest.Config{BaseURL: b.srv.URL, MaxResponseBytes: limit})
			resp, err := a.Fetch(t.Context(), adapters.Request{Dataset: ds, Path: "citizens/079203001234"})
			var body []byte
			if err == nil {
				if tt.failOnFetch {
					t.Error("Fetch accepted an announced oversize body")
				}
				body, err = io.ReadAll(resp.Body)
				resp.Body.Close()
			}
			if tt.wantErr == nil {
				if err != nil || len(body) != limit {
					t.Fatalf("got %d bytes, %v", len(body), err)
				}
				return
			}
			if !errors.Is(err, tt.wantErr) {
				t.Fatalf("got %v, want %v", err, tt.wantErr)
			}
			if len(body) > limit {
				t.Errorf("read %d bytes past the limit of %d", len(body), limit)
			}
		})
	}
}

func TestFetchContentType(t *testing.T) {
	ds := dataset(t, []byte(testDocument))
	tests := []struct {
		contentType string
		ok          bool
	}{
		{"application/json", true},
		{"application/json; charset=utf-8", true},
		{"Application/JSON", true},
		{"application/problem+json", true},
		{"text/html", false},
		{"text/plain; charset=utf-8", false},
		{"application/xml", false},
		{"application/jsonp", false},
		{"", false},
		{"application/json; charset", false},
	}
	for _, tt := range tests {
		t.Run(tt.contentType, func(t *testing.T) {
			b := newBackend(t, func(w http.ResponseWriter, r *http.Request, _ int64, _ <-chan struct{}) {
				w.Header()["Content-Type"] = []string{tt.contentType}
				io.WriteString(w, `<html>{}</html>`)
			})
			a := newAdapter(t, rest.Config{BaseURL: b.srv.URL})
			_, err := fetchAll(t, a, adapters.Request{Dataset: ds, Path: "citizens/079203001234"})
			if tt.ok && err != nil || !tt.ok && !errors.Is(err, adapters.ErrBackend) {
				t.Fatalf("content type %q: got %v, want ok=%v", tt.contentType, err, tt.ok)
			}
		})
	}
}

// TestFetchReusesConnections counts the TCP connections the backend
// accepts: sequential fetches share one, concurrent ones at most one each.
func TestFetchReusesConnections(t *testing.T) {
	ds := dataset(t, []byte(testDocument))
	b := newBackend(t, func(w http.ResponseWriter, r *http.Request, _ int64, _ <-chan struct{}) {
		jsonOK(w, `{"personalId":"079203001234","fullName":"Nguyễn Văn An"}`)
	})
	a := newAdapter(t, rest.Config{BaseURL: b.srv.URL})
	req := adapters.Request{Dataset: ds, Path: "citizens/079203001234"}
	for i := range 50 {
		if _, err := fetchAll(t, a, req); err != nil {
			t.Fatalf("fetch %d: %v", i, err)
		}
	}
	if got := b.newConns.Load(); got != 1 {
		t.Errorf("50 sequential fetches opened %d connections, want 1", got)
	}

	const workers = 8
	var wg sync.WaitGroup
	errs := make(chan error, workers*20)
	for range workers {
		wg.Go(func() {
			for range 20 {
				resp, err := a.Fetch(t.Context(), req)
				if err != nil {
					errs <- err
					return
				}
				_, err = io.Copy(io.Discard, resp.Body)
				resp.Body.Close()
				if err != nil {
					errs <- err
				}
			}
		})
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Fatal(err)
	}
	// 160 fetches without pooling would open about 160 connections. With it,
	// about one per worker: Go's transport may dial a spare when a request
	// races a connection going back to the pool, so allow twice that.
	if got := b.newConns.Load(); got > 2*workers+1 {
		t.Errorf("%d concurrent workers opened %d connections for %d fetches; want at most %d", workers, got, workers*20, 2*workers+1)
	}
	if got := b.hits.Load(); got != 50+workers*20 {
		t.Errorf("backend got %d requests", got)
	}
}

// TestFetchMutualTLS reaches a backend that requires a client certificate.
func TestFetchMutualTLS(t *testing.T) {
	ds := dataset(t, []byte(testDocument))
	clientCert, clientPool := selfSigned(t, "gateway.csdldc")
	srv := httptest.NewUnstartedServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if len(r.TLS.PeerCertificates) == 0 {
			http.Error(w, "no client certificate", http.StatusUnauthorized)
			return
		}
		jsonOK(w, fmt.Sprintf(`{"client":%q}`, r.TLS.PeerCertificates[0].Subject.CommonName))
	}))
	srv.TLS = &tls.Config{ClientAuth: tls.RequireAndVerifyClientCert, ClientCAs: clientPool}
	srv.StartTLS()
	t.Cleanup(srv.Close)
	serverPool := x509.NewCertPool()
	serverPool.AddCert(srv.Certificate())

	a := newAdapter(t, rest.Config{BaseURL: srv.URL, TLS: &tls.Config{RootCAs: serverPool, Certificates: []tls.Certificate{clientCert}}})
	body, err := fetchAll(t, a, adapters.Request{Dataset: ds, Path: "citizens/079203001234"})
	if err != nil || string(body) != `{"client":"gateway.csdldc"}` {
		t.Fatalf("got %s, %v", body, err)
	}

	noCert := newAdapter(t, rest.Config{BaseURL: srv.URL, TLS: &tls.Config{RootCAs: serverPool}, Retries: -1})
	if _, err := fetchAll(t, noCert, adapters.Request{Dataset: ds, Path: "citizens/079203001234"}); !errors.Is(err, adapters.ErrBackend) {
		t.Errorf("without a client certificate: got %v, want ErrBackend", err)
	}
	untrusted := newAdapter(t, rest.Config{BaseURL: srv.URL, TLS: &tls.Config{Certificates: []tls.Certificate{clientCert}}})
	if _, err := fetchAll(t, untrusted, adapters.Request{Dataset: ds, Path: "citizens/079203001234"}); !errors.Is(err, adapters.ErrBackend) {
		t.Errorf("with an untrusted server: got %v, want ErrBackend", err)
	}
}

func selfSigned(t *testing.T, cn string) (tls.Certificate, *x509.CertPool) {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{
		SerialNumber: big.NewInt(1),
		Subject:      pkix.Name{CommonName: cn},
		NotBefore:    time.Now().Add(-time.Hour),
		NotAfter:     time.Now().Add(time.Hour),
		KeyUsage:     x509.KeyUsageDigitalSignature | x509.KeyUsageCertSign,
		ExtKeyUsage:  []x509.ExtKeyUsage{x509.ExtKeyUsageClientAuth},
		IsCA:         true, BasicConstraintsValid: true,
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		t.Fatal(err)
	}
	leaf, err := x509.ParseCertificate(der)
	if err != nil {
		t.Fatal(err)
	}
	pool := x509.NewCertPool()
	pool.AddCert(leaf)
	return tls.Certificate{Certificate: [][]byte{der}, PrivateKey: key, Leaf: leaf}, pool
}
