// Command lienthong is the one binary of the Liên Thông federation: it runs
// the control plane (and, as the federation grows, gateways) and is the CLI
// of the management API.
package main

import (
	"context"
	"errors"
	"fmt"
	"os"
	"os/signal"
	"syscall"

	"github.com/lienthong/lienthong/internal/problem"
)

func main() {
	ctx := stopOnSignal()
	root := newRootCommand()
	if err := root.ExecuteContext(ctx); err != nil {
		var p *problem.Problem
		if errors.As(err, &p) {
			fmt.Fprintf(os.Stderr, "error: %s (%d)\n", p.Title, p.Status)
			if p.Detail != "" && len(p.Errors) == 0 {
				fmt.Fprintf(os.Stderr, "  %s\n", p.Detail)
			}
			for _, e := range p.Errors {
				fmt.Fprintf(os.Stderr, "  at %s: %s\n", orRoot(e.Pointer), e.Message)
			}
		} else {
			fmt.Fprintln(os.Stderr, "error:", err)
		}
		os.Exit(1)
	}
}

// stopOnSignal returns a context that ends at the first SIGTERM or SIGINT:
// long-running commands then stop accepting work, drain what is in flight,
// sync their logs, close their stores and exit 0. A second signal exits at
// once, for an operator who will not wait.
func stopOnSignal() context.Context {
	ctx, cancel := context.WithCancel(context.Background())
	sigs := make(chan os.Signal, 2)
	signal.Notify(sigs, os.Interrupt, syscall.SIGTERM)
	go func() {
		s := <-sigs
		fmt.Fprintf(os.Stderr, "lienthong: %v: stopping cleanly (send it again to exit at once)\n", s)
		cancel()
		s = <-sigs
		fmt.Fprintf(os.Stderr, "lienthong: %v again: exiting without waiting\n", s)
		os.Exit(130)
	}()
	return ctx
}

func orRoot(pointer string) string {
	if pointer == "" {
		return "(document root)"
	}
	return pointer
}
