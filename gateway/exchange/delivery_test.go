package exchange_test

import (
	"context"
	"encoding/json"
	"fmt"
	"reflect"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/lienthong/lienthong/audit"
	"github.com/lienthong/lienthong/catalog"
	"github.com/lienthong/lienthong/gateway/exchange"
	"github.com/lienthong/lienthong/policies"
)

// bothPurpose is granted, in the parity test, in query and feed mode alike.
const bothPurpose = "4.000001"

// withGrant replaces the world's policy by one revision holding a single
// grant, in query and feed mode, with masks and a row scope; state says
// whether it is active or revoked.
func (w *world) withGrant(t *testing.T, revision string, state catalog.GrantState) {
	t.Helper()
	w.withGrantAssessed(t, revision, state, 24*time.Hour)
}

// withGrantAssessed is withGrant with the consumer's assessment valid for
// the given time from now (negative: expired).
func (w *world) withGrantAssessed(t *testing.T, revision string, state catalog.GrantState, assessed time.Duration) {
	t.Helper()
	now := time.Now()
	old := w.src.snap
	ds := *old.Datasets[provider+"/population"].Catalog
	var systems []catalog.System
	for _, id := range []string{provider, consumer, consumerGW} {
		until := now.Add(24 * time.Hour)
		if id == consumer {
			until = now.Add(assessed)
		}
		systems = append(systems, catalog.System{ID: id, Name: id, SecurityLevel: 3,
			Assessment: &catalog.Assessment{Level: 4, AssessedBy: "A05", Reference: "QĐ 1", ValidUntil: until}})
	}
	grant := catalog.Grant{ID: "g-both", Consumer: consumer, Provider: provider, Dataset: "population",
		Fields: []catalog.GrantedField{{Path: "personalId", Mask: catalog.MaskHash}, {Path: "fullName", Mask: catalog.MaskPartial},
			{Path: "dateOfBirth"}, {Path: "permanentResidence.provinceCode"}},
		RowScope: &catalog.RowScope{Field: "permanentResidence.provinceCode", Values: []string{"01"}},
		Purposes: []catalog.Purpose{{Code: bothPurpose}}, LegalBasis: catalog.LegalBasis{Reference: "Nghị định 13/2023/NĐ-CP"},
		Modes: []catalog.Mode{catalog.ModeQuery, catalog.ModeFeed}, ValidFrom: now.Add(-time.Hour), ValidUntil: now.Add(time.Hour), State: state}
	snap, err := policies.BuildData(systems, []catalog.Dataset{ds}, []catalog.Grant{grant}, nil)
	if err != nil {
		t.Fatal(err)
	}
	snap.Revision, snap.IssuedAt = revision, now
	engine := policies.NewEngine()
	if err := engine.Load(context.Background(), snap); err != nil {
		t.Fatal(err)
	}
	next := *old
	next.Engine, next.Policy = engine, snap.Data
	w.src.snap = &next
}

