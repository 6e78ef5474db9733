package feed

// This file stands in for the exchange core until it is merged: it
// implements Core over the policy engine (decision in mode feed, row scope
// applied), gateway/projection (projection and masking) and audit.Sink.
// At merge the lead replaces it with the core's own methods; nothing else
// in this package reaches the engine, the projection code or the sink.

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/lienthong/lienthong/audit"
	"github.com/lienthong/lienthong/catalog"
	"github.com/lienthong/lienthong/gateway/feed/event"
	"github.com/lienthong/lienthong/gateway/projection"
	"github.com/lienthong/lienthong/policies"
)

// Policy is one loaded policy revision: the engine that decides and the
// snapshot it was loaded from (the grants say who subscribes).
type Policy struct {
	Engine   *policies.Engine
	Snapshot *policies.Snapshot
}

// PolicySource gives the policy in force.
type PolicySource interface {
	Current() (*Policy, error)
}

// Bridge implements Core for one provider's datasets.
type Bridge struct {
	source PolicySource
	masker *projection.Masker
	sink   audit.Sink
	now    func() time.Time

	mu       sync.Mutex
	revision string
	plans    map[string]*projection.Plan
}

// NewBridge returns the stand-in core.
func NewBridge(source PolicySource, masker *projection.Masker, sink audit.Sink) *Bridge {
	return &Bridge{source: source, masker: masker, sink: sink, now: time.Now, plans: map[string]*projection.Plan{}}
}

// View pins the policy in force.
func (b *Bridge) View(context.Context) (View, error) {
	p, err := b.source.Current()
	if err != nil {
		return nil, err
	}
	return &bridgeView{b: b, p: p, rev: p.Engine.Revision(), subs: map[string][]Subscriber{}}, nil
}

type bridgeView struct {
	b   *Bridge
	p   *Policy
	rev string

	mu   sync.Mutex
	subs map[string][]Subscriber // by dataset ref, worked out once per view
}

func (v *bridgeView) Revision() string { return v.rev }

// Subscribers reads the active feed grants of the snapshot. A grant whose
// validity has not begun or has ended is left out; the decision checks
// everything else (level, assessment, revocation, purpose).
func (v *bridgeView) Subscribers(provider, dataset string) []Subscriber {
	ref := provider + "/" + dataset
	v.mu.Lock()
	defer v.mu.Unlock()
	if subs, ok := v.subs[ref]; ok {
		return subs
	}
	now := v.b.now().UnixNano()
	var subs []Subscriber
	for consumer, byRef := range v.p.Snapshot.Data.Grants {
		var best *policies.GrantData
		for id := range byRef[ref] {
			g := byRef[ref][id]
			if !g.Modes[string(catalog.ModeFeed)] || g.State != string(catalog.GrantActive) || now < g.ValidFrom || now >= g.ValidUntil || len(g.Purposes) == 0 {
				continue
			}
			if best == nil || g.ID < best.ID {
				best = &g
			}
		}
		if best != nil {
			purposes := make([]string, 0, len(best.Purposes))
			for p := range best.Purposes {
				purposes = append(purposes, p)
			}
			slices.Sort(purposes)
			subs = append(subs, Subscriber{Consumer: consumer, Purpose: purposes[0], GrantID: best.ID})
		}
	}
	slices.SortFunc(subs, func(a, b Subscriber) int { return strings.Compare(a.Consumer, b.Consumer) })
	v.subs[ref] = subs
	return subs
}

// Deliver decides, projects, masks and audits one delivery.
func (v *bridgeView) Deliver(ctx context.Context, sub Subscriber, dataset string, ev *event.Event) (*Delivery, error) {
	start := time.Now()
	d, err := v.p.Engine.Decide(ctx, policies.Input{
		Consumer: policies.Consumer{ID: sub.Consumer}, Provider: ev.Source, Dataset: dataset,
		Mode: catalog.ModeFeed, Purpose: sub.Purpose,
	})
	if err != nil {
		return nil, fmt.Errorf("feed: policy: %w", err)
	}
	rec := audit.Record{
		Time: v.b.now().UTC(), ExchangeID: ExchangeID(ev.Source, ev.ID, sub.Consumer), Side: "provider", Phase: audit.Outcome,
		Consumer: sub.Consumer, Provider: ev.Source, Dataset: dataset, Mode: string(catalog.ModeFeed), Purpose: sub.Purpose,
		Subject: v.b.masker.Hash([]byte(strconv.Quote(ev.Subject))), GrantID: d.GrantID, PolicyRevision: v.rev,
		RequestHash: eventHash(ev),
	}
	for _, r := range d.Reasons {
		rec.Reasons = append(rec.Reasons, r.Code)
	}
	if !d.Allow || len(d.Fields) == 0 {
		rec.Status = 403
		v.b.sink.Submit(&rec, audit.CommitSoon)
		return nil, &Refusal{Code: RefusedDenied, Reason: "the policy denies the feed"}
	}
	plan, err := v.b.plan(v.rev, ev.Source+"/"+dataset+"\x00"+sub.Consumer+"\x00"+d.GrantID, &d)
	if err != nil {
		return nil, fmt.Errorf("feed: projection plan: %w", err)
	}
	opts := projection.Options{MaxBytes: event.MaxSize}
	if d.RowScope != nil {
		opts.Keep = rowScope(d.RowScope)
	}
	var buf bytes.Buffer
	stats, err := plan.Project(&buf, bytes.NewReader(ev.Data), opts)
	if err != nil {
		return nil, &Refusal{Code: RefusedPoison, Reason: "the data cannot be projected: " + err.Error()}
	}
	if stats.Records == 0 {
		return nil, &Refusal{Code: RefusedOutOfScope, Reason: "the record is outside the grant's row scope"}
	}
	rec.Status, rec.Fields, rec.Bytes = 200, d.Fields, int64(buf.Len())
	rec.LatencyMS = float64(time.Since(start).Microseconds()) / 1000
	return &Delivery{ExchangeID: rec.ExchangeID, Consumer: sub.Consumer, Subject: rec.Subject, Data: buf.Bytes(), Fields: d.Fields, GrantID: d.GrantID, Revision: v.rev, record: rec}, nil
}

