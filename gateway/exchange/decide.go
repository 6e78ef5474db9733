package exchange

import (
	"context"
	"regexp"
	"slices"
	"strings"
	"time"

	"github.com/lienthong/lienthong/catalog"
	"github.com/lienthong/lienthong/policies"
)

// Decide asks the policy engine about fields (empty: everything the
// consumer may have) in the exchange's mode, and refuses with the
// decision's reasons when it denies. A refusal is already recorded.
func (c *Core) Decide(ctx context.Context, x *Exchange, fields []string) (*policies.Decision, *Refusal) {
	began := time.Now()
	d, err := x.snap.Engine.Decide(ctx, policies.Input{
		Consumer: policies.Consumer{ID: x.rec.Consumer}, Provider: x.rec.Provider, Dataset: x.rec.Dataset,
		Fields: fields, Mode: catalog.Mode(x.rec.Mode), Purpose: x.rec.Purpose,
	})
	x.stages.decision += time.Since(began)
	if err != nil {
		// The engine's error names no caller bytes; its kind is enough.
		c.cfg.Log.Error("policy evaluation failed", "exchange", x.rec.ExchangeID, "fault", "policy-evaluation")
		return nil, c.Refuse(ctx, x, statusServiceUnavailable, KindPolicyError, "the policy could not be evaluated")
	}
	x.decision = &d
	x.rec.GrantID = d.GrantID
	for _, reason := range d.Reasons {
		x.rec.Reasons = append(x.rec.Reasons, reason.Code)
	}
	if !d.Allow {
		msgs := make([]string, 0, len(d.Reasons))
		for _, reason := range d.Reasons {
			msgs = append(msgs, reason.Code+": "+reason.Message)
		}
		return nil, c.Refuse(ctx, x, statusForbidden, KindAccessDenied, strings.Join(msgs, "; "))
	}
	return &d, nil
}

// covered reports whether field f is allowed by the decision's fields in
// part or whole: it is an allowed path, lies below one, or holds one.
func covered(f string, allowed []string) bool {
	for _, a := range allowed {
		if a == f || strings.HasPrefix(f, a+".") || strings.HasPrefix(a, f+".") {
			return true
		}
	}
	return false
}

// fieldName is the form of a field path the core names back to a caller;
// anything else it asked for is counted, never echoed.
var fieldName = regexp.MustCompile(`^[A-Za-z0-9_-]{1,64}(\.[A-Za-z0-9_-]{1,64}){0,7}$`)

// withheld lists the fields asked for that the decision allows no part of,
// sorted, each once; names that are not field paths are left out.
func withheld(asked, allowed []string) []string {
	var out []string
	for _, f := range asked {
		if !covered(f, allowed) && fieldName.MatchString(f) && !slices.Contains(out, f) {
			out = append(out, f)
		}
	}
	slices.Sort(out)
	return out
}
