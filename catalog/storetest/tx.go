package storetest

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/lienthong/lienthong/catalog"
)

// populate seeds the federation and stores one object of every kind.
func populate(t *testing.T, s catalog.Store) {
	t.Helper()
	seed(t, s)
	update(t, s, func(ctx context.Context, tx catalog.Tx) error {
		return errors.Join(
			tx.SetAssessment(ctx, sysPopulation, newAssessment(4, "QĐ 1", 365)),
			tx.InsertDataset(ctx, newDataset(sysPopulation, "population", 1)),
			tx.CreateToken(ctx, newToken("tok-1", catalog.RoleMemberAdmin, memberPolice)),
			tx.CreateAccessRequest(ctx, newRequest("req-1", sysInsurance, sysPopulation, "population", catalog.RequestPending)),
			tx.CreateGrant(ctx, newGrant("grant-1", sysInsurance, sysPopulation, "population", catalog.GrantActive, at(60*24*365))),
			tx.InsertCertificate(ctx, newCertificate("0a1b2c", sysPopulation)),
			tx.AppendTrail(ctx, newTrail("tok-1", memberPolice, "member.create", memberPolice)),
		)
	})
}

// state is everything a Reader shows, to compare before and after.
type state struct {
	Members      []catalog.Member
	Systems      []catalog.System
	Datasets     []catalog.Dataset
	Versions     []catalog.Dataset
	Document     []byte
	Tokens       []catalog.Token
	Requests     []catalog.AccessRequest
	Grants       []catalog.Grant
	Certificates []catalog.Certificate
	Trail        []catalog.TrailEntry
	Revision     int64
}

func snapshot(t *testing.T, r catalog.Reader) state {
	t.Helper()
	ctx := t.Context()
	var st state
	st.Members = must(r.ListMembers(ctx))(t)
	st.Systems = sorted(must(r.ListSystems(ctx, catalog.SystemFilter{}))(t), systemID)
	st.Datasets = sorted(must(r.ListDatasets(ctx, catalog.DatasetFilter{}))(t), datasetRef)
	st.Versions = must(r.ListDatasetVersions(ctx, sysPopulation, "population"))(t)
	st.Document = must(r.GetDataset(ctx, sysPopulation, "population", 0))(t).Document
	st.Tokens = sorted(must(r.ListTokens(ctx, catalog.TokenFilter{}))(t), tokenID)
	st.Requests = sorted(must(r.ListAccessRequests(ctx, catalog.AccessRequestFilter{}))(t), requestID)
	st.Grants = sorted(must(r.ListGrants(ctx, catalog.GrantFilter{}))(t), grantID)
	st.Certificates = sorted(must(r.ListCertificates(ctx, catalog.CertificateFilter{}))(t), certSerial)
	st.Trail = must(r.ListTrail(ctx, catalog.TrailFilter{}))(t)
	st.Revision = must(r.Revision(ctx))(t)
	st.Members = sorted(st.Members, memberCode)
	return st
}

// writeEverything calls every Tx write method once, successfully.
func writeEverything(ctx context.Context, tx catalog.Tx) error {
	req := newRequest("req-1", sysInsurance, sysPopulation, "population", catalog.RequestApproved)
	req.GrantID = "grant-1"
	g := newGrant("grant-1", sysInsurance, sysPopulation, "population", catalog.GrantRevoked, at(60*24*365))
	return errors.Join(
		tx.CreateMember(ctx, newMember("000.00.02.H10", "UBND tỉnh Hà Giang")),
		tx.CreateSystem(ctx, newSystem("VN:GOV:000.00.02.H10:DVC", "Cổng DVC Hà Giang", 2)),
		tx.SetAssessment(ctx, sysPopulation, newAssessment(2, "QĐ 2", 30)),
		tx.RevokeSystem(ctx, sysPortal, at(200), "test"),
		tx.InsertDataset(ctx, newDataset(sysPopulation, "population", 2)),
		tx.CreateToken(ctx, newToken("tok-2", catalog.RoleAuditor, memberHanoi)),
		tx.RevokeToken(ctx, "tok-1", at(200)),
		tx.CreateAccessRequest(ctx, newRequest("req-2", sysPortal, sysCivil, "births", catalog.RequestPending)),
		tx.UpdateAccessRequest(ctx, req),
		tx.CreateGrant(ctx, newGrant("grant-2", sysPortal, sysCivil, "births", catalog.GrantActive, at(600))),
		tx.UpdateGrant(ctx, g),
		tx.InsertCertificate(ctx, newCertificate("ffee", sysCivil)),
		tx.RevokeCertificate(ctx, "0a1b2c", at(200), "test"),
		tx.AppendTrail(ctx, newTrail("tok-1", memberPolice, "everything", "x")),
	)
}

