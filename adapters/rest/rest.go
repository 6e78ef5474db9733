// Package rest is the adapter for provider backends that speak HTTP and JSON
// and are described by the dataset's OpenAPI document.
//
// The adapter is deliberately narrow: it only issues GET requests, only to
// paths the document declares, below one configured base URL, with only the
// query parameters the matching operation declares. Everything else a
// consumer sends is dropped or refused, because the backend usually trusts
// its gateway fully and would otherwise expose undocumented endpoints and
// switches to every consumer. The gateway filters the answer to the granted
// fields, so the adapter never applies the row scope (Response.Scoped is
// false) and never inspects or logs the body beyond its size.
package rest

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"mime"
	"net"
	"net/http"
	"net/url"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/lienthong/lienthong/adapters"
	"github.com/lienthong/lienthong/internal/tracing"
)

// Defaults applied by New to zero Config values.
const (
	// DefaultTimeout bounds one Fetch: all attempts and reading the body.
	DefaultTimeout = 10 * time.Second
	// DefaultRetries is how many times a failed GET is retried.
	DefaultRetries = 2
	// DefaultMaxResponseBytes is the largest body accepted (16 MiB).
	DefaultMaxResponseBytes = 16 << 20
)

// Limits on what the adapter accepts and does.
const (
	// maxRetries caps Config.Retries: more only multiplies load on a backend
	// that is already failing.
	maxRetries = 10
	// maxPathBytes and maxPathSegments bound the record path; real paths
	// are a collection name and an id.
	maxPathBytes    = 2048
	maxPathSegments = 32
	// backoffBase and backoffMax shape the exponential backoff between
	// attempts (full jitter, so many gateways do not retry in lockstep).
	backoffBase = 50 * time.Millisecond
	backoffMax  = time.Second
	// drainBytes is how much of a discarded (retried) error body is read so
	// the connection can go back to the pool; larger bodies close it.
	drainBytes = 64 << 10
)

// ErrInvalidPath is returned (wrapped together with adapters.ErrNotFound)
// for a record path that is malformed, would leave the base URL ("..",
// "//host", percent-encoding) or names no GET operation of the dataset's
// document. It wraps ErrNotFound because such a path names no record the
// dataset publishes, and answering 404 reveals nothing about the backend.
var ErrInvalidPath = errors.New("invalid record path")

// Config configures one REST backend.
type Config struct {
	// BaseURL is the backend's root, e.g. "https://csdldc.internal/api/v1";
	// dataset paths are resolved below it and can never leave it.
	BaseURL string
	// Timeout bounds one Fetch, including retries and reading the body
	// (default 10s). A backend slower than that is reported as ErrTimeout.
	Timeout time.Duration
	// Retries is how many times a GET is retried after a connection error
	// or a 502, 503 or 504 (default 2; negative disables retries). GET is
	// idempotent, so retrying cannot duplicate an effect; 4xx and other 5xx
	// answers are never retried because repeating them cannot help.
	Retries int
	// MaxResponseBytes bounds the body (default 16 MiB), enforced while it
	// streams, after any transparent decompression.
	MaxResponseBytes int64
	// TLS configures HTTPS to the backend, e.g. a client certificate for
	// mutual TLS and the backend's CA. It is cloned; nil means system roots.
	TLS *tls.Config
	// Headers are added to every request, e.g. a backend API key. They
	// cannot replace Host, Accept or the hop-by-hop headers.
	Headers map[string]string
}

// Adapter fetches records from one REST backend. It is safe for concurrent
// use and keeps one pool of connections to the backend.
type Adapter struct {
	base      *url.URL
	basePath  string // decoded, without trailing slash
	baseRaw   string // escaped, without trailing slash
	client    *http.Client
	transport *http.Transport
	timeout   time.Duration
	retries   int
	maxBytes  int64
	headers   http.Header
	specs     specCache
}

var _ adapters.Adapter = (*Adapter)(nil)

// reservedHeaders may not be set through Config.Headers: the adapter or the
// HTTP client owns them, and overriding them could change where or how the
// request goes.
var reservedHeaders = map[string]bool{
	"Host": true, "Accept": true, "Accept-Encoding": true, "Content-Length": true,
	"Transfer-Encoding": true, "Connection": true, "Keep-Alive": true, "Upgrade": true,
	"Te": true, "Trailer": true, "Proxy-Authorization": true, "Proxy-Connection": true,
}

