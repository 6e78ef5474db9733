package httpguard_test

import (
	"bufio"
	"errors"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/lienthong/lienthong/internal/httpguard"
	"github.com/lienthong/lienthong/internal/problem"
)

func server(t *testing.T) (addr string, served *atomic.Int64) {
	t.Helper()
	served = &atomic.Int64{}
	mux := http.NewServeMux()
	mux.HandleFunc("GET /r/{path...}", func(w http.ResponseWriter, r *http.Request) {
		served.Add(1)
		_, _ = io.WriteString(w, "served "+r.URL.Path)
	})
	mux.HandleFunc("POST /v/{id}", func(w http.ResponseWriter, r *http.Request) {
		served.Add(1)
		_, _ = io.Copy(io.Discard, r.Body)
		_, _ = io.WriteString(w, "verified")
	})
	srv := httptest.NewServer(httpguard.Wrap(mux, httpguard.Options{HeaderLimits: map[string]int{"X-LT-Purpose": 16}}))
	t.Cleanup(srv.Close)
	return srv.Listener.Addr().String(), served
}

// exchange writes raw bytes on a new connection and reads everything the
// server sends until it closes the connection (or the deadline passes, which
// fails the test when the server was expected to close).
func exchange(t *testing.T, addr, raw string) (responses []*http.Response, bodies []string, closed bool) {
	t.Helper()
	c, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	if _, err := io.WriteString(c, raw); err != nil {
		t.Fatal(err)
	}
	_ = c.SetReadDeadline(time.Now().Add(3 * time.Second))
	br := bufio.NewReader(c)
	for {
		resp, err := http.ReadResponse(br, nil)
		if err != nil {
			var ne net.Error
			timedOut := errors.As(err, &ne) && ne.Timeout()
			return responses, bodies, !timedOut
		}
		b, _ := io.ReadAll(resp.Body)
		responses, bodies = append(responses, resp), append(bodies, string(b))
	}
}

// A request with both Content-Length and Transfer-Encoding whose body hides a
// second request: one 400 problem, the connection closed, nothing served.
func TestBothLengthsAreRefusedAndTheConnectionClosed(t *testing.T) {
	addr, served := server(t)
	smuggled := "GET /r/secret HTTP/1.1\r\nHost: x\r\n\r\n"
	body := "0\r\n\r\n" + smuggled
	raw := "POST /v/1 HTTP/1.1\r\nHost: x\r\nContent-Length: 5\r\nTransfer-Encoding: chunked\r\n\r\n" + body
	resps, bodies, closed := exchange(t, addr, raw)
	if len(resps) != 1 || resps[0].StatusCode != http.StatusBadRequest {
		t.Fatalf("responses %d, first %v: %v", len(resps), statusOf(resps), bodies)
	}
	if resps[0].Header.Get("Content-Type") != problem.ContentType || !strings.Contains(bodies[0], "invalid-framing") {
		t.Fatalf("not a problem: %s %s", resps[0].Header.Get("Content-Type"), bodies[0])
	}
	if !closed {
		t.Fatal("connection kept open after an ambiguous framing")
	}
	if served.Load() != 0 {
		t.Fatalf("handler ran %d times", served.Load())
	}
}

func statusOf(resps []*http.Response) []int {
	var s []int
	for _, r := range resps {
		s = append(s, r.StatusCode)
	}
	return s
}

func TestGuardRefusals(t *testing.T) {
	addr, served := server(t)
	long := strings.Repeat("A", 40) + "SECRETVALUE"
	for _, tc := range []struct {
		name, raw string
		status    int
		kind      string
	}{
		{"HEAD", "HEAD /r/citizens/1 HTTP/1.1\r\nHost: x\r\n\r\n", http.StatusMethodNotAllowed, ""},
		{"double slash", "GET /r//citizens/1 HTTP/1.1\r\nHost: x\r\n\r\n", http.StatusBadRequest, "invalid-path"},
		{"dot dot", "GET /r/a/../../admin HTTP/1.1\r\nHost: x\r\n\r\n", http.StatusBadRequest, "invalid-path"},
		{"dot", "GET /r/./a HTTP/1.1\r\nHost: x\r\n\r\n", http.StatusBadRequest, "invalid-path"},
		{"long purpose", "GET /r/a HTTP/1.1\r\nHost: x\r\nX-LT-Purpose: " + long + "\r\n\r\n", http.StatusRequestHeaderFieldsTooLarge, "header-too-large"},
		{"two purposes", "GET /r/a HTTP/1.1\r\nHost: x\r\nX-LT-Purpose: 1\r\nX-LT-Purpose: 2\r\n\r\n", http.StatusBadRequest, "invalid-header"},
		{"chunked only", "POST /v/1 HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n", http.StatusBadRequest, "invalid-framing"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			resps, bodies, _ := exchange(t, addr, tc.raw+"GET /r/after HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
			if len(resps) == 0 || resps[0].StatusCode != tc.status {
				t.Fatalf("statuses %v, want %d first", statusOf(resps), tc.status)
			}
			if tc.kind != "" && (resps[0].Header.Get("Content-Type") != problem.ContentType || !strings.Contains(bodies[0], tc.kind)) {
				t.Fatalf("want problem %s: %s %s", tc.kind, resps[0].Header.Get("Content-Type"), bodies[0])
			}
			if tc.status == http.StatusMethodNotAllowed && resps[0].Header.Get("Allow") != "GET, POST" {
				t.Fatalf("405 without Allow: %v", resps[0].Header)
			}
			if resps[0].Header.Get("Location") != "" {
				t.Fatal("answered with a redirect")
			}
			if strings.Contains(bodies[0], "SECRETVALUE") || strings.Contains(bodies[0], "admin") {
				t.Fatalf("problem echoes the refused value: %s", bodies[0])
			}
		})
	}
	if served.Load() == 0 {
		t.Fatal("the follow-up requests were never served: the guard broke keep-alive")
	}
	// A clean request passes.
	resps, bodies, _ := exchange(t, addr, "GET /r/citizens/1 HTTP/1.1\r\nHost: x\r\nX-LT-Purpose: 1.001234\r\nConnection: close\r\n\r\n")
	if len(resps) != 1 || resps[0].StatusCode != 200 || bodies[0] != "served /r/citizens/1" {
		t.Fatalf("clean request: %v %v", statusOf(resps), bodies)
	}
}
