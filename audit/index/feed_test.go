package index_test

import (
	"context"
	"errors"
	"fmt"
	"testing"
	"time"

	"github.com/lienthong/lienthong/audit/index"
)

// A follower of the feed is given every record once, in each gateway's seq
// order, across pages and across records shipped while it follows; a
// member's scope keeps to its exchanges; a cursor the index did not issue
// is refused.
func TestFeedGivesEveryRecordOnceInSeqOrder(t *testing.T) {
	backends(t, func(t *testing.T, openIndex opener) {
		ctx := context.Background()
		ix := openIndex(t)
		base := time.Date(2026, 11, 20, 8, 0, 0, 0, time.UTC)
		logs := map[string]*testLog{gwMPS: newTestLog(t, gwMPS), gwVSS: newTestLog(t, gwVSS)}
		shipped := map[string]int{}
		ship := func(gw string, n int) {
			l := logs[gw]
			for i := 0; i < n; i++ {
				consumer := insurance
				if i%2 == 1 {
					consumer = portal
				}
				l.Record(exchange(fmt.Sprintf("%s-%03d", gw[15:18], len(l.Lines)), consumer, population, "", base.Add(time.Duration(len(l.Lines))*time.Second)))
			}
			if shipped[gw] == 0 {
				if err := ix.EnrolKey(ctx, gw, l.Public(), false); err != nil {
					t.Fatal(err)
				}
			}
			if _, err := ix.Ingest(ctx, gw, l.Lines[shipped[gw]:]); err != nil {
				t.Fatal(err)
			}
			shipped[gw] = len(l.Lines)
		}
		ship(gwMPS, 23)
		ship(gwVSS, 7)

		seen := map[string]uint64{} // the last seq given, by gateway
		count := 0
		follow := func(scope, cursor string) string {
			for round := 0; ; round++ {
				if round > 100 {
					t.Fatal("the feed does not end")
				}
				page, err := ix.Feed(ctx, scope, cursor, 4)
				if err != nil {
					t.Fatal(err)
				}
				if page.Cursor == "" {
					t.Fatal("a page without a cursor")
				}
				cursor = page.Cursor
				if len(page.Items) == 0 {
					return cursor
				}
				for _, x := range page.Items {
					if x.Seq <= seen[x.Gateway] {
						t.Fatalf("%s seq %d given after seq %d", x.Gateway, x.Seq, seen[x.Gateway])
					}
					if scope != "" && x.Consumer != insurance {
						t.Fatalf("scope %s was given %+v", scope, x)
					}
					seen[x.Gateway] = x.Seq
					count++
				}
			}
		}
		cursor := follow("", "")
		if count != 30 {
			t.Fatalf("followed %d records, want 30", count)
		}
		// Shipped while the follower waits: only the new ones follow.
		ship(gwVSS, 5)
		ship(gwMPS, 1)
		follow("", cursor)
		if count != 36 {
			t.Fatalf("followed %d records after more were shipped, want 36", count)
		}

		// Social Insurance's auditor: its exchanges only (those of the
		// portal, a system of another member, are not its).
		seen, count = map[string]uint64{}, 0
		follow(vss, "")
		if count != 20 { // 13 of the 24 records MPS shipped, 7 of the 12 VSS shipped
			t.Fatalf("scoped follower was given %d records, want 20", count)
		}
		if _, err := ix.Feed(ctx, "", "not-a-cursor", 4); !errors.Is(err, index.ErrInvalid) {
			t.Fatalf("a forged cursor: %v", err)
		}
	})
}