// New checks cfg, applies the defaults and builds the connection pool.
func New(cfg Config) (*Adapter, error) {
	base, err := url.Parse(cfg.BaseURL)
	if err != nil {
		return nil, fmt.Errorf("rest: base URL: %w", err)
	}
	switch {
	case base.Scheme != "http" && base.Scheme != "https":
		return nil, fmt.Errorf("rest: base URL %q: scheme must be http or https", cfg.BaseURL)
	case base.Host == "" || base.Opaque != "":
		return nil, fmt.Errorf("rest: base URL %q: no host", cfg.BaseURL)
	case base.User != nil:
		return nil, errors.New("rest: base URL: credentials in the URL are not allowed; use Headers")
	case base.RawQuery != "" || base.ForceQuery || base.Fragment != "":
		return nil, fmt.Errorf("rest: base URL %q: must not have a query or fragment", cfg.BaseURL)
	case cfg.TLS != nil && base.Scheme != "https":
		return nil, fmt.Errorf("rest: base URL %q: a TLS configuration needs an https URL", cfg.BaseURL)
	case cfg.Timeout < 0:
		return nil, fmt.Errorf("rest: timeout %v is negative", cfg.Timeout)
	case cfg.MaxResponseBytes < 0:
		return nil, fmt.Errorf("rest: max response bytes %d is negative", cfg.MaxResponseBytes)
	case cfg.Retries > maxRetries:
		return nil, fmt.Errorf("rest: %d retries; at most %d", cfg.Retries, maxRetries)
	}
	a := &Adapter{
		base:     base,
		basePath: strings.TrimSuffix(base.Path, "/"),
		baseRaw:  strings.TrimSuffix(base.EscapedPath(), "/"),
		timeout:  cfg.Timeout,
		retries:  cfg.Retries,
		maxBytes: cfg.MaxResponseBytes,
		headers:  http.Header{},
	}
	if a.timeout == 0 {
		a.timeout = DefaultTimeout
	}
	switch {
	case a.retries == 0:
		a.retries = DefaultRetries
	case a.retries < 0:
		a.retries = 0
	}
	if a.maxBytes == 0 {
		a.maxBytes = DefaultMaxResponseBytes
	}
	for name, value := range cfg.Headers {
		if !validHeaderName(name) {
			return nil, fmt.Errorf("rest: header name %q is not a valid token", name)
		}
		if reservedHeaders[http.CanonicalHeaderKey(name)] {
			return nil, fmt.Errorf("rest: header %q is set by the adapter and cannot be configured", name)
		}
		if strings.ContainsAny(value, "\r\n\x00") {
			return nil, fmt.Errorf("rest: header %q: value has a line break or NUL", name)
		}
		a.headers.Set(name, value)
	}

	dialer := &net.Dialer{Timeout: 5 * time.Second, KeepAlive: 30 * time.Second}
	a.transport = &http.Transport{
		// No proxy from the environment: backends are reached directly, and
		// an inherited HTTP_PROXY would silently route citizen data elsewhere.
		Proxy:                  nil,
		DialContext:            dialer.DialContext,
		ForceAttemptHTTP2:      true,
		MaxIdleConns:           256,
		MaxIdleConnsPerHost:    64,
		IdleConnTimeout:        90 * time.Second,
		TLSHandshakeTimeout:    5 * time.Second,
		ExpectContinueTimeout:  time.Second,
		ResponseHeaderTimeout:  a.timeout,
		MaxResponseHeaderBytes: 64 << 10,
	}
	if cfg.TLS != nil {
		a.transport.TLSClientConfig = cfg.TLS.Clone()
	}
	a.client = &http.Client{
		Transport: a.transport,
		// Redirects are not followed: a backend (or whoever took over its
		// name) must not be able to send the gateway, with its client
		// certificate and headers, somewhere else.
		CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse },
	}
	return a, nil
}

// Close releases the idle connections of the pool. Fetches already under
// way finish; the adapter stays usable.
func (a *Adapter) Close() { a.transport.CloseIdleConnections() }

