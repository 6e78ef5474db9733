package storetest

import (
	"context"
	"errors"
	"testing"

	"github.com/lienthong/lienthong/catalog"
)

// testView tries to make a View see two states: a commit lands between its
// reads, and every read after the first must still show the state (and the
// revision) of the first.
func testView(t *testing.T, s catalog.Store) {
	ctx := t.Context()
	populate(t, s)
	before := snapshot(t, s)
	var inside, afterCommit state
	err := s.View(ctx, func(r catalog.Reader) error {
		inside = snapshot(t, r)
		// A write commits while the view is open; it must neither wait for
		// the view nor be seen by it.
		update(t, s, func(ctx context.Context, tx catalog.Tx) error {
			return errors.Join(
				tx.CreateSystem(ctx, newSystem("VN:GOV:000.00.00.G01:MOI", "new system", 2)),
				tx.RevokeCertificate(ctx, "0a1b2c", at(5), "key lost"),
				tx.AppendTrail(ctx, newTrail("tok-1", memberPolice, "system.create", "VN:GOV:000.00.00.G01:MOI")),
			)
		})
		afterCommit = snapshot(t, r)
		return nil
	})
	if err != nil {
		t.Fatalf("View: %v", err)
	}
	check(t, "the first read of a view", inside, before)
	check(t, "a view read after another transaction committed", afterCommit, before)
	now := snapshot(t, s)
	if now.Revision <= before.Revision || len(now.Systems) != len(before.Systems)+1 {
		t.Errorf("after the view: revision %d (was %d), %d systems (was %d): the commit is not visible", now.Revision, before.Revision, len(now.Systems), len(before.Systems))
	}

	// fn's error comes back unchanged, and a view can be opened again.
	sentinel := errors.New("stop here")
	if err := s.View(ctx, func(catalog.Reader) error { return sentinel }); err != sentinel {
		t.Errorf("View returned %v, want fn's error unchanged", err)
	}
	if err := s.View(ctx, func(r catalog.Reader) error {
		_, err := r.GetMember(ctx, memberUnknown)
		return err
	}); !errors.Is(err, catalog.ErrNotFound) {
		t.Errorf("a Get inside View: %v, want ErrNotFound", err)
	}

	// Several views at once, with a writer running, each see one revision.
	done := make(chan error, 4)
	for range 4 {
		go func() {
			done <- s.View(ctx, func(r catalog.Reader) error {
				rev, err := r.Revision(ctx)
				if err != nil {
					return err
				}
				trail, err := r.ListTrail(ctx, catalog.TrailFilter{Limit: 1_000_000})
				if err != nil {
					return err
				}
				if n := len(trail); n > 0 && trail[n-1].Seq != rev {
					return errors.New("the trail and the revision of one view disagree")
				}
				return nil
			})
		}()
	}
	update(t, s, func(ctx context.Context, tx catalog.Tx) error {
		return tx.AppendTrail(ctx, newTrail("tok-1", memberPolice, "member.update", memberPolice))
	})
	for range 4 {
		if err := <-done; err != nil {
			t.Error(err)
		}
	}
}
