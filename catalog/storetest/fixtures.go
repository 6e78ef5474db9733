package storetest

import (
	"context"
	"crypto/sha256"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/lienthong/lienthong/catalog"
)

// The federation the tests run on: the Ministry of Public Security provides
// the population database, Vietnam Social Security and Hà Nội's public
// service portal consume it, and Hà Nội's civil registration provides births.
const (
	memberPolice    = "000.00.00.G01"
	memberInsurance = "000.00.00.G12"
	memberHanoi     = "000.00.01.H26"
	memberUnknown   = "000.00.99.Z99"

	sysPopulation = "VN:GOV:000.00.00.G01:CSDLDC"
	sysInsurance  = "VN:GOV:000.00.00.G12:BHXH"
	sysPortal     = "VN:GOV:000.00.01.H26:DVC"
	sysCivil      = "VN:GOV:000.00.01.H26:HTTP"
	sysUnknown    = "VN:GOV:000.00.99.Z99:NONE"
)

// t0 is the suite's clock: UTC and whole microseconds, so every fixture
// round-trips exactly; testTimes covers other locations and nanoseconds.
var t0 = time.Date(2025, 3, 14, 9, 26, 53, 589793000, time.UTC)

// at is t0 plus some minutes.
func at(minutes int) time.Time { return t0.Add(time.Duration(minutes) * time.Minute) }

func ptr[T any](v T) *T { return &v }

func newMember(code, name string) *catalog.Member {
	return &catalog.Member{
		Code: code,
		Name: name,
		Contacts: []catalog.Contact{
			{Name: "Phòng Công nghệ thông tin", Email: "cntt@" + strings.ReplaceAll(code, ".", "") + ".gov.vn", Phone: "+84 24 3822 6602", Role: "technical"},
			{Name: "Nguyễn Văn An", Role: "approver"},
		},
		CreatedAt: at(0),
	}
}

func newSystem(id, name string, level int) *catalog.System {
	return &catalog.System{
		ID:            id,
		Name:          name,
		Member:        strings.Split(id, ":")[2],
		SecurityLevel: level,
		CreatedAt:     at(1),
	}
}

func newAssessment(level int, ref string, validDays int) catalog.Assessment {
	return catalog.Assessment{
		Level:      level,
		AssessedBy: "Cục An toàn thông tin",
		Reference:  ref,
		ValidUntil: at(validDays * 24 * 60),
		RecordedAt: at(2),
	}
}

func newDataset(system, code string, version int) *catalog.Dataset {
	doc := fmt.Appendf(nil, `{"openapi":"3.0.3","info":{"title":"%s","version":"%d"},"paths":{}}`, code, version)
	sum := sha256.Sum256(doc)
	fields := []catalog.Field{
		{Path: "personalId", Type: "string", Classification: catalog.Personal, DefaultShared: true, Description: "Số định danh cá nhân"},
		{Path: "fullName", Type: "string", Classification: catalog.Personal},
		{Path: "ethnicity", Type: "string", Classification: catalog.Sensitive},
		{Path: "relatives", Type: "array", Classification: catalog.Personal, Array: true},
		{Path: "relatives.fullName", Type: "string", Classification: catalog.Personal, Array: true},
	}
	// Each version adds a field, so versions are told apart by their fields.
	for v := 2; v <= version; v++ {
		fields = append(fields, catalog.Field{Path: fmt.Sprintf("extra%d", v), Type: "string", Format: "date", Classification: catalog.Internal})
	}
	return &catalog.Dataset{
		System:           system,
		Code:             code,
		Version:          version,
		Title:            "Dữ liệu " + code,
		Description:      "version " + fmt.Sprint(version),
		RecordSchema:     "Citizen",
		MinConsumerLevel: 3,
		Digest:           fmt.Sprintf("%x", sum),
		Fields:           fields,
		Document:         doc,
		PublishedAt:      at(10 + version),
		PublishedBy:      "tok-publisher",
	}
}

// listed is d as listings return it: without the document.
func listed(d *catalog.Dataset) catalog.Dataset {
	c := *d
	c.Document = nil
	return c
}

func newToken(id string, role catalog.Role, member string) *catalog.Token {
	sum := sha256.Sum256([]byte("secret of " + id))
	return &catalog.Token{
		ID:         id,
		Name:       "token " + id,
		Role:       role,
		Member:     member,
		SecretHash: sum[:],
		CreatedAt:  at(3),
		CreatedBy:  "bootstrap",
	}
}