func testNotFound(t *testing.T, s catalog.Store) {
	populate(t, s)
	gets := []struct {
		name string
		get  func(ctx context.Context, r catalog.Reader) error
	}{
		{"GetMember", func(ctx context.Context, r catalog.Reader) error {
			_, err := r.GetMember(ctx, memberUnknown)
			return err
		}},
		{"GetSystem", func(ctx context.Context, r catalog.Reader) error { _, err := r.GetSystem(ctx, sysUnknown); return err }},
		{"GetDataset unknown code", func(ctx context.Context, r catalog.Reader) error {
			_, err := r.GetDataset(ctx, sysPopulation, "nothing", 0)
			return err
		}},
		{"GetDataset unknown system", func(ctx context.Context, r catalog.Reader) error {
			_, err := r.GetDataset(ctx, sysCivil, "population", 1)
			return err
		}},
		{"GetDataset unknown version", func(ctx context.Context, r catalog.Reader) error {
			_, err := r.GetDataset(ctx, sysPopulation, "population", 2)
			return err
		}},
		{"GetToken", func(ctx context.Context, r catalog.Reader) error { _, err := r.GetToken(ctx, "tok-none"); return err }},
		{"GetAccessRequest", func(ctx context.Context, r catalog.Reader) error {
			_, err := r.GetAccessRequest(ctx, "req-none")
			return err
		}},
		{"GetGrant", func(ctx context.Context, r catalog.Reader) error { _, err := r.GetGrant(ctx, "grant-none"); return err }},
		{"GetCertificate", func(ctx context.Context, r catalog.Reader) error { _, err := r.GetCertificate(ctx, "ffff"); return err }},
	}
	for _, g := range gets {
		wantErr(t, g.name, g.get(t.Context(), s), catalog.ErrNotFound)
	}
	// The same inside a transaction.
	update(t, s, func(ctx context.Context, tx catalog.Tx) error {
		for _, g := range gets {
			wantErr(t, g.name+" in a Tx", g.get(ctx, tx), catalog.ErrNotFound)
		}
		return nil
	})

	writes := []struct {
		name  string
		write func(ctx context.Context, tx catalog.Tx) error
	}{
		{"SetAssessment", func(ctx context.Context, tx catalog.Tx) error {
			return tx.SetAssessment(ctx, sysUnknown, newAssessment(3, "QĐ", 10))
		}},
		{"RevokeSystem", func(ctx context.Context, tx catalog.Tx) error { return tx.RevokeSystem(ctx, sysUnknown, at(1), "x") }},
		{"RevokeToken", func(ctx context.Context, tx catalog.Tx) error { return tx.RevokeToken(ctx, "tok-none", at(1)) }},
		{"UpdateAccessRequest", func(ctx context.Context, tx catalog.Tx) error {
			return tx.UpdateAccessRequest(ctx, newRequest("req-none", sysInsurance, sysPopulation, "population", catalog.RequestRefused))
		}},
		{"UpdateGrant", func(ctx context.Context, tx catalog.Tx) error {
			return tx.UpdateGrant(ctx, newGrant("grant-none", sysInsurance, sysPopulation, "population", catalog.GrantRevoked, at(5)))
		}},
		{"RevokeCertificate", func(ctx context.Context, tx catalog.Tx) error { return tx.RevokeCertificate(ctx, "ffff", at(1), "x") }},
	}
	before := snapshot(t, s)
	for _, w := range writes {
		err := s.Update(t.Context(), func(tx catalog.Tx) error { return w.write(t.Context(), tx) })
		wantErr(t, w.name+" of a missing key", err, catalog.ErrNotFound)
	}
	check(t, "store after failed updates", snapshot(t, s), before)
}

