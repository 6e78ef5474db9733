package storetest

import (
	"context"
	"errors"
	"slices"
	"strings"
	"testing"

	"github.com/lienthong/lienthong/catalog"
)

func testMembers(t *testing.T, s catalog.Store) {
	ctx := t.Context()
	ms := []*catalog.Member{
		newMember(memberInsurance, "Bảo hiểm xã hội Việt Nam"),
		newMember(memberPolice, "Bộ Công an"),
		newMember(memberHanoi, "UBND Thành phố Hà Nội"),
	}
	ms[2].Contacts = nil // a member without contacts
	update(t, s, func(ctx context.Context, tx catalog.Tx) error {
		for _, m := range ms {
			if err := tx.CreateMember(ctx, m); err != nil {
				return err
			}
		}
		return nil
	})
	var want []catalog.Member
	for _, m := range ms {
		check(t, "GetMember "+m.Code, must(s.GetMember(ctx, m.Code))(t), m)
		want = append(want, *m)
	}
	got := must(s.ListMembers(ctx))(t)
	check(t, "ListMembers", sorted(got, memberCode), sorted(want, memberCode))
}

func testSystems(t *testing.T, s catalog.Store) {
	ctx := t.Context()
	seed(t, s)
	var all []catalog.System
	for _, sys := range seedSystems() {
		got := must(s.GetSystem(ctx, sys.ID))(t)
		check(t, "GetSystem "+sys.ID, got, sys)
		if got.Assessment != nil || got.RevokedAt != nil {
			t.Errorf("GetSystem %s: a new system has assessment %v, revoked at %v", sys.ID, got.Assessment, got.RevokedAt)
		}
		all = append(all, *sys)
	}
	check(t, "ListSystems{}", sorted(must(s.ListSystems(ctx, catalog.SystemFilter{}))(t), systemID), sorted(all, systemID))
	for _, tc := range []struct {
		member string
		want   []string
	}{
		{memberPolice, []string{sysPopulation}},
		{memberInsurance, []string{sysInsurance}},
		{memberHanoi, []string{sysPortal, sysCivil}},
		{memberUnknown, nil},
	} {
		wantKeys(t, "ListSystems member "+tc.member, must(s.ListSystems(ctx, catalog.SystemFilter{Member: tc.member}))(t), systemID, tc.want...)
	}
}

func testSetAssessment(t *testing.T, s catalog.Store) {
	ctx := t.Context()
	seed(t, s)
	first := newAssessment(4, "QĐ 123/QĐ-BCA", 365)
	second := newAssessment(3, "QĐ 456/QĐ-BCA", 180) // lower and shorter: newest wins, not highest
	second.RecordedAt = at(9)
	other := newAssessment(3, "QĐ 77/QĐ-BHXH", 90)

	update(t, s, func(ctx context.Context, tx catalog.Tx) error {
		if err := tx.SetAssessment(ctx, sysPopulation, first); err != nil {
			return err
		}
		return tx.SetAssessment(ctx, sysInsurance, other)
	})
	check(t, "first assessment", must(s.GetSystem(ctx, sysPopulation))(t).Assessment, &first)

	update(t, s, func(ctx context.Context, tx catalog.Tx) error {
		return tx.SetAssessment(ctx, sysPopulation, second)
	})
	check(t, "replaced assessment", must(s.GetSystem(ctx, sysPopulation))(t).Assessment, &second)
	check(t, "other system's assessment", must(s.GetSystem(ctx, sysInsurance))(t).Assessment, &other)

	for _, sys := range must(s.ListSystems(ctx, catalog.SystemFilter{}))(t) {
		switch sys.ID {
		case sysPopulation:
			check(t, "ListSystems assessment of "+sys.ID, sys.Assessment, &second)
		case sysInsurance:
			check(t, "ListSystems assessment of "+sys.ID, sys.Assessment, &other)
		default:
			if sys.Assessment != nil {
				t.Errorf("ListSystems: %s was never assessed but has %+v", sys.ID, sys.Assessment)
			}
		}
	}
}