// Fetch GETs the record or list at req.Path below the base URL. The body is
// returned unread as a stream: the caller must close it, and reading it
// reports adapters.ErrTooLarge past the size limit and adapters.ErrTimeout
// past the deadline.
//
// Errors wrap adapters.ErrNotFound (404 or 410, or an invalid path, see
// ErrInvalidPath), adapters.ErrTimeout, adapters.ErrTooLarge or
// adapters.ErrBackend (5xx after retries, other 4xx, redirects, a body that
// is not JSON, connection failures). They never contain the record path or
// the query, which identify a citizen.
func (a *Adapter) Fetch(ctx context.Context, req adapters.Request) (*adapters.Response, error) {
	if req.Dataset == nil {
		return nil, errors.New("rest: request without a dataset")
	}
	s, err := a.specs.get(req.Dataset)
	if err != nil {
		return nil, fmt.Errorf("rest: %w", err)
	}
	segs, err := splitPath(req.Path)
	if err != nil {
		return nil, fmt.Errorf("rest: dataset %s: %w: %w: %w", req.Dataset.Ref(), ErrInvalidPath, adapters.ErrNotFound, err)
	}
	op, err := s.match(segs)
	if err != nil {
		return nil, fmt.Errorf("rest: dataset %s: %w: %w: %w", req.Dataset.Ref(), ErrInvalidPath, adapters.ErrNotFound, err)
	}
	target, err := a.target(segs, op.filterQuery(req.Query).Encode())
	if err != nil {
		return nil, fmt.Errorf("rest: dataset %s: %w: %w: %w", req.Dataset.Ref(), ErrInvalidPath, adapters.ErrNotFound, err)
	}
	what := "GET " + op.template + " of dataset " + req.Dataset.Ref()

	ctx, cancel := context.WithTimeout(ctx, a.timeout)
	resp, err := a.do(ctx, target, what)
	if err != nil {
		cancel()
		return nil, err
	}
	if err := a.check(resp, what); err != nil {
		discard(resp.Body)
		cancel()
		return nil, err
	}
	return &adapters.Response{
		Body:   &limitedBody{rc: resp.Body, ctx: ctx, cancel: cancel, limit: a.maxBytes, remaining: a.maxBytes, what: what},
		Scoped: false,
	}, nil
}

// splitPath checks a record path and splits it into its segments. It refuses
// rather than cleans: a path with "..", empty segments, percent signs,
// backslashes, query or fragment characters, control characters or invalid
// UTF-8 is not one a well-behaved consumer sends, and normalising it would
// only invite disagreements with the backend about what it means (the
// classic "%2e%2e" and "..;/" traversals).
func splitPath(p string) ([]string, error) {
	switch {
	case p == "":
		return nil, errors.New("empty path")
	case len(p) > maxPathBytes:
		return nil, fmt.Errorf("path longer than %d bytes", maxPathBytes)
	case !utf8.ValidString(p):
		return nil, errors.New("path is not valid UTF-8")
	}
	for _, r := range p {
		switch {
		case r < 0x20 || r == 0x7f || r == ' ':
			return nil, errors.New("path has a control character or space")
		case r == '%' || r == '\\' || r == '?' || r == '#' || r == ';':
			return nil, fmt.Errorf("path has a %q", r)
		}
	}
	segs := strings.Split(p, "/")
	if len(segs) > maxPathSegments {
		return nil, fmt.Errorf("path has more than %d segments", maxPathSegments)
	}
	for _, s := range segs {
		switch s {
		case "":
			return nil, errors.New("path has an empty segment (leading, trailing or double slash)")
		case ".", "..":
			return nil, errors.New("path has a dot segment")
		}
	}
	return segs, nil
}

// target builds the backend URL from the base and the checked segments,
// escaping each segment, and verifies the result is still below the base.
func (a *Adapter) target(segs []string, rawQuery string) (string, error) {
	escaped := make([]string, len(segs))
	for i, s := range segs {
		escaped[i] = url.PathEscape(s)
	}
	u := *a.base
	u.Path = a.basePath + "/" + strings.Join(segs, "/")
	u.RawPath = a.baseRaw + "/" + strings.Join(escaped, "/")
	u.RawQuery = rawQuery
	out := u.String()
	// Defence in depth: re-parse what will be sent.
	back, err := url.Parse(out)
	if err != nil || back.Scheme != a.base.Scheme || back.Host != a.base.Host ||
		!strings.HasPrefix(back.EscapedPath(), a.baseRaw+"/") {
		return "", errors.New("path resolves outside the base URL")
	}
	return out, nil
}

// do sends the GET, retrying connection errors and 502/503/504 with
// exponential backoff while attempts and ctx allow.
func (a *Adapter) do(ctx context.Context, target, what string) (*http.Response, error) {
	for attempt := 0; ; attempt++ { // bounded: returns by attempt a.retries at the latest
		req, err := http.NewRequestWithContext(ctx, http.MethodGet, target, nil)
		if err != nil {
			return nil, fmt.Errorf("rest: %s: building request: %w", what, err)
		}
		for name, values := range a.headers {
			req.Header[name] = values
		}
		req.Header.Set("Accept", "application/json")
		// The backend continues the exchange's trace (W3C traceparent).
		tracing.Inject(ctx, req.Header)

		resp, err := a.client.Do(req)
		last := attempt >= a.retries
		switch {
		case err != nil:
			if ctx.Err() != nil || last || !retryable(err) {
				return nil, a.transportError(ctx, err, what, attempt+1)
			}
		case resp.StatusCode == http.StatusBadGateway || resp.StatusCode == http.StatusServiceUnavailable ||
			resp.StatusCode == http.StatusGatewayTimeout:
			if last {
				return resp, nil // check reports it as a backend error
			}
			discard(resp.Body)
		default:
			return resp, nil
		}
		if err := sleep(ctx, backoff(attempt)); err != nil {
			return nil, a.transportError(ctx, err, what, attempt+1)
		}
	}
}