func testConflict(t *testing.T, s catalog.Store) {
	ctx := t.Context()
	populate(t, s)
	before := snapshot(t, s)
	dupes := []struct {
		name   string
		create func(ctx context.Context, tx catalog.Tx) error
	}{
		{"CreateMember", func(ctx context.Context, tx catalog.Tx) error {
			return tx.CreateMember(ctx, newMember(memberPolice, "another name"))
		}},
		{"CreateSystem", func(ctx context.Context, tx catalog.Tx) error {
			return tx.CreateSystem(ctx, newSystem(sysPopulation, "another name", 1))
		}},
		{"InsertDataset", func(ctx context.Context, tx catalog.Tx) error {
			d := newDataset(sysPopulation, "population", 1)
			d.Title = "another title"
			return tx.InsertDataset(ctx, d)
		}},
		{"CreateToken", func(ctx context.Context, tx catalog.Tx) error {
			return tx.CreateToken(ctx, newToken("tok-1", catalog.RolePlatformAdmin, ""))
		}},
		{"CreateAccessRequest", func(ctx context.Context, tx catalog.Tx) error {
			return tx.CreateAccessRequest(ctx, newRequest("req-1", sysPortal, sysCivil, "births", catalog.RequestApproved))
		}},
		{"CreateGrant", func(ctx context.Context, tx catalog.Tx) error {
			return tx.CreateGrant(ctx, newGrant("grant-1", sysPortal, sysCivil, "births", catalog.GrantRevoked, at(1)))
		}},
		{"InsertCertificate", func(ctx context.Context, tx catalog.Tx) error {
			return tx.InsertCertificate(ctx, newCertificate("0a1b2c", sysCivil))
		}},
	}
	for _, d := range dupes {
		err := s.Update(ctx, func(tx catalog.Tx) error { return d.create(ctx, tx) })
		wantErr(t, d.name+" of an existing key", err, catalog.ErrConflict)
	}
	check(t, "store after refused duplicates (nothing overwritten)", snapshot(t, s), before)
}

func testRollback(t *testing.T, s catalog.Store) {
	ctx := t.Context()
	populate(t, s)
	before := snapshot(t, s)
	errBoom := errors.New("boom")

	err := s.Update(ctx, func(tx catalog.Tx) error {
		if err := writeEverything(ctx, tx); err != nil {
			t.Errorf("writes before the failure: %v", err)
		}
		return fmt.Errorf("approval failed: %w", errBoom)
	})
	wantErr(t, "Update whose fn failed", err, errBoom)
	check(t, "store after a failed Update", snapshot(t, s), before)

	t.Run("panic", func(t *testing.T) {
		func() {
			defer func() {
				if r := recover(); r != "kaboom" {
					t.Errorf("recovered %v, want the panic value %q passed on", r, "kaboom")
				}
			}()
			_ = s.Update(ctx, func(tx catalog.Tx) error {
				if err := writeEverything(ctx, tx); err != nil {
					t.Errorf("writes before the panic: %v", err)
				}
				panic("kaboom")
			})
		}()
		check(t, "store after a panicking Update", snapshot(t, s), before)
		// The store is still usable: no lock or connection was left behind.
		done := make(chan error, 1)
		go func() { done <- s.Update(ctx, func(tx catalog.Tx) error { return writeEverything(ctx, tx) }) }()
		select {
		case err := <-done:
			if err != nil {
				t.Fatalf("Update after a panic: %v", err)
			}
		case <-time.After(30 * time.Second):
			t.Fatal("Update after a panic did not finish in 30s: a lock was left held")
		}
		if got := must(s.GetMember(ctx, "000.00.02.H10"))(t); got.Name != "UBND tỉnh Hà Giang" {
			t.Errorf("member written after the panic: %+v", got)
		}
	})
}