func testRevokeSystem(t *testing.T, s catalog.Store) {
	ctx := t.Context()
	seed(t, s)
	a := newAssessment(3, "QĐ 9/QĐ-UBND", 365)
	update(t, s, func(ctx context.Context, tx catalog.Tx) error {
		if err := tx.SetAssessment(ctx, sysPortal, a); err != nil {
			return err
		}
		return tx.RevokeSystem(ctx, sysPortal, at(100), "khóa bị lộ (key compromised)")
	})
	want := newSystem(sysPortal, "Cổng dịch vụ công Hà Nội", 3)
	want.Assessment = &a
	want.RevokedAt = ptr(at(100))
	want.RevokeReason = "khóa bị lộ (key compromised)"
	check(t, "revoked system", must(s.GetSystem(ctx, sysPortal))(t), want)
	if got := must(s.GetSystem(ctx, sysCivil))(t); got.RevokedAt != nil || got.RevokeReason != "" {
		t.Errorf("revoking %s touched %s: %+v", sysPortal, sysCivil, got)
	}
}

func testDatasetVersions(t *testing.T, s catalog.Store) {
	seed(t, s)
	// Applied in order, each in its own Update.
	steps := []struct {
		name    string
		system  string
		code    string
		version int
		want    error
	}{
		{"a new dataset cannot start at 2", sysPopulation, "population", 2, catalog.ErrConflict},
		{"version 0 is refused", sysPopulation, "population", 0, catalog.ErrConflict},
		{"version 1 starts it", sysPopulation, "population", 1, nil},
		{"version 1 again", sysPopulation, "population", 1, catalog.ErrConflict},
		{"version 3 skips 2", sysPopulation, "population", 3, catalog.ErrConflict},
		{"version 2 follows", sysPopulation, "population", 2, nil},
		{"version 2 again", sysPopulation, "population", 2, catalog.ErrConflict},
		{"another code counts on its own", sysPopulation, "residence", 1, nil},
		{"the same code in another system counts on its own", sysCivil, "population", 1, nil},
		{"version 3 follows", sysPopulation, "population", 3, nil},
	}
	for _, st := range steps {
		err := s.Update(t.Context(), func(tx catalog.Tx) error {
			return tx.InsertDataset(t.Context(), newDataset(st.system, st.code, st.version))
		})
		if st.want == nil {
			if err != nil {
				t.Errorf("%s: %v", st.name, err)
			}
			continue
		}
		wantErr(t, st.name, err, st.want)
	}
	got := must(s.ListDatasetVersions(t.Context(), sysPopulation, "population"))(t)
	want := []catalog.Dataset{
		listed(newDataset(sysPopulation, "population", 1)),
		listed(newDataset(sysPopulation, "population", 2)),
		listed(newDataset(sysPopulation, "population", 3)),
	}
	check(t, "ListDatasetVersions", got, want)
}

