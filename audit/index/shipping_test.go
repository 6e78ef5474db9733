package index_test

import (
	"context"
	"sync"
	"testing"
	"time"

	"github.com/lienthong/lienthong/audit/index"
)

// clock is a settable clock for the index (WithClock).
type clock struct {
	mu sync.Mutex
	t  time.Time
}

func (c *clock) now() time.Time { c.mu.Lock(); defer c.mu.Unlock(); return c.t }

func (c *clock) add(d time.Duration) { c.mu.Lock(); c.t = c.t.Add(d); c.mu.Unlock() }

func shippingOf(t *testing.T, ix *index.SQLStore, gateway string) index.Shipping {
	t.Helper()
	all, err := ix.ShippingStatus(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	for _, sh := range all {
		if sh.Gateway == gateway {
			return sh
		}
	}
	t.Fatalf("no shipping status for %s in %+v", gateway, all)
	return index.Shipping{}
}

// The lag is the reported log head minus what the index holds; it is
// "growing" only after reports found it larger, one after another, for a
// minute, and a report that finds it smaller (or shipping that catches up)
// clears that; a lag that stands a minute with no shipment is "stalled".
// A head reported below what the index holds (a report that raced a
// shipment) is no lag, never a negative one.
func TestShippingLagFollowsReports(t *testing.T) {
	backends(t, func(t *testing.T, openIndex opener) {
		ctx := context.Background()
		clk := &clock{t: time.Date(2026, 12, 5, 8, 0, 0, 0, time.UTC)}
		ix := openIndex(t, index.WithClock(clk.now))
		l := shipped(t, ix, 12)
		total := uint64(len(l.Lines))

		// Before any report: what the index holds, no head, no lag.
		if _, err := ix.Ingest(ctx, gwMPS, l.Lines[:5]); err != nil {
			t.Fatal(err)
		}
		sh := shippingOf(t, ix, gwMPS)
		if sh.Shipped != 5 || sh.Head != 0 || !sh.HeadAt.IsZero() || sh.Lag != 0 || !sh.ShippedAt.Equal(clk.now()) || sh.Behind(clk.now()) {
			t.Fatalf("before a report: %+v", sh)
		}

		// The gateway reports a head ahead of the index: a lag, not yet growing
		// for long.
		if err := ix.ReportHead(ctx, gwMPS, total); err != nil {
			t.Fatal(err)
		}
		sh = shippingOf(t, ix, gwMPS)
		if sh.Head != total || sh.Lag != total-5 || !sh.HeadAt.Equal(clk.now()) || !sh.GrowingSince.Equal(clk.now()) || sh.Growing(clk.now()) {
			t.Fatalf("after the first report: %+v", sh)
		}
		started := clk.now()

		// The log keeps growing and nothing is shipped: each report finds a
		// larger lag; after a minute the gateway is flagged.
		for i := uint64(1); i <= 4; i++ {
			clk.add(20 * time.Second)
			if err := ix.ReportHead(ctx, gwMPS, total+10*i); err != nil {
				t.Fatal(err)
			}
		}
		sh = shippingOf(t, ix, gwMPS)
		if sh.Lag != total+40-5 || !sh.GrowingSince.Equal(started) || !sh.Growing(clk.now()) || !sh.Stalled(clk.now()) || !sh.Behind(clk.now()) {
			t.Fatalf("after a minute of growth: %+v", sh)
		}

		// Shipping resumes: the held entries and a report of a smaller lag
		// clear "growing"; the lag left is not stalled, entries just moved.
		if _, err := ix.Ingest(ctx, gwMPS, l.Lines[5:]); err != nil {
			t.Fatal(err)
		}
		if err := ix.ReportHead(ctx, gwMPS, total+40); err != nil {
			t.Fatal(err)
		}
		sh = shippingOf(t, ix, gwMPS)
		if sh.Shipped != total || sh.Lag != 40 || !sh.GrowingSince.IsZero() || sh.Behind(clk.now()) {
			t.Fatalf("after shipping resumed: %+v", sh)
		}

		// The same lag a minute later, nothing shipped: stalled, not growing.
		clk.add(time.Minute)
		if err := ix.ReportHead(ctx, gwMPS, total+40); err != nil {
			t.Fatal(err)
		}
		sh = shippingOf(t, ix, gwMPS)
		if sh.Growing(clk.now()) || !sh.Stalled(clk.now()) {
			t.Fatalf("a standing lag with no shipment: %+v", sh)
		}

		// A head below what the index holds is no lag.
		if err := ix.ReportHead(ctx, gwMPS, 3); err != nil {
			t.Fatal(err)
		}
		sh = shippingOf(t, ix, gwMPS)
		if sh.Lag != 0 || !sh.GrowingSince.IsZero() || sh.Behind(clk.now()) {
			t.Fatalf("a head behind the index: %+v", sh)
		}

		// A gateway that reports before it ever shipped has a row of its own.
		if err := ix.ReportHead(ctx, gwVSS, 7); err != nil {
			t.Fatal(err)
		}
		if sh := shippingOf(t, ix, gwVSS); sh.Shipped != 0 || sh.Lag != 7 || !sh.ShippedAt.IsZero() || !sh.Stalled(clk.now()) {
			t.Fatalf("a gateway that never shipped: %+v", sh)
		}
		if pos, err := ix.Position(ctx, gwVSS); err != nil || pos.Next != 1 {
			t.Fatalf("a report moved the position: %+v %v", pos, err)
		}
	})
}
