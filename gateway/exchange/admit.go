package exchange

import (
	"context"
	"crypto/x509"
	"fmt"
	"strings"
	"time"

	"golang.org/x/time/rate"

	"github.com/lienthong/lienthong/catalog"
)

// maxExchangeID bounds an exchange id taken from a peer.
const maxExchangeID = 64

// open starts the exchange record of req on one side.
func (c *Core) open(req Request, side string) *Exchange {
	x := &Exchange{req: req, start: time.Now()}
	x.rec.Side, x.rec.Mode = side, string(req.Mode)
	x.rec.Provider, x.rec.Dataset = req.Provider, req.Dataset
	x.rec.Purpose, x.rec.Case = req.Purpose, req.Case
	x.rec.ExchangeID = req.ExchangeID
	if side == "consumer" || x.rec.ExchangeID == "" || len(x.rec.ExchangeID) > maxExchangeID {
		x.rec.ExchangeID = catalog.NewID("exc")
	}
	return x
}

// seal fixes the consumer and with it the request hash.
func (x *Exchange) seal(consumer string) {
	x.rec.Consumer = consumer
	r := &x.req
	x.rec.RequestHash = RequestHash(r.Method, r.Path, r.Query, consumer, r.Purpose, r.Case, x.rec.ExchangeID, r.Body)
}

// Admit checks everything a provider-side exchange needs before its
// decision: a fresh configuration, a registered peer gateway named by its
// certificate, a consumer of that gateway's member that is not revoked and
// within its rate, a purpose, and a dataset this gateway serves. A refusal
// is already recorded.
func (c *Core) Admit(ctx context.Context, req Request) (*Exchange, *Refusal) {
	x := c.open(req, "provider")
	// The consumer as claimed, so even a refusal is bound to the request as
	// received and reaches the consumer gateway as itself; checked below.
	x.seal(req.Consumer)
	snap, ref := c.fresh()
	if ref != nil {
		return nil, c.refuse(ctx, x, ref)
	}
	x.snap = snap
	x.rec.PolicyRevision = snap.Engine.Revision()
	peer, err := c.identify(req.PeerChain, snap)
	if err == nil {
		if _, ok := snap.GatewayMember[peer]; !ok {
			err = fmt.Errorf("%s is not a registered gateway", peer)
		}
	}
	if err != nil {
		return nil, c.Refuse(ctx, x, statusForbidden, KindUnknownPeer, err.Error())
	}
	consumer := req.Consumer
	if m := MemberOf(consumer); m == "" || m != snap.GatewayMember[peer] {
		return nil, c.Refuse(ctx, x, statusForbidden, KindConsumerNotPeer,
			fmt.Sprintf("the gateway of member %s may only speak for its own systems; %q is not one", snap.GatewayMember[peer], consumer))
	}
	if snap.RevokedSystem[consumer] {
		return nil, c.Refuse(ctx, x, statusForbidden, KindSystemRevoked, "consumer system "+consumer+" has been revoked")
	}
	x.consumerChecked = true
	if !c.limiter(consumer).Allow() {
		ref := refusal(statusTooManyRequests, KindRateLimited, "consumer system "+consumer+" exceeds its request rate at this provider")
		ref.RetryAfter = time.Second
		return nil, c.refuse(ctx, x, ref)
	}
	if req.Purpose == "" {
		return nil, c.Refuse(ctx, x, statusBadRequest, KindPurposeRequired, purposeRequired)
	}
	dsRef := req.Provider + "/" + req.Dataset
	ds, ok := snap.Datasets[dsRef]
	if !ok || MemberOf(req.Provider) != c.cfg.Member {
		return nil, c.Refuse(ctx, x, statusNotFound, KindUnknownDataset, "this gateway serves no dataset "+dsRef)
	}
	x.dataset = ds
	return x, nil
}

const purposeRequired = "a purpose (the X-LT-Purpose header: a public-service procedure code) is required"

// AdmitCaller checks a consumer-side exchange: a fresh configuration, and a
// caller named by its certificate (never by a header) that is a system of
// this gateway's member, with a purpose. The exchange gets a new id.
func (c *Core) AdmitCaller(ctx context.Context, req Request) (*Exchange, *Refusal) {
	x := c.open(req, "consumer")
	x.rec.Subject = c.subject(callerSubjectID(req))
	x.seal("")
	snap, ref := c.fresh()
	if ref != nil {
		return nil, c.refuse(ctx, x, ref)
	}
	x.snap = snap
	caller, err := c.identify(req.PeerChain, snap)
	if err != nil {
		return nil, c.Refuse(ctx, x, statusForbidden, KindUnknownCaller, err.Error())
	}
	x.seal(caller)
	if MemberOf(caller) != c.cfg.Member {
		return nil, c.Refuse(ctx, x, statusForbidden, KindForeignCaller, fmt.Sprintf("system %s is not a system of member %s, which this gateway serves", caller, c.cfg.Member))
	}
	x.consumerChecked = true
	if req.Purpose == "" {
		return nil, c.Refuse(ctx, x, statusBadRequest, KindPurposeRequired, purposeRequired)
	}
	return x, nil
}