func testDatasets(t *testing.T, s catalog.Store) {
	ctx := t.Context()
	seed(t, s)
	pop1, pop2 := newDataset(sysPopulation, "population", 1), newDataset(sysPopulation, "population", 2)
	res1 := newDataset(sysPopulation, "residence", 1)
	births1, births2 := newDataset(sysCivil, "births", 1), newDataset(sysCivil, "births", 2)
	births2.Document = nil // a version stored without a document
	births2.Fields = births2.Fields[:1]
	update(t, s, func(ctx context.Context, tx catalog.Tx) error {
		for _, d := range []*catalog.Dataset{pop1, res1, births1, pop2, births2} {
			if err := tx.InsertDataset(ctx, d); err != nil {
				return err
			}
		}
		return nil
	})

	for _, tc := range []struct {
		name    string
		system  string
		code    string
		version int
		want    *catalog.Dataset
	}{
		{"latest", sysPopulation, "population", 0, pop2},
		{"version 1", sysPopulation, "population", 1, pop1},
		{"version 2", sysPopulation, "population", 2, pop2},
		{"single version, latest", sysPopulation, "residence", 0, res1},
		{"no document", sysCivil, "births", 0, births2},
	} {
		got := must(s.GetDataset(ctx, tc.system, tc.code, tc.version))(t)
		check(t, "GetDataset "+tc.name, got, tc.want)
		if tc.want.Document != nil && len(got.Document) == 0 {
			t.Errorf("GetDataset %s: Document missing", tc.name)
		}
	}

	all := must(s.ListDatasets(ctx, catalog.DatasetFilter{}))(t)
	check(t, "ListDatasets{} (latest versions, no documents)", sorted(all, datasetRef),
		sorted([]catalog.Dataset{listed(pop2), listed(res1), listed(births2)}, datasetRef))
	for _, d := range all {
		if len(d.Document) != 0 {
			t.Errorf("ListDatasets returned the document of %s", datasetRef(d))
		}
	}
	for _, tc := range []struct {
		name string
		f    catalog.DatasetFilter
		want []string
	}{
		{"member", catalog.DatasetFilter{Member: memberPolice}, []string{sysPopulation + "/population@2", sysPopulation + "/residence@1"}},
		{"system", catalog.DatasetFilter{System: sysCivil}, []string{sysCivil + "/births@2"}},
		{"member and system", catalog.DatasetFilter{Member: memberHanoi, System: sysCivil}, []string{sysCivil + "/births@2"}},
		{"member and another's system", catalog.DatasetFilter{Member: memberHanoi, System: sysPopulation}, nil},
		{"member without datasets", catalog.DatasetFilter{Member: memberInsurance}, nil},
	} {
		wantKeys(t, "ListDatasets "+tc.name, must(s.ListDatasets(ctx, tc.f))(t), datasetRef, tc.want...)
	}

	versions := must(s.ListDatasetVersions(ctx, sysCivil, "births"))(t)
	check(t, "ListDatasetVersions (oldest first, no documents)", versions, []catalog.Dataset{listed(births1), listed(births2)})
}

func testTokens(t *testing.T, s catalog.Store) {
	ctx := t.Context()
	seed(t, s)
	admin := newToken("tok-admin", catalog.RolePlatformAdmin, "")
	police := newToken("tok-police", catalog.RoleMemberAdmin, memberPolice)
	police.ExpiresAt = ptr(at(60 * 24 * 90))
	approver := newToken("tok-approver", catalog.RoleApprover, memberPolice)
	integrator := newToken("tok-bhxh", catalog.RoleIntegrator, memberInsurance)
	tokens := []*catalog.Token{admin, police, approver, integrator}
	update(t, s, func(ctx context.Context, tx catalog.Tx) error {
		for _, tk := range tokens {
			if err := tx.CreateToken(ctx, tk); err != nil {
				return err
			}
		}
		return nil
	})
	for _, tk := range tokens {
		check(t, "GetToken "+tk.ID, must(s.GetToken(ctx, tk.ID))(t), tk)
	}

	update(t, s, func(ctx context.Context, tx catalog.Tx) error { return tx.RevokeToken(ctx, police.ID, at(70)) })
	police.RevokedAt = ptr(at(70))
	check(t, "revoked token", must(s.GetToken(ctx, police.ID))(t), police)
	if got := must(s.GetToken(ctx, approver.ID))(t); got.RevokedAt != nil {
		t.Errorf("revoking %s revoked %s too", police.ID, approver.ID)
	}

	var all []catalog.Token
	for _, tk := range tokens {
		all = append(all, *tk)
	}
	check(t, "ListTokens{}", sorted(must(s.ListTokens(ctx, catalog.TokenFilter{}))(t), tokenID), sorted(all, tokenID))
	wantKeys(t, "ListTokens member", must(s.ListTokens(ctx, catalog.TokenFilter{Member: memberPolice}))(t), tokenID, police.ID, approver.ID)
	wantKeys(t, "ListTokens other member", must(s.ListTokens(ctx, catalog.TokenFilter{Member: memberInsurance}))(t), tokenID, integrator.ID)
	wantKeys(t, "ListTokens member without tokens", must(s.ListTokens(ctx, catalog.TokenFilter{Member: memberHanoi}))(t), tokenID)
}

