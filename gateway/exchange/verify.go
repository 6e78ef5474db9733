package exchange

import (
	"context"

	"github.com/lienthong/lienthong/catalog"
)

// BeginVerify runs a verification's stages up to the backend: Admit, the
// claims, the decision on the claimed fields, masks, the record id, the
// per-record limit and the intent record. A door that hands the fetch to a
// later call (ext_authz, whose ext_proc answers) finishes it with
// FinishVerify, or with Abandon when that call never comes. A refusal is
// already recorded.
func (c *Core) BeginVerify(ctx context.Context, req Request) (*Exchange, *Refusal) {
	if req.Mode != catalog.ModeVerify {
		return nil, c.Reject(ctx, req, statusBadRequest, KindInvalidInput, "only verify exchanges are served here")
	}
	x, ref := c.Admit(ctx, req)
	if ref != nil {
		return nil, ref
	}
	if ref := c.beginVerify(ctx, x); ref != nil {
		return nil, ref
	}
	return x, nil
}