func newRequest(id, consumer, provider, dataset string, state catalog.RequestState) *catalog.AccessRequest {
	return &catalog.AccessRequest{
		ID:          id,
		Consumer:    consumer,
		Provider:    provider,
		Dataset:     dataset,
		Fields:      []string{"personalId", "fullName", "relatives.fullName"},
		Purpose:     catalog.Purpose{Code: "1.001234", Text: "Cấp thẻ BHYT cho trẻ em dưới 6 tuổi"},
		LegalBasis:  catalog.LegalBasis{Reference: "Decree 13/2023/ND-CP art. 17", Text: "processing by competent state agencies"},
		ValidFrom:   at(20),
		ValidUntil:  at(20 + 365*24*60),
		RowScope:    &catalog.RowScope{Field: "permanentResidence.provinceCode", Values: []string{"01", "79"}},
		Modes:       []catalog.Mode{catalog.ModeQuery, catalog.ModeFeed},
		State:       state,
		Reason:      "",
		RequestedBy: "tok-" + id,
		CreatedAt:   at(21),
		UpdatedAt:   at(21),
		History:     []catalog.RequestEvent{{At: at(21), Actor: "tok-" + id, Action: "request.create"}},
	}
}

func newGrant(id, consumer, provider, dataset string, state catalog.GrantState, validUntil time.Time) *catalog.Grant {
	return &catalog.Grant{
		ID:        id,
		RequestID: "req-" + id,
		Consumer:  consumer,
		Provider:  provider,
		Dataset:   dataset,
		Fields: []catalog.GrantedField{
			{Path: "personalId", Mask: catalog.MaskHash},
			{Path: "fullName"},
			{Path: "relatives.fullName", Mask: catalog.MaskPartial},
		},
		Purposes:   []catalog.Purpose{{Code: "1.001234", Text: "BHYT"}, {Code: "2.000986"}},
		LegalBasis: catalog.LegalBasis{Reference: "Decree 47/2020/ND-CP"},
		Modes:      []catalog.Mode{catalog.ModeQuery},
		RowScope:   &catalog.RowScope{Field: "permanentResidence.provinceCode", Values: []string{"01"}},
		ValidFrom:  at(30),
		ValidUntil: validUntil,
		State:      state,
		ApprovedBy: "tok-approver",
		CreatedAt:  at(31),
		History:    []catalog.RequestEvent{{At: at(31), Actor: "tok-approver", Action: "grant.create", Detail: "approved 3 of 3 fields"}},
	}
}

func newCertificate(serial, system string) *catalog.Certificate {
	id, _ := catalog.ParseSystemID(system)
	return &catalog.Certificate{
		Serial:    serial,
		System:    system,
		SPIFFE:    id.SPIFFE("lienthong.gov.vn"),
		Authority: "embedded",
		NotBefore: at(40),
		NotAfter:  at(40 + 90*24*60),
		PEM:       "-----BEGIN CERTIFICATE-----\nMIIB" + serial + "\n-----END CERTIFICATE-----\n",
	}
}

func newTrail(actor, member, action, object string) *catalog.TrailEntry {
	return &catalog.TrailEntry{
		At:      at(50),
		Actor:   actor,
		Role:    catalog.RoleMemberAdmin,
		Member:  member,
		Action:  action,
		Object:  object,
		Before:  nil,
		After:   []byte(`{"object":"` + object + `"}`),
		Outcome: "ok",
	}
}

// seed creates the three members and four systems.
func seed(t *testing.T, s catalog.Store) {
	t.Helper()
	update(t, s, func(ctx context.Context, tx catalog.Tx) error {
		for _, m := range []*catalog.Member{
			newMember(memberPolice, "Bộ Công an"),
			newMember(memberInsurance, "Bảo hiểm xã hội Việt Nam"),
			newMember(memberHanoi, "UBND Thành phố Hà Nội"),
		} {
			if err := tx.CreateMember(ctx, m); err != nil {
				return err
			}
		}
		for _, sys := range seedSystems() {
			if err := tx.CreateSystem(ctx, sys); err != nil {
				return err
			}
		}
		return nil
	})
}

func seedSystems() []*catalog.System {
	return []*catalog.System{
		newSystem(sysPopulation, "Cơ sở dữ liệu quốc gia về dân cư", 4),
		newSystem(sysInsurance, "Hệ thống thông tin giám định BHYT", 3),
		newSystem(sysPortal, "Cổng dịch vụ công Hà Nội", 3),
		newSystem(sysCivil, "Hộ tịch điện tử Hà Nội", 3),
	}
}

func memberCode(m catalog.Member) string { return m.Code }
func systemID(s catalog.System) string   { return s.ID }
func datasetRef(d catalog.Dataset) string {
	return fmt.Sprintf("%s/%s@%d", d.System, d.Code, d.Version)
}
func tokenID(tk catalog.Token) string          { return tk.ID }
func requestID(r catalog.AccessRequest) string { return r.ID }
func grantID(g catalog.Grant) string           { return g.ID }
func certSerial(c catalog.Certificate) string  { return c.Serial }
func trailObject(e catalog.TrailEntry) string  { return e.Object }