func testAccessRequests(t *testing.T, s catalog.Store) {
	ctx := t.Context()
	seed(t, s)
	r1 := newRequest("req-1", sysInsurance, sysPopulation, "population", catalog.RequestPending)
	r2 := newRequest("req-2", sysPortal, sysPopulation, "population", catalog.RequestApproved)
	r3 := newRequest("req-3", sysInsurance, sysCivil, "births", catalog.RequestRefused)
	r3.RowScope = nil
	r3.Reason = "mục đích không phù hợp"
	reqs := []*catalog.AccessRequest{r1, r2, r3}
	update(t, s, func(ctx context.Context, tx catalog.Tx) error {
		for _, r := range reqs {
			if err := tx.CreateAccessRequest(ctx, r); err != nil {
				return err
			}
		}
		return nil
	})
	for _, r := range reqs {
		check(t, "GetAccessRequest "+r.ID, must(s.GetAccessRequest(ctx, r.ID))(t), r)
	}

	// Approve r1 with fewer fields and masks.
	r1.State = catalog.RequestApproved
	r1.Approved = []catalog.GrantedField{{Path: "personalId", Mask: catalog.MaskHash}, {Path: "fullName"}}
	r1.GrantID = "grant-1"
	r1.Reason = "approved without relatives"
	r1.UpdatedAt = at(25)
	r1.History = append(r1.History, catalog.RequestEvent{At: at(25), Actor: "tok-approver", Action: "request.approve", Detail: "2 of 3 fields"})
	update(t, s, func(ctx context.Context, tx catalog.Tx) error { return tx.UpdateAccessRequest(ctx, r1) })
	check(t, "updated request", must(s.GetAccessRequest(ctx, r1.ID))(t), r1)
	check(t, "untouched request", must(s.GetAccessRequest(ctx, r2.ID))(t), r2)

	for _, tc := range []struct {
		name string
		f    catalog.AccessRequestFilter
		want []string
	}{
		{"all", catalog.AccessRequestFilter{}, []string{"req-1", "req-2", "req-3"}},
		{"member on the provider side", catalog.AccessRequestFilter{Member: memberPolice}, []string{"req-1", "req-2"}},
		{"member on the consumer side", catalog.AccessRequestFilter{Member: memberInsurance}, []string{"req-1", "req-3"}},
		{"member on both sides", catalog.AccessRequestFilter{Member: memberHanoi}, []string{"req-2", "req-3"}},
		{"unknown member", catalog.AccessRequestFilter{Member: memberUnknown}, nil},
		{"consumer", catalog.AccessRequestFilter{Consumer: sysInsurance}, []string{"req-1", "req-3"}},
		{"provider", catalog.AccessRequestFilter{Provider: sysPopulation}, []string{"req-1", "req-2"}},
		{"state", catalog.AccessRequestFilter{State: catalog.RequestApproved}, []string{"req-1", "req-2"}},
		{"state nobody is in", catalog.AccessRequestFilter{State: catalog.RequestWithdrawn}, nil},
		{"member and state", catalog.AccessRequestFilter{Member: memberInsurance, State: catalog.RequestRefused}, []string{"req-3"}},
		{"consumer and provider", catalog.AccessRequestFilter{Consumer: sysPortal, Provider: sysPopulation}, []string{"req-2"}},
		{"consumer is not provider", catalog.AccessRequestFilter{Consumer: sysPopulation}, nil},
	} {
		wantKeys(t, "ListAccessRequests "+tc.name, must(s.ListAccessRequests(ctx, tc.f))(t), requestID, tc.want...)
	}
}

