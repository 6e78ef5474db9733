// Package opsmux is the operations listener every process serves apart from
// its API: GET /metrics (Prometheus), GET /healthz (the process is alive)
// and GET /readyz (each readiness check, named, 503 when one fails), and
// GET /readyz/{group} for the checks of a component that must not gate the
// process's own readiness (a gateway's feed router, say). It is
// plain HTTP, so it belongs on loopback or a management network: an address
// without a host ("" host, as in ":9464") listens on loopback only.
package opsmux

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"time"
)

// Check is one named readiness check and what it found (nil: passed).
type Check struct {
	Name string
	Err  error
	// Group, when set, makes the check one of a component the process runs
	// beside its main work: GET /readyz lists it marked NotGating but does
	// not fail for it, so a probe of the process's readiness (a load
	// balancer's) is not turned away by that component's outage; GET
	// /readyz/{Group} serves the group's checks and fails for them.
	Group string
}

// NotGating starts the /readyz value of a check that does not decide
// /readyz (Check.Group), before "ok" or why it fails.
const NotGating = "not gating: "

// Handler serves /metrics from metrics (nil: 404), /healthz and /readyz
// from checks (nil: always ready).
func Handler(metrics http.Handler, checks func() []Check) http.Handler {
	mux := http.NewServeMux()
	if metrics != nil {
		mux.Handle("GET /metrics", metrics)
	}
	mux.HandleFunc("GET /healthz", func(w http.ResponseWriter, _ *http.Request) {
		w.Header().Set("Content-Type", "application/json")
		_, _ = w.Write([]byte("{\"status\":\"ok\"}\n"))
	})
	mux.Handle("GET /readyz", ReadyHandler(checks))
	mux.HandleFunc("GET /readyz/{group}", func(w http.ResponseWriter, r *http.Request) {
		group := r.PathValue("group")
		var in []Check
		if checks != nil {
			for _, c := range checks() {
				if c.Group == group {
					c.Group = ""
					in = append(in, c)
				}
			}
		}
		if len(in) == 0 {
			http.NotFound(w, r)
			return
		}
		ReadyHandler(func() []Check { return in }).ServeHTTP(w, r)
	})
	return mux
}

// ReadyHandler answers GET /readyz: 200 when every check outside a group
// passes, 503 otherwise, with each check's result by name as JSON ("ok" or
// why it failed; a grouped check's prefixed with NotGating). A check's
// error must name files, times and rules, never a secret or a subject.
func ReadyHandler(checks func() []Check) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
		body := map[string]string{}
		status := http.StatusOK
		if checks != nil {
			for _, c := range checks() {
				v := "ok"
				if c.Err != nil {
					v = c.Err.Error()
					if c.Group == "" {
						status = http.StatusServiceUnavailable
					}
				}
				if c.Group != "" {
					v = NotGating + v
				}
				body[c.Name] = v
			}
		}
		w.Header().Set("Content-Type", "application/json")
		w.Header().Set("Cache-Control", "no-store")
		w.WriteHeader(status)
		_ = json.NewEncoder(w).Encode(body)
	})
}

// LoopbackDefault gives an address without a host the loopback host, so
// "--metrics-listen :9464" is not reachable from the network by accident;
// "0.0.0.0:9464" says so on purpose.
func LoopbackDefault(addr string) (string, error) {
	host, port, err := net.SplitHostPort(addr)
	if err != nil {
		return "", fmt.Errorf("operations listener %q: %w", addr, err)
	}
	if host == "" {
		host = "127.0.0.1"
	}
	return net.JoinHostPort(host, port), nil
}

// Server is a running operations listener.
type Server struct {
	srv  *http.Server
	addr string
	done chan error
}

// Listen opens addr (see LoopbackDefault) and serves h on it until Close.
func Listen(addr string, h http.Handler, log *slog.Logger) (*Server, error) {
	addr, err := LoopbackDefault(addr)
	if err != nil {
		return nil, err
	}
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		return nil, fmt.Errorf("operations listener: %w", err)
	}
	return Serve(ln, h, log), nil
}

// Serve serves h on ln, a listener the caller has already bound, until
// Close, which closes ln. A caller that must know the address before the
// process serves (tests, several processes in one) binds "127.0.0.1:0" and
// hands the listener in, so no other process can take the port between its
// choosing and its serving.
func Serve(ln net.Listener, h http.Handler, log *slog.Logger) *Server {
	if log == nil {
		log = slog.Default()
	}
	s := &Server{addr: ln.Addr().String(), done: make(chan error, 1), srv: &http.Server{
		Handler: h, ReadHeaderTimeout: 5 * time.Second, ReadTimeout: 10 * time.Second, WriteTimeout: 30 * time.Second,
		IdleTimeout: time.Minute, MaxHeaderBytes: 16 << 10,
		ErrorLog: slog.NewLogLogger(log.Handler(), slog.LevelDebug),
	}}
	go func() { s.done <- s.srv.Serve(ln) }()
	return s
}

// Addr is the address the listener is bound to.
func (s *Server) Addr() string { return s.addr }

// Close stops the listener, letting scrapes in flight finish.
func (s *Server) Close(ctx context.Context) error {
	err := s.srv.Shutdown(ctx)
	if serr := <-s.done; serr != nil && !errors.Is(serr, http.ErrServerClosed) && err == nil {
		err = serr
	}
	return err
}