func testFailedWriteKeepsTxUsable(t *testing.T, s catalog.Store) {
	ctx := t.Context()
	populate(t, s)
	// A caller may handle ErrConflict or ErrNotFound and carry on; the
	// failed call leaves nothing behind and the transaction still commits.
	update(t, s, func(ctx context.Context, tx catalog.Tx) error {
		wantErr(t, "duplicate member", tx.CreateMember(ctx, newMember(memberPolice, "dup")), catalog.ErrConflict)
		wantErr(t, "missing token", tx.RevokeToken(ctx, "tok-none", at(1)), catalog.ErrNotFound)
		wantErr(t, "dataset version gap", tx.InsertDataset(ctx, newDataset(sysPopulation, "population", 5)), catalog.ErrConflict)
		wantErr(t, "duplicate certificate", tx.InsertCertificate(ctx, newCertificate("0a1b2c", sysCivil)), catalog.ErrConflict)
		return errors.Join(
			tx.CreateMember(ctx, newMember("000.00.02.H10", "UBND tỉnh Hà Giang")),
			tx.InsertDataset(ctx, newDataset(sysPopulation, "population", 2)),
			tx.AppendTrail(ctx, newTrail("tok-1", memberPolice, "member.create", "000.00.02.H10")),
		)
	})
	if got := must(s.GetMember(ctx, memberPolice))(t); got.Name != "Bộ Công an" {
		t.Errorf("the refused duplicate changed the member: %+v", got)
	}
	must(s.GetMember(ctx, "000.00.02.H10"))(t)
	if got := must(s.GetDataset(ctx, sysPopulation, "population", 0))(t); got.Version != 2 {
		t.Errorf("latest dataset version %d, want 2", got.Version)
	}
	if got := must(s.ListTrail(ctx, catalog.TrailFilter{Object: "000.00.02.H10"}))(t); len(got) != 1 {
		t.Errorf("trail entries written after the failures: %d, want 1", len(got))
	}
}

func testReadYourWrites(t *testing.T, s catalog.Store) {
	populate(t, s)
	outside := snapshot(t, s)
	update(t, s, func(ctx context.Context, tx catalog.Tx) error {
		if err := writeEverything(ctx, tx); err != nil {
			return err
		}
		inside := snapshot(t, tx)
		if _, err := tx.GetMember(ctx, "000.00.02.H10"); err != nil {
			t.Errorf("GetMember in the Tx that created it: %v", err)
		}
		if got := must(tx.GetSystem(ctx, sysPortal))(t); got.RevokedAt == nil {
			t.Error("GetSystem in the Tx does not show its revocation")
		}
		if got := must(tx.GetSystem(ctx, sysPopulation))(t); got.Assessment == nil || got.Assessment.Reference != "QĐ 2" {
			t.Errorf("GetSystem in the Tx shows assessment %+v, want its own QĐ 2", got.Assessment)
		}
		if got := must(tx.GetDataset(ctx, sysPopulation, "population", 0))(t); got.Version != 2 || len(got.Document) == 0 {
			t.Errorf("GetDataset latest in the Tx: version %d with %d document bytes, want its own version 2", got.Version, len(got.Document))
		}
		if got := must(tx.GetToken(ctx, "tok-1"))(t); got.RevokedAt == nil {
			t.Error("GetToken in the Tx does not show its revocation")
		}
		if got := must(tx.GetAccessRequest(ctx, "req-1"))(t); got.State != catalog.RequestApproved {
			t.Errorf("GetAccessRequest in the Tx: state %s, want its own update", got.State)
		}
		if got := must(tx.GetGrant(ctx, "grant-1"))(t); got.State != catalog.GrantRevoked {
			t.Errorf("GetGrant in the Tx: state %s, want its own update", got.State)
		}
		if got := must(tx.GetCertificate(ctx, "0a1b2c"))(t); got.RevokedAt == nil {
			t.Error("GetCertificate in the Tx does not show its revocation")
		}
		for _, c := range []struct {
			what        string
			in, outside int
		}{
			{"members", len(inside.Members), len(outside.Members)},
			{"systems", len(inside.Systems), len(outside.Systems)},
			{"dataset versions", len(inside.Versions), len(outside.Versions)},
			{"tokens", len(inside.Tokens), len(outside.Tokens)},
			{"requests", len(inside.Requests), len(outside.Requests)},
			{"grants", len(inside.Grants), len(outside.Grants)},
			{"certificates", len(inside.Certificates), len(outside.Certificates)},
			{"trail entries", len(inside.Trail), len(outside.Trail)},
		} {
			if c.in != c.outside+1 {
				t.Errorf("the Tx lists %d %s, want its own new one on top of %d", c.in, c.what, c.outside)
			}
		}
		if inside.Revision <= outside.Revision || inside.Revision != inside.Trail[len(inside.Trail)-1].Seq {
			t.Errorf("Revision in the Tx = %d, want its own newest Seq %d", inside.Revision, inside.Trail[len(inside.Trail)-1].Seq)
		}
		// Until it commits, the store does not see any of it.
		check(t, "store during the Tx", snapshot(t, s), outside)
		return nil
	})
	if after := snapshot(t, s); len(after.Members) != len(outside.Members)+1 || after.Revision <= outside.Revision {
		t.Errorf("after commit the store shows %d members and revision %d", len(after.Members), after.Revision)
	}
}

