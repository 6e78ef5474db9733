package index_test

import (
	"context"
	"fmt"
	"testing"
	"time"

	"github.com/lienthong/lienthong/audit/index"
)

// The queries give the same answers on both dialects: scoping, filters,
// paging without loss or repetition, the flow matrix and the tracker's index.
func TestQueries(t *testing.T) {
	backends(t, func(t *testing.T, openIndex opener) {
		ctx := context.Background()
		ix := openIndex(t)
		l := newTestLog(t, gwMPS)
		base := time.Date(2026, 11, 20, 8, 0, 0, 0, time.UTC)
		subject := fmt.Sprintf("%064x", 42)
		for i := 0; i < 12; i++ {
			consumer := insurance
			if i%3 == 0 {
				consumer = portal
			}
			r := exchange(fmt.Sprintf("x-%02d", i), consumer, population, subject, base.Add(time.Duration(i)*time.Minute))
			if i%4 == 3 {
				r.Status, r.Bytes = 403, 100
			}
			l.Record(r)
		}
		l.Checkpoint()
		if err := ix.EnrolKey(ctx, gwMPS, l.Public(), false); err != nil {
			t.Fatal(err)
		}
		if _, err := ix.Ingest(ctx, gwMPS, l.Lines); err != nil {
			t.Fatal(err)
		}

		var all []index.Exchange
		q := index.Query{Scope: vss, Limit: 3}
		for round := 0; round < 10; round++ {
			p, err := ix.Exchanges(ctx, q)
			if err != nil {
				t.Fatal(err)
			}
			all = append(all, p.Items...)
			if p.Next == "" {
				break
			}
			q.Cursor = p.Next
		}
		if len(all) != 8 {
			t.Fatalf("vss scope: %d records over pages, want 8", len(all))
		}
		for i, x := range all {
			if x.Consumer != insurance || (i > 0 && !x.Time.Before(all[i-1].Time)) {
				t.Fatalf("item %d: %+v", i, x)
			}
		}
		p, err := ix.Exchanges(ctx, index.Query{Status: 403, From: base.Add(5 * time.Minute), Until: base.Add(12 * time.Minute)})
		if err != nil || len(p.Items) != 2 { // x-07, x-11
			t.Fatalf("denials in range: %d, %v", len(p.Items), err)
		}
		if _, err := ix.Exchanges(ctx, index.Query{Cursor: "!!"}); err == nil {
			t.Fatal("a malformed cursor was accepted")
		}

		flows, err := ix.Flows(ctx, "", time.Time{}, time.Time{})
		if err != nil || len(flows) != 2 {
			t.Fatalf("flows %+v %v", flows, err)
		}
		want := map[string]index.Flow{
			hcm: {Consumer: hcm, Provider: mps, Exchanges: 4, Records: 3, Bytes: 3*512 + 100, Denials: 1},
			vss: {Consumer: vss, Provider: mps, Exchanges: 8, Records: 6, Bytes: 6*512 + 2*100, Denials: 2},
		}
		for _, f := range flows {
			if f != want[f.Consumer] {
				t.Errorf("flow %+v, want %+v", f, want[f.Consumer])
			}
		}

		d, err := ix.Disclosures(ctx, subject, 4, "")
		if err != nil || len(d.Items) != 4 || d.Next == "" || d.Items[0].ExchangeID != "x-11" && d.Items[0].ExchangeID != "x-10" {
			t.Fatalf("disclosures %+v %v", d, err)
		}
		n := len(d.Items)
		for d.Next != "" {
			if d, err = ix.Disclosures(ctx, subject, 4, d.Next); err != nil {
				t.Fatal(err)
			}
			n += len(d.Items)
		}
		if n != 12 { // 12 exchanges, 3 of them refused: the tracker lists refusals too
			t.Fatalf("%d disclosures, want 12", n)
		}
		if d, err := ix.Disclosures(ctx, fmt.Sprintf("%064x", 43), 4, ""); err != nil || len(d.Items) != 0 {
			t.Fatalf("another subject sees %+v %v", d.Items, err)
		}
	})
}