func testGrants(t *testing.T, s catalog.Store) {
	ctx := t.Context()
	seed(t, s)
	g1 := newGrant("grant-1", sysInsurance, sysPopulation, "population", catalog.GrantActive, at(60*24*365))
	g2 := newGrant("grant-2", sysPortal, sysPopulation, "population", catalog.GrantActive, at(60*24*365))
	g3 := newGrant("grant-3", sysInsurance, sysCivil, "births", catalog.GrantActive, at(-60)) // expired, stored active
	g3.RowScope = nil
	g4 := newGrant("grant-4", sysPortal, sysPopulation, "residence", catalog.GrantActive, at(60*24*30))
	grants := []*catalog.Grant{g1, g2, g3, g4}
	update(t, s, func(ctx context.Context, tx catalog.Tx) error {
		for _, g := range grants {
			if err := tx.CreateGrant(ctx, g); err != nil {
				return err
			}
		}
		return nil
	})
	for _, g := range grants {
		check(t, "GetGrant "+g.ID, must(s.GetGrant(ctx, g.ID))(t), g)
	}

	g2.State = catalog.GrantRevoked
	g2.RevokedAt = ptr(at(90))
	g2.RevokeReason = "hết nhu cầu"
	g2.History = append(g2.History, catalog.RequestEvent{At: at(90), Actor: "tok-police", Action: "grant.revoke", Detail: g2.RevokeReason})
	update(t, s, func(ctx context.Context, tx catalog.Tx) error { return tx.UpdateGrant(ctx, g2) })
	check(t, "updated grant", must(s.GetGrant(ctx, g2.ID))(t), g2)
	check(t, "untouched grant", must(s.GetGrant(ctx, g1.ID))(t), g1)

	for _, tc := range []struct {
		name string
		f    catalog.GrantFilter
		want []string
	}{
		{"all", catalog.GrantFilter{}, []string{"grant-1", "grant-2", "grant-3", "grant-4"}},
		{"member on the provider side", catalog.GrantFilter{Member: memberPolice}, []string{"grant-1", "grant-2", "grant-4"}},
		{"member on the consumer side", catalog.GrantFilter{Member: memberInsurance}, []string{"grant-1", "grant-3"}},
		{"member on both sides", catalog.GrantFilter{Member: memberHanoi}, []string{"grant-2", "grant-3", "grant-4"}},
		{"unknown member", catalog.GrantFilter{Member: memberUnknown}, nil},
		{"consumer", catalog.GrantFilter{Consumer: sysPortal}, []string{"grant-2", "grant-4"}},
		{"provider", catalog.GrantFilter{Provider: sysCivil}, []string{"grant-3"}},
		{"dataset code", catalog.GrantFilter{Dataset: "population"}, []string{"grant-1", "grant-2"}},
		{"one dataset (provider and code)", catalog.GrantFilter{Provider: sysPopulation, Dataset: "residence"}, []string{"grant-4"}},
		{"code of another provider", catalog.GrantFilter{Provider: sysCivil, Dataset: "population"}, nil},
		{"stored state active includes the expired grant", catalog.GrantFilter{State: catalog.GrantActive}, []string{"grant-1", "grant-3", "grant-4"}},
		{"stored state revoked", catalog.GrantFilter{State: catalog.GrantRevoked}, []string{"grant-2"}},
		{"expired is never stored", catalog.GrantFilter{State: catalog.GrantExpired}, nil},
		{"consumer, dataset and state", catalog.GrantFilter{Consumer: sysPortal, Dataset: "population", State: catalog.GrantActive}, nil},
	} {
		wantKeys(t, "ListGrants "+tc.name, must(s.ListGrants(ctx, tc.f))(t), grantID, tc.want...)
	}
}