func testEmptyLists(t *testing.T, s catalog.Store) {
	ctx := t.Context()
	lists := []struct {
		name string
		list func(r catalog.Reader) (int, bool, error)
	}{
		{"ListMembers", func(r catalog.Reader) (int, bool, error) { x, err := r.ListMembers(ctx); return len(x), x == nil, err }},
		{"ListSystems", func(r catalog.Reader) (int, bool, error) {
			x, err := r.ListSystems(ctx, catalog.SystemFilter{})
			return len(x), x == nil, err
		}},
		{"ListDatasets", func(r catalog.Reader) (int, bool, error) {
			x, err := r.ListDatasets(ctx, catalog.DatasetFilter{})
			return len(x), x == nil, err
		}},
		{"ListDatasetVersions", func(r catalog.Reader) (int, bool, error) {
			x, err := r.ListDatasetVersions(ctx, sysPopulation, "population")
			return len(x), x == nil, err
		}},
		{"ListTokens", func(r catalog.Reader) (int, bool, error) {
			x, err := r.ListTokens(ctx, catalog.TokenFilter{})
			return len(x), x == nil, err
		}},
		{"ListAccessRequests", func(r catalog.Reader) (int, bool, error) {
			x, err := r.ListAccessRequests(ctx, catalog.AccessRequestFilter{})
			return len(x), x == nil, err
		}},
		{"ListGrants", func(r catalog.Reader) (int, bool, error) {
			x, err := r.ListGrants(ctx, catalog.GrantFilter{})
			return len(x), x == nil, err
		}},
		{"ListCertificates", func(r catalog.Reader) (int, bool, error) {
			x, err := r.ListCertificates(ctx, catalog.CertificateFilter{})
			return len(x), x == nil, err
		}},
		{"ListTrail", func(r catalog.Reader) (int, bool, error) {
			x, err := r.ListTrail(ctx, catalog.TrailFilter{})
			return len(x), x == nil, err
		}},
	}
	checkAll := func(where string, r catalog.Reader) {
		for _, l := range lists {
			n, isNil, err := l.list(r)
			switch {
			case err != nil:
				t.Errorf("%s %s: %v", l.name, where, err)
			case isNil || n != 0:
				t.Errorf("%s %s: got %d entries (nil: %v), want an empty non-nil slice", l.name, where, n, isNil)
			}
		}
	}
	checkAll("on an empty store", s)
	update(t, s, func(ctx context.Context, tx catalog.Tx) error {
		checkAll("in a Tx on an empty store", tx)
		return nil
	})
}

func testTimes(t *testing.T, s catalog.Store) {
	ctx := t.Context()
	seed(t, s)
	ict := time.FixedZone("ICT", 7*60*60)
	cases := []struct {
		name string
		in   time.Time
	}{
		{"zero", time.Time{}},
		{"nanoseconds in UTC+7", time.Date(2025, 7, 1, 8, 30, 0, 123456789, ict)},
		{"before 1970", time.Date(1900, 1, 1, 0, 0, 0, 1000, ict)},
		{"far future", time.Date(9999, 12, 31, 23, 59, 59, 999999999, time.UTC)},
		{"with a monotonic reading", time.Now()},
	}
	for i, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			want := tc.in.Truncate(time.Microsecond)
			code := fmt.Sprintf("200.00.%02d.T01", i)
			sys := fmt.Sprintf("VN:GOV:%s:TIME", code)
			req := newRequest(fmt.Sprintf("req-time-%d", i), sysInsurance, sysPopulation, "population", catalog.RequestPending)
			req.ValidFrom, req.History[0].At = tc.in, tc.in
			tk := newToken(fmt.Sprintf("tok-time-%d", i), catalog.RoleAuditor, "")
			tk.ExpiresAt = ptr(tc.in)
			e := newTrail("tok", "", "time", code)
			e.At = tc.in
			a := newAssessment(3, "QĐ", 1)
			a.ValidUntil = tc.in
			update(t, s, func(ctx context.Context, tx catalog.Tx) error {
				m := newMember(code, "time")
				m.CreatedAt = tc.in
				return errors.Join(
					tx.CreateMember(ctx, m),
					tx.CreateSystem(ctx, newSystem(sys, "time", 1)),
					tx.SetAssessment(ctx, sys, a),
					tx.RevokeSystem(ctx, sys, tc.in, "time"),
					tx.CreateToken(ctx, tk),
					tx.CreateAccessRequest(ctx, req),
					tx.AppendTrail(ctx, e),
				)
			})
			gotSys := must(s.GetSystem(ctx, sys))(t)
			gotReq := must(s.GetAccessRequest(ctx, req.ID))(t)
			trail := must(s.ListTrail(ctx, catalog.TrailFilter{Object: code}))(t)
			if len(trail) != 1 {
				t.Fatalf("trail entries for %s: %d", code, len(trail))
			}
			got := map[string]time.Time{
				"Member.CreatedAt":            must(s.GetMember(ctx, code))(t).CreatedAt,
				"System.RevokedAt":            *gotSys.RevokedAt,
				"Assessment.ValidUntil":       gotSys.Assessment.ValidUntil,
				"Token.ExpiresAt":             *must(s.GetToken(ctx, tk.ID))(t).ExpiresAt,
				"AccessRequest.ValidFrom":     gotReq.ValidFrom,
				"AccessRequest.History[0].At": gotReq.History[0].At,
				"TrailEntry.At":               trail[0].At,
			}
			for field, g := range got {
				if !g.Equal(want) {
					t.Errorf("%s: stored %s, read back %s, want %s (the same instant, to the microsecond)",
						field, tc.in.Format(time.RFC3339Nano), g.Format(time.RFC3339Nano), want.Format(time.RFC3339Nano))
				}
				if g.Location() != time.UTC && field != "AccessRequest.History[0].At" {
					t.Errorf("%s: read back in %s, want UTC", field, g.Location())
				}
			}
		})
	}
}

