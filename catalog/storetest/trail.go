package storetest

import (
	"context"
	"fmt"
	"testing"

	"github.com/lienthong/lienthong/catalog"
)

func trailSeq(e catalog.TrailEntry) string { return fmt.Sprint(e.Seq) }

func testTrail(t *testing.T, s catalog.Store) {
	ctx := t.Context()
	if rev := must(s.Revision(ctx))(t); rev != 0 {
		t.Errorf("Revision of an empty store = %d, want 0", rev)
	}
	wantKeys(t, "ListTrail of an empty store", must(s.ListTrail(ctx, catalog.TrailFilter{}))(t), trailSeq)

	// Ten entries over two transactions: members alternate, objects cycle.
	var entries []*catalog.TrailEntry
	for i := range 10 {
		member := []string{memberPolice, memberInsurance}[i%2]
		e := newTrail(fmt.Sprintf("tok-%d", i), member, "system.update", fmt.Sprintf("obj-%d", i%3))
		e.At = at(50 + i)
		if i == 0 {
			e.Role, e.Member = catalog.RolePlatformAdmin, ""
			e.Before = []byte(`{"name":"cũ"}`)
			e.Outcome = "refused: not assessed"
		}
		entries = append(entries, e)
	}
	for _, batch := range [][]*catalog.TrailEntry{entries[:4], entries[4:]} {
		update(t, s, func(ctx context.Context, tx catalog.Tx) error {
			for _, e := range batch {
				if err := tx.AppendTrail(ctx, e); err != nil {
					return err
				}
			}
			return nil
		})
	}
	var want []catalog.TrailEntry
	for i, e := range entries {
		if e.Seq <= 0 || (i > 0 && e.Seq <= entries[i-1].Seq) {
			t.Fatalf("AppendTrail set Seq %d after %d: want strictly increasing positive numbers", e.Seq, entries[max(i-1, 0)].Seq)
		}
		want = append(want, *e)
	}
	if rev := must(s.Revision(ctx))(t); rev != entries[9].Seq {
		t.Errorf("Revision = %d, want the last Seq %d", rev, entries[9].Seq)
	}
	// Ascending order is part of the contract: compare in order.
	check(t, "ListTrail{}", must(s.ListTrail(ctx, catalog.TrailFilter{}))(t), want)

	// Paging with AfterSeq and Limit visits everything once, in order.
	var paged []catalog.TrailEntry
	var sizes []int
	for after := int64(0); ; {
		page := must(s.ListTrail(ctx, catalog.TrailFilter{AfterSeq: after, Limit: 3}))(t)
		if len(page) == 0 {
			break
		}
		sizes = append(sizes, len(page))
		paged = append(paged, page...)
		after = page[len(page)-1].Seq
		if len(sizes) > 10 {
			t.Fatal("paging does not end")
		}
	}
	check(t, "ListTrail pages of 3", paged, want)
	if fmt.Sprint(sizes) != "[3 3 3 1]" {
		t.Errorf("page sizes %v, want [3 3 3 1]", sizes)
	}

	seqs := func(idx ...int) []string {
		out := []string{}
		for _, i := range idx {
			out = append(out, fmt.Sprint(entries[i].Seq))
		}
		return out
	}
	for _, tc := range []struct {
		name string
		f    catalog.TrailFilter
		want []string
	}{
		{"member", catalog.TrailFilter{Member: memberInsurance}, seqs(1, 3, 5, 7, 9)},
		{"object", catalog.TrailFilter{Object: "obj-1"}, seqs(1, 4, 7)},
		{"member and object", catalog.TrailFilter{Member: memberPolice, Object: "obj-1"}, seqs(4)},
		{"member after a seq", catalog.TrailFilter{Member: memberPolice, AfterSeq: entries[4].Seq}, seqs(6, 8)},
		{"object with a limit", catalog.TrailFilter{Object: "obj-0", Limit: 2}, seqs(0, 3)},
		{"after the last", catalog.TrailFilter{AfterSeq: entries[9].Seq}, nil},
		{"unknown member", catalog.TrailFilter{Member: memberUnknown}, nil},
	} {
		got := must(s.ListTrail(ctx, tc.f))(t)
		wantKeys(t, "ListTrail "+tc.name, got, trailSeq, tc.want...)
		for i := 1; i < len(got); i++ {
			if got[i].Seq <= got[i-1].Seq {
				t.Errorf("ListTrail %s: not ascending: %d after %d", tc.name, got[i].Seq, got[i-1].Seq)
			}
		}
	}
}

func testTrailDefaultLimit(t *testing.T, s catalog.Store) {
	ctx := t.Context()
	const n = 1001
	var last int64
	update(t, s, func(ctx context.Context, tx catalog.Tx) error {
		for i := range n {
			e := newTrail("tok-bulk", memberPolice, "member.update", fmt.Sprintf("obj-%d", i))
			if err := tx.AppendTrail(ctx, e); err != nil {
				return err
			}
			last = e.Seq
		}
		return nil
	})
	first := must(s.ListTrail(ctx, catalog.TrailFilter{}))(t)
	if len(first) != 1000 {
		t.Fatalf("ListTrail with Limit 0 returned %d entries, want the default 1000", len(first))
	}
	rest := must(s.ListTrail(ctx, catalog.TrailFilter{AfterSeq: first[999].Seq}))(t)
	if len(rest) != 1 || rest[0].Seq != last {
		t.Errorf("the entry after the first 1000: got %d entries, want only Seq %d", len(rest), last)
	}
	// A limit above the maximum is capped, not refused.
	if got := must(s.ListTrail(ctx, catalog.TrailFilter{Limit: 1_000_000}))(t); len(got) != n {
		t.Errorf("ListTrail with a huge Limit returned %d entries, want all %d", len(got), n)
	}
	if rev := must(s.Revision(ctx))(t); rev != last {
		t.Errorf("Revision = %d, want %d", rev, last)
	}
}