// check maps the status and content type of a final answer to the adapter
// errors; nil means a JSON body to stream.
func (a *Adapter) check(resp *http.Response, what string) error {
	if err := CheckAnswer(resp.StatusCode, resp.Header.Get("Content-Type"), resp.ContentLength, a.maxBytes); err != nil {
		return fmt.Errorf("rest: %s: %w", what, err)
	}
	return nil
}

// CheckAnswer is the rule for a REST backend's answer before its body is
// read: 200 with a JSON media type, announcing no more than limit bytes
// (contentLength < 0: not announced). 404 and 410 are adapters.ErrNotFound,
// any other status or media type adapters.ErrBackend, a larger announced
// body adapters.ErrTooLarge. Exported so a door whose proxy fetched the
// answer (Envoy, for ext_proc) applies the same rule as the adapter.
func CheckAnswer(status int, contentType string, contentLength, limit int64) error {
	switch {
	case status == http.StatusNotFound || status == http.StatusGone:
		return fmt.Errorf("backend answered %d: %w", status, adapters.ErrNotFound)
	case status != http.StatusOK:
		return fmt.Errorf("backend answered %d: %w", status, adapters.ErrBackend)
	}
	// The usual answers skip the media-type parser, measurable per exchange;
	// both strings parse to application/json with at most a valid charset.
	if contentType != "application/json" && contentType != "application/json; charset=utf-8" {
		mediaType, _, err := mime.ParseMediaType(contentType)
		if err != nil || !(mediaType == "application/json" || strings.HasPrefix(mediaType, "application/") && strings.HasSuffix(mediaType, "+json")) {
			return fmt.Errorf("backend answered content type %q, not JSON: %w", contentType, adapters.ErrBackend)
		}
	}
	if contentLength > limit {
		return fmt.Errorf("backend announced %d bytes, more than the limit of %d: %w", contentLength, limit, adapters.ErrTooLarge)
	}
	return nil
}

// transportError maps a failed attempt to the adapter errors. The message
// leaves out the URL (url.Error includes it, with the record id and query).
func (a *Adapter) transportError(ctx context.Context, err error, what string, attempts int) error {
	var ue *url.Error
	if errors.As(err, &ue) {
		err = ue.Err
	}
	var ne net.Error
	switch {
	case errors.Is(ctx.Err(), context.DeadlineExceeded) || errors.Is(err, context.DeadlineExceeded) || errors.As(err, &ne) && ne.Timeout():
		return fmt.Errorf("rest: %s: no answer within %v: %w", what, a.timeout, adapters.ErrTimeout)
	case errors.Is(err, context.Canceled):
		return fmt.Errorf("rest: %s: %w", what, context.Canceled)
	}
	return fmt.Errorf("rest: %s: after %d attempt(s): %w: %v", what, attempts, adapters.ErrBackend, err)
}

// retryable reports whether a transport error may go away on another
// attempt. Certificate problems will not, and retrying them only delays the
// (configuration) error.
func retryable(err error) bool {
	var cv *tls.CertificateVerificationError
	var rh tls.RecordHeaderError
	return !errors.As(err, &cv) && !errors.As(err, &rh)
}

// backoff is the pause before attempt+1: exponential with full jitter.
func backoff(attempt int) time.Duration {
	d := backoffBase << min(attempt, 8)
	d = min(d, backoffMax)
	return d/2 + rand.N(d/2+1)
}

// sleep waits d or until ctx ends.
func sleep(ctx context.Context, d time.Duration) error {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}

// discard reads a little of an unwanted body so its connection can be
// reused, and closes it.
func discard(body io.ReadCloser) {
	_, _ = io.Copy(io.Discard, io.LimitReader(body, drainBytes))
	_ = body.Close()
}

// validHeaderName reports whether name is an RFC 9110 token.
func validHeaderName(name string) bool {
	if name == "" {
		return false
	}
	for i := 0; i < len(name); i++ {
		c := name[i]
		switch {
		case c >= 'a' && c <= 'z', c >= 'A' && c <= 'Z', c >= '0' && c <= '9':
		case strings.IndexByte("!#$%&'*+-.^_`|~", c) >= 0:
		default:
			return false
		}
	}
	return true
}
