package index_test

import (
	"context"
	"testing"
	"time"

	"github.com/lienthong/lienthong/audit/index"
)

// "Growing", report by report through the store (shipments carrying their
// head, heartbeats without entries), a report every 20 s for 80 s after a
// first shipment that leaves a lag of 10: growing means the lag kept rising
// report after report, or rose and has neither come back down nor seen a
// shipment since. A lag that holds steady while shipments keep arriving is
// shipping keeping pace with the log, and is not flagged.
func TestShippingGrowingRule(t *testing.T) {
	type step struct {
		ship int    // entries shipped with this report (0: a heartbeat)
		lag  uint64 // the lag the report finds
	}
	repeat := func(n int, f func(i int) step) []step {
		out := make([]step, n)
		for i := range out {
			out[i] = f(i + 1)
		}
		return out
	}
	cases := []struct {
		name                     string
		steps                    []step
		growing, stalled, behind bool
	}{
		{"steady lag, shipments arriving", repeat(4, func(int) step { return step{1, 10} }), false, false, false},
		{"rose, then steady, nothing shipped", repeat(4, func(int) step { return step{0, 10} }), true, true, true},
		{"kept rising, shipments arriving", repeat(4, func(i int) step { return step{1, 10 + 5*uint64(i)} }), true, false, true},
		{"kept rising, nothing shipped", repeat(4, func(i int) step { return step{0, 10 + 5*uint64(i)} }), true, true, true},
		{"rose, came back down, then steady", []step{{0, 15}, {0, 12}, {0, 12}, {0, 12}}, false, true, true},
		{"rose and kept rising, then steady with a shipment", []step{{0, 15}, {0, 20}, {0, 25}, {1, 25}}, false, false, false},
		{"caught up", []step{{0, 15}, {0, 20}, {0, 25}, {0, 0}}, false, false, false},
	}
	backends(t, func(t *testing.T, openIndex opener) {
		for _, c := range cases {
			t.Run(c.name, func(t *testing.T) {
				ctx := context.Background()
				clk := &clock{t: time.Date(2026, 12, 5, 9, 0, 0, 0, time.UTC)}
				ix := openIndex(t, index.WithClock(clk.now))
				l := shipped(t, ix, 12)
				held := 2
				if _, err := ix.IngestShipment(ctx, gwMPS, l.Lines[:held], uint64(held)+10); err != nil {
					t.Fatal(err)
				}
				for i, s := range c.steps {
					clk.add(20 * time.Second)
					var err error
					if s.ship > 0 {
						held += s.ship
						_, err = ix.IngestShipment(ctx, gwMPS, l.Lines[held-s.ship:held], uint64(held)+s.lag)
					} else if s.lag > 0 {
						err = ix.ReportHead(ctx, gwMPS, uint64(held)+s.lag)
					} else {
						held = len(l.Lines)
						_, err = ix.IngestShipment(ctx, gwMPS, l.Lines[2:], uint64(held))
					}
					if err != nil {
						t.Fatalf("step %d: %v", i+1, err)
					}
				}
				now := clk.now()
				sh := shippingOf(t, ix, gwMPS)
				if sh.Growing(now) != c.growing || sh.Stalled(now) != c.stalled || sh.Behind(now) != c.behind {
					t.Fatalf("growing %v, stalled %v, behind %v; want %v, %v, %v (%+v)",
						sh.Growing(now), sh.Stalled(now), sh.Behind(now), c.growing, c.stalled, c.behind, sh)
				}
			})
		}
	})
}