func testNestedJSON(t *testing.T, s catalog.Store) {
	ctx := t.Context()
	seed(t, s)
	tricky := "Nguyễn Thị Ánh 😀 \"quoted\" back\\slash <b>&amp;</b> tab\tnewline\n{\"json\":[1,2]}"
	m := newMember("000.00.03.H30", "Sở Thông tin và Truyền thông "+tricky)
	m.Contacts = []catalog.Contact{
		{Name: tricky, Email: "a+b@stttt.gov.vn", Phone: "0243.123.456", Role: "bảo mật"},
		{Name: "only a name"},
		{Name: "Ω", Email: "omega@example.vn"},
	}
	d := newDataset(sysPopulation, "population", 1)
	d.Fields = append(d.Fields,
		catalog.Field{Path: "permanentResidence.provinceCode", Type: "string", Format: "^[0-9]{2}$", Classification: catalog.Public, DefaultShared: true, Description: tricky},
		catalog.Field{Path: "religion", Type: "string", Classification: catalog.Sensitive, Description: "Tôn giáo"},
	)
	d.Document = []byte("openapi: 3.0.3\ninfo:\n  title: \"Dân cư\"\n\x00\xff binary-safe\n")
	r := newRequest("req-json", sysInsurance, sysPopulation, "population", catalog.RequestApproved)
	r.Fields = []string{"a", "a.b", "a.b.c", tricky}
	r.RowScope = &catalog.RowScope{Field: "permanentResidence.provinceCode", Values: []string{"01", "79", tricky}}
	r.Approved = []catalog.GrantedField{{Path: "a", Mask: catalog.MaskNullify}, {Path: "a.b", Mask: catalog.MaskPartial}, {Path: "a.b.c"}}
	r.Modes = []catalog.Mode{catalog.ModeQuery, catalog.ModeVerify, catalog.ModeFeed}
	r.History = []catalog.RequestEvent{
		{At: at(1), Actor: "tok-a", Action: "request.create"},
		{At: at(2), Actor: "tok-b", Action: "request.comment", Detail: tricky},
		{At: at(3), Actor: "tok-c", Action: "request.approve", Detail: "3 fields"},
	}
	g := newGrant("grant-json", sysInsurance, sysPopulation, "population", catalog.GrantActive, at(9999))
	g.Purposes = []catalog.Purpose{{Code: "1.001234", Text: tricky}, {Code: "1.000001"}, {Code: "2.002"}}
	g.LegalBasis = catalog.LegalBasis{Reference: "Luật Căn cước 2023, Điều 9", Text: tricky}
	g.Fields = r.Approved
	g.RowScope = r.RowScope
	g.History = r.History
	e := newTrail("tok-json", memberPolice, "dataset.publish", "json")
	e.Before = []byte(`{"b": 2,  "a": 1}`) // kept byte for byte, not re-encoded
	e.After = []byte("{\n  \"z\": [\"" + "ễ" + "\"]\n}")
	update(t, s, func(ctx context.Context, tx catalog.Tx) error {
		return errors.Join(
			tx.CreateMember(ctx, m),
			tx.InsertDataset(ctx, d),
			tx.CreateAccessRequest(ctx, r),
			tx.CreateGrant(ctx, g),
			tx.AppendTrail(ctx, e),
		)
	})
	check(t, "member", must(s.GetMember(ctx, m.Code))(t), m)
	check(t, "dataset", must(s.GetDataset(ctx, d.System, d.Code, 1))(t), d)
	check(t, "request", must(s.GetAccessRequest(ctx, r.ID))(t), r)
	check(t, "grant", must(s.GetGrant(ctx, g.ID))(t), g)
	check(t, "trail", must(s.ListTrail(ctx, catalog.TrailFilter{Object: "json"}))(t), []catalog.TrailEntry{*e})
}

