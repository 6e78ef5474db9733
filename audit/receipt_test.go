package audit_test

import (
	"context"
	"errors"
	"testing"

	"github.com/lienthong/lienthong/audit"
)

// TestReceiptSettled checks that a receipt reports itself settled exactly
// once its sink settled it, whatever the outcome, so a caller that skips
// arming a timeout never skips a wait that could block.
func TestReceiptSettled(t *testing.T) {
	lost := errors.New("lost")
	for _, tc := range []struct {
		name    string
		settle  func(*audit.Receipt)
		wantErr error
	}{
		{"durable", func(r *audit.Receipt) { r.Settle(nil) }, nil},
		{"at a position", func(r *audit.Receipt) { r.SettleAt(audit.Position{Seq: 7, Hash: "ab"}) }, nil},
		{"lost", func(r *audit.Receipt) { r.Settle(lost) }, lost},
	} {
		t.Run(tc.name, func(t *testing.T) {
			r := audit.NewReceipt()
			if r.Settled() {
				t.Fatal("a pending receipt reports itself settled")
			}
			ctx, cancel := context.WithCancel(context.Background())
			cancel()
			if err := r.Wait(ctx); !errors.Is(err, context.Canceled) {
				t.Fatalf("a pending receipt's Wait returned %v, want the context's end", err)
			}
			tc.settle(r)
			if !r.Settled() {
				t.Fatal("a settled receipt reports itself pending")
			}
			if err := r.Wait(context.Background()); !errors.Is(err, tc.wantErr) {
				t.Fatalf("Wait = %v, want %v", err, tc.wantErr)
			}
		})
	}
	if !audit.Refused(lost).Settled() {
		t.Fatal("a refused record's receipt reports itself pending")
	}
}