// Record submits a delivery's audit record. CommitSoon: the router waits
// for every receipt of a batch before it commits, so the batch's records
// share one sync rather than each starting its own.
func (v *bridgeView) Record(d *Delivery) *audit.Receipt {
	rec := d.record
	return v.b.sink.Submit(&rec, audit.CommitSoon)
}

// plan compiles a decision once per (revision, dataset, consumer, grant):
// within a revision a consumer's feed decision on a dataset does not change.
func (b *Bridge) plan(rev, key string, d *policies.Decision) (*projection.Plan, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.revision != rev {
		b.revision, b.plans = rev, map[string]*projection.Plan{}
	}
	if p, ok := b.plans[key]; ok {
		return p, nil
	}
	p, err := projection.NewPlan(d.Fields, d.Masks, b.masker)
	if err != nil {
		return nil, err
	}
	b.plans[key] = p
	return p, nil
}

// ExchangeID is the exchange id of one event's delivery to one consumer:
// the same on every attempt, so a redone batch is recognisably the same.
func ExchangeID(source, eventID, consumer string) string {
	h := sha256.Sum256([]byte(source + "\x00" + eventID + "\x00" + consumer))
	return "fx-" + hex.EncodeToString(h[:16])
}

func eventHash(ev *event.Event) string {
	h := sha256.Sum256([]byte(ev.Source + "\x00" + ev.ID))
	return hex.EncodeToString(h[:])
}

// rowScope keeps records whose scope field holds an allowed value.
func rowScope(rs *catalog.RowScope) func(any) bool {
	allowed := map[string]bool{}
	for _, v := range rs.Values {
		allowed[v] = true
	}
	return func(rec any) bool {
		v := rec
		for _, seg := range strings.Split(rs.Field, ".") {
			m, ok := v.(map[string]any)
			if !ok {
				return false
			}
			if v, ok = m[seg]; !ok {
				return false
			}
		}
		switch t := v.(type) {
		case string:
			return allowed[t]
		case json.Number:
			return allowed[t.String()]
		}
		return false
	}
}

// BundleFile is a PolicySource reading a signed policy bundle from a file
// (the gateway keeps the one in force at <stateDir>/policy-bundle.tar.gz),
// checked again whenever the file changes. A bundle older than the one in
// force, or one that does not verify, is refused and the one in force kept.
type BundleFile struct {
	path string
	key  policies.VerificationKey
	cur  atomic.Pointer[Policy]
	mod  time.Time
	size int64
}

// OpenBundleFile loads the bundle at path, verified with key.
func OpenBundleFile(ctx context.Context, path string, key policies.VerificationKey) (*BundleFile, error) {
	bf := &BundleFile{path: path, key: key}
	if _, err := bf.Reload(ctx); err != nil {
		return nil, err
	}
	return bf, nil
}

// Current is the policy in force.
func (bf *BundleFile) Current() (*Policy, error) {
	if p := bf.cur.Load(); p != nil {
		return p, nil
	}
	return nil, errors.New("feed: no policy loaded")
}

// Reload loads the file if it changed since the last load, and reports
// whether a new revision came into force.
func (bf *BundleFile) Reload(ctx context.Context) (bool, error) {
	fi, err := os.Stat(bf.path)
	if err != nil {
		return false, fmt.Errorf("feed: policy bundle: %w", err)
	}
	if fi.ModTime().Equal(bf.mod) && fi.Size() == bf.size {
		return false, nil
	}
	raw, err := os.ReadFile(bf.path)
	if err != nil {
		return false, fmt.Errorf("feed: policy bundle: %w", err)
	}
	snap, err := policies.LoadBundle(bytes.NewReader(raw), bf.key)
	if err != nil {
		return false, fmt.Errorf("feed: policy bundle %s: %w", bf.path, err)
	}
	bf.mod, bf.size = fi.ModTime(), fi.Size()
	prev := bf.cur.Load()
	if prev != nil {
		if prev.Snapshot.Revision == snap.Revision {
			return false, nil
		}
		if olderRevision(snap.Revision, prev.Snapshot.Revision) {
			return false, fmt.Errorf("feed: policy bundle revision %s is older than the one in force (%s); refused", snap.Revision, prev.Snapshot.Revision)
		}
	}
	eng := policies.NewEngine()
	if err := eng.Load(ctx, snap); err != nil {
		return false, fmt.Errorf("feed: policy bundle %s: %w", snap.Revision, err)
	}
	bf.cur.Store(&Policy{Engine: eng, Snapshot: snap})
	return true, nil
}

func olderRevision(a, b string) bool {
	x, errA := strconv.ParseInt(a, 10, 64)
	y, errB := strconv.ParseInt(b, 10, 64)
	return errA == nil && errB == nil && x < y
}
