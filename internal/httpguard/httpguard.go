// Package httpguard refuses, before any handler runs, the HTTP requests
// whose framing or form every Liên Thông listener rejects the same way: a
// body framed by Transfer-Encoding (and so a request carrying both it and
// Content-Length, RFC 9112 §6.1), HEAD, a path ServeMux would "clean" with a
// redirect, and over-long protocol headers. Each refusal is RFC 9457 problem
// JSON; none echoes the offending value.
//
// net/http drops Content-Length from a request that also carries
// Transfer-Encoding before a handler sees it, so a handler cannot tell
// "both" from "chunked only". The guard therefore refuses every request body
// framed by Transfer-Encoding and closes the connection: the APIs behind it
// take small JSON bodies, and every client that knows the body's length
// sends Content-Length (HTTP/2 requests carry no Transfer-Encoding at all).
// Closing means whatever followed in the stream is never parsed as a request.
package httpguard

import (
	"encoding/json"
	"fmt"
	"net/http"
	"path"
	"strings"

	"github.com/lienthong/lienthong/internal/problem"
)

// Options say what a listener accepts beyond the common rules.
type Options struct {
	// HeaderLimits bounds the bytes of named request headers; a header given
	// more than once is refused too, since its meaning would depend on which
	// copy a reader takes.
	HeaderLimits map[string]int
	// Allow lists the methods the listener serves, for the Allow header of
	// the 405 that answers HEAD (RFC 9110 §15.5.6); default "GET, POST".
	Allow string
}

// Wrap returns h behind the guard.
func Wrap(h http.Handler, opts Options) http.Handler {
	limits := make(map[string]int, len(opts.HeaderLimits))
	for name, n := range opts.HeaderLimits {
		limits[http.CanonicalHeaderKey(name)] = n
	}
	allow := opts.Allow
	if allow == "" {
		allow = "GET, POST"
	}
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if len(r.TransferEncoding) > 0 {
			w.Header().Set("Connection", "close")
			write(w, problem.New(http.StatusBadRequest, "invalid-framing",
				"a request body must be framed by Content-Length; Transfer-Encoding is not accepted (RFC 9112 §6.1), and the connection is closed"))
			return
		}
		if p := Check(r.Method, r.URL.Path, r.Header.Values, limits); p != nil {
			if p.Status == http.StatusMethodNotAllowed {
				w.Header().Set("Allow", allow)
			}
			write(w, p)
			return
		}
		h.ServeHTTP(w, r)
	})
}

// Check returns the problem with a request's method, path or bounded
// headers, or nil: HEAD, a path that is not in its clean form, and a header
// of limits (canonical names, as values looks them up) given twice or
// longer than its bound. Wrap runs it for HTTP listeners; a door that gets
// requests some other way (Envoy's ext_authz) runs it too, so both refuse
// the same requests with the same problem.
func Check(method, urlPath string, values func(name string) []string, limits map[string]int) *problem.Problem {
	if method == http.MethodHead {
		return problem.New(http.StatusMethodNotAllowed, "method-not-allowed", "HEAD is not served; use GET")
	}
	if !clean(urlPath) {
		return problem.New(http.StatusBadRequest, "invalid-path", "the path has an empty, . or .. segment; send it in its canonical form")
	}
	for name, limit := range limits {
		vs := values(name)
		if len(vs) > 1 {
			return problem.New(http.StatusBadRequest, "invalid-header", fmt.Sprintf("header %s is given %d times; send it once", name, len(vs)))
		}
		if len(vs) == 1 && len(vs[0]) > limit {
			return problem.New(http.StatusRequestHeaderFieldsTooLarge, "header-too-large", fmt.Sprintf("header %s has %d bytes; at most %d are accepted", name, len(vs[0]), limit))
		}
	}
	return nil
}

// write sends p without an instance: the path may be what was refused.
func write(w http.ResponseWriter, p *problem.Problem) {
	body, _ := json.Marshal(p)
	h := w.Header()
	h.Set("Content-Type", problem.ContentType)
	h.Set("X-Content-Type-Options", "nosniff")
	w.WriteHeader(p.Status)
	_, _ = w.Write(body)
}

// clean reports whether ServeMux would serve p as it is rather than answer
// with a redirect to its cleaned form.
func clean(p string) bool {
	if p == "" || p[0] != '/' {
		return false
	}
	c := path.Clean(p)
	if strings.HasSuffix(p, "/") && c != "/" {
		c += "/"
	}
	return c == p
}