func testConcurrentUpdates(t *testing.T, s catalog.Store) {
	ctx := t.Context()
	seed(t, s)
	const workers, each = 6, 8
	var (
		wg   sync.WaitGroup
		mu   sync.Mutex
		seqs = map[int64]bool{}
		stop = make(chan struct{})
	)
	// Readers run alongside the writers.
	var readers sync.WaitGroup
	for range 2 {
		readers.Go(func() {
			for {
				select {
				case <-stop:
					return
				default:
				}
				if _, err := s.ListMembers(ctx); err != nil {
					t.Errorf("ListMembers during writes: %v", err)
					return
				}
				if _, err := s.Revision(ctx); err != nil {
					t.Errorf("Revision during writes: %v", err)
					return
				}
			}
		})
	}
	for w := range workers {
		wg.Go(func() {
			for i := range each {
				var seq int64
				// Each Update reads the latest dataset version and writes the
				// next: a read-modify-write that only works if Updates are
				// serialised.
				err := s.Update(ctx, func(tx catalog.Tx) error {
					code := fmt.Sprintf("300.%02d.%02d.C01", w, i)
					if err := tx.CreateMember(ctx, newMember(code, "concurrent")); err != nil {
						return err
					}
					next := 1
					if d, err := tx.GetDataset(ctx, sysPopulation, "counter", 0); err == nil {
						next = d.Version + 1
					} else if !errors.Is(err, catalog.ErrNotFound) {
						return err
					}
					if err := tx.InsertDataset(ctx, newDataset(sysPopulation, "counter", next)); err != nil {
						return err
					}
					e := newTrail("tok-"+code, memberPolice, "member.create", code)
					if err := tx.AppendTrail(ctx, e); err != nil {
						return err
					}
					seq = e.Seq
					return nil
				})
				if err != nil {
					t.Errorf("worker %d update %d: %v", w, i, err)
					return
				}
				mu.Lock()
				seqs[seq] = true
				mu.Unlock()
			}
		})
	}
	wg.Wait()
	close(stop)
	readers.Wait()
	if t.Failed() {
		return
	}

	const n = workers * each
	if len(seqs) != n {
		t.Errorf("%d distinct Seqs for %d committed updates", len(seqs), n)
	}
	if got := must(s.ListMembers(ctx))(t); len(got) != n+3 {
		t.Errorf("ListMembers: %d, want %d", len(got), n+3)
	}
	versions := must(s.ListDatasetVersions(ctx, sysPopulation, "counter"))(t)
	if len(versions) != n {
		t.Errorf("dataset versions: %d, want %d", len(versions), n)
	}
	for i, v := range versions {
		if v.Version != i+1 {
			t.Errorf("version at %d is %d, want %d", i, v.Version, i+1)
			break
		}
	}
	trail := must(s.ListTrail(ctx, catalog.TrailFilter{}))(t)
	if len(trail) != n {
		t.Fatalf("trail: %d entries, want %d", len(trail), n)
	}
	for i, e := range trail {
		if !seqs[e.Seq] || (i > 0 && e.Seq <= trail[i-1].Seq) {
			t.Errorf("trail entry %d has Seq %d: unknown or not ascending", i, e.Seq)
		}
	}
	if rev := must(s.Revision(ctx))(t); rev != trail[n-1].Seq {
		t.Errorf("Revision %d, want the last Seq %d", rev, trail[n-1].Seq)
	}
}