func testCertificates(t *testing.T, s catalog.Store) {
	ctx := t.Context()
	seed(t, s)
	c1 := newCertificate("0a1b2c", sysPopulation)
	c2 := newCertificate("0d3e4f", sysInsurance)
	c3 := newCertificate("1f2e3d", sysInsurance)
	c3.NotBefore = at(45)
	certs := []*catalog.Certificate{c1, c2, c3}
	update(t, s, func(ctx context.Context, tx catalog.Tx) error {
		for _, c := range certs {
			if err := tx.InsertCertificate(ctx, c); err != nil {
				return err
			}
		}
		return nil
	})
	for _, c := range certs {
		check(t, "GetCertificate "+c.Serial, must(s.GetCertificate(ctx, c.Serial))(t), c)
	}

	update(t, s, func(ctx context.Context, tx catalog.Tx) error {
		return tx.RevokeCertificate(ctx, c2.Serial, at(46), "superseded")
	})
	c2.RevokedAt, c2.RevokeReason = ptr(at(46)), "superseded"
	check(t, "revoked certificate", must(s.GetCertificate(ctx, c2.Serial))(t), c2)
	check(t, "untouched certificate", must(s.GetCertificate(ctx, c3.Serial))(t), c3)

	var all []catalog.Certificate
	for _, c := range certs {
		all = append(all, *c)
	}
	check(t, "ListCertificates{}", sorted(must(s.ListCertificates(ctx, catalog.CertificateFilter{}))(t), certSerial), sorted(all, certSerial))
	for _, tc := range []struct {
		name string
		f    catalog.CertificateFilter
		want []string
	}{
		{"system", catalog.CertificateFilter{System: sysInsurance}, []string{"0d3e4f", "1f2e3d"}},
		{"member", catalog.CertificateFilter{Member: memberPolice}, []string{"0a1b2c"}},
		{"member and system", catalog.CertificateFilter{Member: memberInsurance, System: sysInsurance}, []string{"0d3e4f", "1f2e3d"}},
		{"member and another's system", catalog.CertificateFilter{Member: memberPolice, System: sysInsurance}, nil},
		{"member without certificates", catalog.CertificateFilter{Member: memberHanoi}, nil},
	} {
		wantKeys(t, "ListCertificates "+tc.name, must(s.ListCertificates(ctx, tc.f))(t), certSerial, tc.want...)
	}
}

func testAgencyModules(t *testing.T, s catalog.Store) {
	ctx := t.Context()
	seed(t, s)
	if ms := must(s.ListAgencyModules(ctx))(t); ms == nil || len(ms) != 0 {
		t.Fatalf("ListAgencyModules on empty store = %#v, want empty non-nil", ms)
	}
	m1 := &catalog.AgencyModule{Provider: sysPopulation, Source: []byte("package a\n"), Digest: "d1", UpdatedAt: at(50), UpdatedBy: "tok-1"}
	m2 := &catalog.AgencyModule{Provider: sysInsurance, Source: []byte("package b\n"), Digest: "d2", UpdatedAt: at(51), UpdatedBy: "tok-2"}
	update(t, s, func(ctx context.Context, tx catalog.Tx) error {
		if err := tx.PutAgencyModule(ctx, m2); err != nil {
			return err
		}
		return tx.PutAgencyModule(ctx, m1)
	})
	check(t, "GetAgencyModule", must(s.GetAgencyModule(ctx, sysPopulation))(t), m1)
	check(t, "ListAgencyModules ordered by provider", must(s.ListAgencyModules(ctx))(t), sortedModules(*m1, *m2))

	// Put replaces.
	m1b := &catalog.AgencyModule{Provider: sysPopulation, Source: []byte("package a2\n"), Digest: "d3", UpdatedAt: at(52), UpdatedBy: "tok-3"}
	update(t, s, func(ctx context.Context, tx catalog.Tx) error { return tx.PutAgencyModule(ctx, m1b) })
	check(t, "replaced module", must(s.GetAgencyModule(ctx, sysPopulation))(t), m1b)

	// A module for a system that does not exist is refused.
	err := s.Update(ctx, func(tx catalog.Tx) error {
		return tx.PutAgencyModule(ctx, &catalog.AgencyModule{Provider: "VN:GOV:000.00.00.G99:NONE", Source: []byte("x"), Digest: "d", UpdatedAt: at(53), UpdatedBy: "t"})
	})
	if !errors.Is(err, catalog.ErrNotFound) {
		t.Errorf("module for missing system: err = %v, want ErrNotFound", err)
	}

	update(t, s, func(ctx context.Context, tx catalog.Tx) error { return tx.DeleteAgencyModule(ctx, sysInsurance) })
	if _, err := s.GetAgencyModule(ctx, sysInsurance); !errors.Is(err, catalog.ErrNotFound) {
		t.Errorf("deleted module: err = %v, want ErrNotFound", err)
	}
	err = s.Update(ctx, func(tx catalog.Tx) error { return tx.DeleteAgencyModule(ctx, sysInsurance) })
	if !errors.Is(err, catalog.ErrNotFound) {
		t.Errorf("deleting a missing module: err = %v, want ErrNotFound", err)
	}
}