// Caller names the system of this gateway's member that a verified
// certificate chain belongs to, under a configuration within its allowed
// staleness: the check of doors that serve the gateway's own systems
// without an exchange of data between members (publishing change events,
// reading one's own delivered feed), which are refused exactly as an
// exchange would be.
func (c *Core) Caller(chain []*x509.Certificate) (string, *Refusal) {
	snap, ref := c.fresh()
	if ref != nil {
		return "", ref
	}
	caller, err := c.identify(chain, snap)
	if err != nil {
		return "", refusal(statusForbidden, KindUnknownCaller, err.Error())
	}
	if MemberOf(caller) != c.cfg.Member {
		return "", refusal(statusForbidden, KindForeignCaller, fmt.Sprintf("system %s is not a system of member %s, which this gateway serves", caller, c.cfg.Member))
	}
	return caller, nil
}

// AdmitDelivery checks an exchange a provider-side component starts on its
// own, with no peer on the line: a feed router delivering a change event to a
// subscribed consumer. It checks what Admit checks except the peer (a fresh
// configuration, a consumer that is not revoked, a purpose, a dataset this
// gateway serves); the decision, the filtering and the records follow as for
// a query, in the request's mode (feed).
func (c *Core) AdmitDelivery(ctx context.Context, req Request) (*Exchange, *Refusal) {
	snap, ref := c.fresh()
	if ref != nil {
		x := c.open(req, "provider")
		x.seal(req.Consumer)
		return nil, c.refuse(ctx, x, ref)
	}
	return c.admitDelivery(ctx, req, snap)
}

// admitDelivery is AdmitDelivery at a snapshot the caller pinned (a feed
// batch decides every event at one revision).
func (c *Core) admitDelivery(ctx context.Context, req Request, snap *Snapshot) (*Exchange, *Refusal) {
	x := c.open(req, "provider")
	x.seal(req.Consumer)
	x.snap = snap
	x.rec.PolicyRevision = snap.Engine.Revision()
	if MemberOf(req.Consumer) == "" || snap.RevokedSystem[req.Consumer] {
		return nil, c.Refuse(ctx, x, statusForbidden, KindSystemRevoked, "consumer system "+req.Consumer+" is not a system or has been revoked")
	}
	x.consumerChecked = true
	if req.Purpose == "" {
		return nil, c.Refuse(ctx, x, statusBadRequest, KindPurposeRequired, purposeRequired)
	}
	ds, ok := snap.Datasets[req.Provider+"/"+req.Dataset]
	if !ok || MemberOf(req.Provider) != c.cfg.Member {
		return nil, c.Refuse(ctx, x, statusNotFound, KindUnknownDataset, "this gateway serves no dataset "+req.Provider+"/"+req.Dataset)
	}
	x.dataset = ds
	return x, nil
}

// callerSubjectID is the personal id a consumer-side request is about, as
// far as the consumer's gateway can tell without the provider's backend
// layout: the record id of a verification, the last segment of a query's
// path.
func callerSubjectID(req Request) string {
	if req.Mode == catalog.ModeVerify {
		return req.Record
	}
	if i := strings.LastIndexByte(req.Record, '/'); i >= 0 {
		return req.Record[i+1:]
	}
	return req.Record
}

// limiter returns the token bucket of one consumer system. The map is
// bounded: past maxLimiters entries it starts afresh, so a peer inventing
// consumer ids cannot grow it without end.
func (c *Core) limiter(consumer string) *rate.Limiter {
	c.limitersMu.Lock()
	defer c.limitersMu.Unlock()
	if l, ok := c.limiters[consumer]; ok {
		return l
	}
	if c.limiters == nil || len(c.limiters) >= maxLimiters {
		c.limiters = map[string]*rate.Limiter{}
	}
	l := rate.NewLimiter(rate.Limit(c.cfg.RatePerSecond), c.cfg.RateBurst)
	c.limiters[consumer] = l
	return l
}

const maxLimiters = 10000

// verifyAttemptsPerRecord bounds verify requests per consumer and record in
// verifyWindow: verify mode must not become a way to read a field with few
// possible values (sex, ethnicity) by trying them all.
const (
	verifyAttemptsPerRecord = 5
	verifyWindow            = time.Hour
)

// allowVerify counts one verify attempt of consumer on record.
func (c *Core) allowVerify(consumer, record string) bool {
	c.limitersMu.Lock()
	defer c.limitersMu.Unlock()
	now := c.cfg.Now()
	if c.verifyAttempts == nil || len(c.verifyAttempts) >= maxLimiters*10 {
		c.verifyAttempts = map[string][]time.Time{}
	}
	key := consumer + "\x00" + record
	recent := c.verifyAttempts[key][:0]
	for _, t := range c.verifyAttempts[key] {
		if now.Sub(t) < verifyWindow {
			recent = append(recent, t)
		}
	}
	if len(recent) >= verifyAttemptsPerRecord {
		c.verifyAttempts[key] = recent
		return false
	}
	c.verifyAttempts[key] = append(recent, now)
	return true
}