// The feed door and the query door are one pipeline: the same record under
// the same grant comes out of both with the same fields, the same masks and
// the same row scope, and both audit records name the same subject, grant,
// fields and revision. A revoked grant delivers nothing from the revision
// that revokes it, while a batch pinned to the revision before keeps it.
func TestFeedDeliveryEqualsQuery(t *testing.T) {
	w := newWorld(t)
	ctx := context.Background()
	w.withGrant(t, "8", catalog.GrantActive)

	req := w.query("citizens/" + citizenID)
	req.Purpose = bothPurpose
	answer, ref := w.core.Serve(ctx, req)
	if ref != nil {
		t.Fatalf("query: %v", ref)
	}

	batch, ref := w.core.BeginFeedBatch()
	if ref != nil || batch.Revision() != "8" {
		t.Fatalf("batch %v %v", batch, ref)
	}
	subs := batch.Subscribers(provider, "population")
	if len(subs) != 1 || subs[0] != (exchange.FeedSubscriber{Consumer: consumer, Purpose: bothPurpose, GrantID: "g-both"}) {
		t.Fatalf("subscribers %+v", subs)
	}
	ev := exchange.FeedEvent{Provider: provider, Dataset: "population", ID: "evt-1", Subject: citizenID}
	data, ref := batch.DecodeEvent(ev, []byte(records[citizenID]))
	if ref != nil {
		t.Fatal(ref)
	}
	d, ref := batch.Deliver(ctx, subs[0], data)
	if ref != nil {
		t.Fatalf("feed: %v", ref)
	}
	var q, f map[string]any
	if err := json.Unmarshal(answer.Body, &q); err != nil {
		t.Fatal(err)
	}
	if err := json.Unmarshal(d.Data, &f); err != nil {
		t.Fatal(err)
	}
	if !reflect.DeepEqual(q, f) {
		t.Fatalf("the doors differ:\nquery %s\nfeed  %s", answer.Body, d.Data)
	}
	if strings.Contains(string(d.Data), citizenID) || strings.Contains(string(d.Data), "Nguyễn Văn An") || strings.Contains(string(d.Data), "Hàng Bạc") {
		t.Fatalf("a masked or ungranted value was delivered: %s", d.Data)
	}
	if d.Subject == citizenID || d.Subject == w.subjects.Subject(citizenID) {
		t.Fatalf("the delivery's subject is the record id or its audit name: %q", d.Subject)
	}
	if err := batch.Record([]*exchange.FeedDelivery{d}).Wait(ctx); err != nil {
		t.Fatal(err)
	}
	qrec, frecs := w.records(t, answer.ExchangeID), w.records(t, d.ExchangeID)
	if len(frecs) != 1 {
		t.Fatalf("feed records %+v", frecs)
	}
	qo, fo := qrec[len(qrec)-1], frecs[0]
	if fo.Mode != "feed" || fo.Status != 200 || fo.Subject != qo.Subject || fo.Subject != w.subjects.Subject(citizenID) ||
		fo.GrantID != qo.GrantID || !slices.Equal(fo.Fields, qo.Fields) || fo.PolicyRevision != qo.PolicyRevision ||
		fo.RequestHash != exchange.FeedEventHash(provider, "evt-1") || fo.ExchangeID != exchange.FeedExchangeID(provider, "evt-1", consumer) {
		t.Fatalf("records differ:\nquery %+v\nfeed  %+v", qo, fo)
	}

	// Outside the row scope: the query door answers not-found, the feed door
	// delivers nothing, and neither tells the record apart from a missing one.
	other := exchange.FeedEvent{Provider: provider, Dataset: "population", ID: "evt-2", Subject: otherID}
	otherData, ref := batch.DecodeEvent(other, []byte(records[otherID]))
	if ref != nil {
		t.Fatal(ref)
	}
	if _, ref := batch.Deliver(ctx, subs[0], otherData); ref == nil || ref.Kind != exchange.KindNotFound {
		t.Fatalf("feed outside the row scope: %v", ref)
	}
	oreq := w.query("citizens/" + otherID)
	oreq.Purpose = bothPurpose
	if _, ref := w.core.Serve(ctx, oreq); ref == nil || ref.Kind != exchange.KindNotFound {
		t.Fatalf("query outside the row scope: %v", ref)
	}

	// Data that is not a record of the dataset never reaches a subscriber.
	for _, bad := range []string{`[` + records[citizenID] + `]`, `{"personalId":1}`, `{"personalId":"1","personalId":"2"}`} {
		if _, ref := batch.DecodeEvent(ev, []byte(bad)); ref == nil || ref.Kind != exchange.KindInvalidInput {
			t.Errorf("data %s: %v", bad, ref)
		}
	}

	// Revocation: from revision 9 the consumer is no subscriber, and a
	// delivery asked anyway is denied and recorded; the batch pinned to
	// revision 8 still decides as 8 did.
	w.withGrant(t, "9", catalog.GrantRevoked)
	next, ref := w.core.BeginFeedBatch()
	if ref != nil || next.Revision() != "9" {
		t.Fatalf("batch %v", ref)
	}
	if subs := next.Subscribers(provider, "population"); len(subs) != 0 {
		t.Fatalf("subscribers after the revocation %+v", subs)
	}
	ev3 := exchange.FeedEvent{Provider: provider, Dataset: "population", ID: "evt-3", Subject: citizenID}
	data3, ref := next.DecodeEvent(ev3, []byte(records[citizenID]))
	if ref != nil {
		t.Fatal(ref)
	}
	if _, ref := next.Deliver(ctx, subs[0], data3); ref == nil || ref.Kind != exchange.KindAccessDenied {
		t.Fatalf("delivery after the revocation: %v", ref)
	}
	denied := w.records(t, exchange.FeedExchangeID(provider, "evt-3", consumer))
	if len(denied) != 1 || denied[0].Status != 403 || denied[0].PolicyRevision != "9" || len(denied[0].Fields) != 0 {
		t.Fatalf("denial records %+v", denied)
	}
	data3, ref = batch.DecodeEvent(ev3, []byte(records[citizenID]))
	if ref != nil {
		t.Fatal(ref)
	}
	if d, ref := batch.Deliver(ctx, subs[0], data3); ref != nil || d.Revision != "8" {
		t.Fatalf("the batch pinned to revision 8: %v", ref)
	}
}

