package controlplane_test

import (
	"bufio"
	"context"
	"crypto/tls"
	"errors"
	"io"
	"log/slog"
	"net"
	"net/http"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/lienthong/lienthong/controlplane"
	"github.com/lienthong/lienthong/internal/problem"
)

// The management API's listener is guarded like the gateways': ambiguous
// framing is refused and the connection closed, and a path ServeMux would
// redirect gets problem JSON. Raw bytes over a real TLS connection.
func TestManagementListenerRefusesBadFraming(t *testing.T) {
	ctx, cancel := context.WithCancel(context.Background())
	ready := make(chan controlplane.Ready, 1)
	var wg sync.WaitGroup
	wg.Go(func() {
		err := controlplane.Run(ctx, controlplane.Config{DataDir: t.TempDir(), Listen: "127.0.0.1:0", Log: slog.New(slog.DiscardHandler)},
			func(r controlplane.Ready) { ready <- r })
		if err != nil {
			t.Errorf("control plane: %v", err)
		}
	})
	t.Cleanup(func() { cancel(); wg.Wait() })
	var r controlplane.Ready
	select {
	case r = <-ready:
	case <-time.After(30 * time.Second):
		t.Fatal("control plane did not start")
	}
	addr := strings.TrimPrefix(r.URL, "https://")
	for _, tc := range []struct {
		name, raw string
		status    int
		closes    bool
	}{
		{"both lengths", "POST /v1/members HTTP/1.1\r\nHost: cp\r\nContent-Length: 4\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\nGET /v1/members HTTP/1.1\r\nHost: cp\r\n\r\n", 400, true},
		{"double slash", "GET //v1/members HTTP/1.1\r\nHost: cp\r\nConnection: close\r\n\r\n", 400, false},
		{"dot dot", "GET /v1/x/../members HTTP/1.1\r\nHost: cp\r\nConnection: close\r\n\r\n", 400, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			// The management certificate's CA is not what is tested here.
			c, err := tls.Dial("tcp", addr, &tls.Config{InsecureSkipVerify: true, NextProtos: []string{"http/1.1"}})
			if err != nil {
				t.Fatal(err)
			}
			defer c.Close()
			if _, err := io.WriteString(c, tc.raw); err != nil {
				t.Fatal(err)
			}
			_ = c.SetReadDeadline(time.Now().Add(3 * time.Second))
			br := bufio.NewReader(c)
			resp, err := http.ReadResponse(br, nil)
			if err != nil {
				t.Fatal(err)
			}
			body, _ := io.ReadAll(resp.Body)
			if resp.StatusCode != tc.status || resp.Header.Get("Content-Type") != problem.ContentType || resp.Header.Get("Location") != "" {
				t.Fatalf("%d %s %s", resp.StatusCode, resp.Header.Get("Content-Type"), body)
			}
			if !tc.closes {
				return
			}
			_, err = http.ReadResponse(br, nil)
			var ne net.Error
			if err == nil || (errors.As(err, &ne) && ne.Timeout()) {
				t.Fatalf("the connection was kept after ambiguous framing (second read: %v)", err)
			}
		})
	}
}