func sortedModules(ms ...catalog.AgencyModule) []catalog.AgencyModule {
	slices.SortFunc(ms, func(a, b catalog.AgencyModule) int { return strings.Compare(a.Provider, b.Provider) })
	return ms
}

func testGateways(t *testing.T, s catalog.Store) {
	ctx := t.Context()
	seed(t, s)
	if gs := must(s.ListGateways(ctx))(t); gs == nil || len(gs) != 0 {
		t.Fatalf("ListGateways on empty store = %#v", gs)
	}
	memberOf := func(id string) string { return strings.Split(id, ":")[2] }
	g1 := &catalog.Gateway{Member: memberOf(sysPopulation), System: sysPopulation, Address: "127.0.0.1:9444", UpdatedAt: at(60)}
	g2 := &catalog.Gateway{Member: memberOf(sysInsurance), System: sysInsurance, Address: "[::1]:9444", UpdatedAt: at(61)}
	update(t, s, func(ctx context.Context, tx catalog.Tx) error {
		if err := tx.PutGateway(ctx, g2); err != nil {
			return err
		}
		return tx.PutGateway(ctx, g1)
	})
	check(t, "GetGateway", must(s.GetGateway(ctx, g1.Member))(t), g1)
	want := []catalog.Gateway{*g1, *g2}
	slices.SortFunc(want, func(a, b catalog.Gateway) int { return strings.Compare(a.Member, b.Member) })
	check(t, "ListGateways", must(s.ListGateways(ctx))(t), want)
	g1b := &catalog.Gateway{Member: g1.Member, System: sysPopulation, Address: "127.0.0.2:9444", UpdatedAt: at(62)}
	update(t, s, func(ctx context.Context, tx catalog.Tx) error { return tx.PutGateway(ctx, g1b) })
	check(t, "replaced gateway", must(s.GetGateway(ctx, g1.Member))(t), g1b)
	err := s.Update(ctx, func(tx catalog.Tx) error {
		return tx.PutGateway(ctx, &catalog.Gateway{Member: "000.00.00.G99", System: sysPopulation, Address: "x:1", UpdatedAt: at(63)})
	})
	if !errors.Is(err, catalog.ErrNotFound) {
		t.Errorf("gateway of a missing member: err = %v, want ErrNotFound", err)
	}
	if _, err := s.GetGateway(ctx, "000.00.00.G99"); !errors.Is(err, catalog.ErrNotFound) {
		t.Errorf("GetGateway of a missing member: %v", err)
	}
}