// A subscriber whose decision denies (its assessment expired while its
// grant stands) receives nothing, and the denial is recorded once per batch,
// not once per event: a feed decision reads nothing of the event.
func TestFeedDenialRecordedOncePerBatch(t *testing.T) {
	w := newWorld(t)
	ctx := context.Background()
	w.withGrantAssessed(t, "8", catalog.GrantActive, -time.Hour)
	for batchNo := range 2 {
		batch, ref := w.core.BeginFeedBatch()
		if ref != nil {
			t.Fatal(ref)
		}
		subs := batch.Subscribers(provider, "population")
		if len(subs) != 1 {
			t.Fatalf("subscribers %+v", subs)
		}
		for i := range 3 {
			ev := exchange.FeedEvent{Provider: provider, Dataset: "population", ID: fmt.Sprintf("d-%d-%d", batchNo, i), Subject: citizenID}
			data, ref := batch.DecodeEvent(ev, []byte(records[citizenID]))
			if ref != nil {
				t.Fatal(ref)
			}
			if d, ref := batch.Deliver(ctx, subs[0], data); ref == nil || ref.Kind != exchange.KindAccessDenied || d != nil {
				t.Fatalf("batch %d event %d: %v %v", batchNo, i, d, ref)
			}
		}
	}
	all, err := audit.ReadFile(w.auditLog)
	if err != nil {
		t.Fatal(err)
	}
	var denials []string
	for _, r := range all {
		if r.Mode == "feed" {
			if r.Status != 403 || r.Consumer != consumer || len(r.Fields) != 0 {
				t.Errorf("feed record %+v", r)
			}
			denials = append(denials, r.ExchangeID)
		}
	}
	want := []string{exchange.FeedExchangeID(provider, "d-0-0", consumer), exchange.FeedExchangeID(provider, "d-1-0", consumer)}
	if !slices.Equal(denials, want) {
		t.Fatalf("denial records %v, want one per batch %v", denials, want)
	}
}

// A feed batch is refused when the configuration is stale, as every other
// door's exchange is: the router pauses and delivers nothing.
func TestFeedBatchRefusedWhenStale(t *testing.T) {
	w := newWorld(t)
	old := time.Now().Add(-time.Hour)
	w.src.at.Store(&old)
	if _, ref := w.core.BeginFeedBatch(); ref == nil || ref.Kind != exchange.KindStale {
		t.Fatalf("stale: %v", ref)
	}
	var none []audit.Record
	all, err := audit.ReadFile(w.auditLog)
	if err != nil {
		t.Fatal(err)
	}
	for _, r := range all {
		if r.Mode == "feed" {
			none = append(none, r)
		}
	}
	if len(none) != 0 {
		t.Fatalf("a refused batch left records %+v", none)
	}
}
