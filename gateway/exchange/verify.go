package exchange

import (
	"bytes"
	"context"
	"encoding/json"
	"slices"

	"github.com/lienthong/lienthong/catalog"
)

// BeginVerify runs a verification's stages up to the backend: Admit, the
// claims, the decision on the claimed fields, masks, the record id, the
// per-record limit and the intent record (the native door's own code,
// stopped before the fetch). A door that hands the fetch to a later call
// (ext_authz, whose ext_proc answers) finishes it with FinishVerify, or with
// Abandon when that call never comes. A refusal is already recorded.
func (c *Core) BeginVerify(ctx context.Context, req Request) (*Exchange, *Refusal) {
	if req.Mode != catalog.ModeVerify {
		return nil, c.Reject(ctx, req, statusBadRequest, KindInvalidInput, "only verify exchanges are served here")
	}
	x, ref := c.Admit(ctx, req)
	if ref != nil {
		return nil, ref
	}
	if _, ref := c.serveVerify(ctx, x, false); ref != nil {
		return nil, ref
	}
	return x, nil
}

// verifyClaims reads a begun verification's claims again (its body passed
// the checks when it began), their fields sorted, and its record id.
func verifyClaims(x *Exchange) (verifyRequest, []string, string) {
	var in verifyRequest
	_ = json.NewDecoder(bytes.NewReader(x.req.Body)).Decode(&in)
	fields := make([]string, 0, len(in.Attributes))
	for f := range in.Attributes {
		fields = append(fields, f)
	}
	slices.Sort(fields)
	return in, fields, x.req.Record
}
