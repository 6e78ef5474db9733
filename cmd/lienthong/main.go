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
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
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

func orRoot(pointer string) string {
	if pointer == "" {
		return "(document root)"
	}
	return pointer
}
