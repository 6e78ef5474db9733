package main

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/lienthong/lienthong/catalog"
	"github.com/lienthong/lienthong/controlplane/client"
	"github.com/lienthong/lienthong/controlplane/service"
	"github.com/lienthong/lienthong/internal/durable"
)

// upRequest is one access request of the demo federation and what the
// provider's approver decides: approve (fields, with masks; fewer than asked
// refuses the rest), or nothing (the request stays pending).
type upRequest struct {
	// name is the request's file under <data-dir>/federation/requests,
	// which holds its id once filed and decided.
	name     string
	input    service.AccessRequestInput
	approve  []catalog.GrantedField
	note     string
	pending  bool
	describe string // one line for the printed list of grants
}

// feedBasis is the legal basis of the joint services' feeds.
var feedBasis = catalog.LegalBasis{Reference: "Nghị định 63/2024/NĐ-CP, liên thông thủ tục hành chính"}

// upRequests are the federation's access requests, in filing order.
func upRequests() []upRequest {
	q := []catalog.Mode{catalog.ModeQuery, catalog.ModeVerify}
	feedOnly := []catalog.Mode{catalog.ModeFeed}
	f := func(path string, mask catalog.Mask) catalog.GrantedField {
		return catalog.GrantedField{Path: path, Mask: mask}
	}
	return []upRequest{{
		name: "bhxh-population",
		input: service.AccessRequestInput{Consumer: upConsumerSystem, Provider: upProviderSystem, Dataset: "population",
			Fields:     []string{"personalId", "fullName", "dateOfBirth", "sex", "religion"},
			Purpose:    catalog.Purpose{Code: upPurpose, Text: "cấp thẻ BHYT cho trẻ em dưới 6 tuổi"},
			LegalBasis: catalog.LegalBasis{Reference: "Nghị định 13/2023/NĐ-CP, Điều 17"},
			Modes:      append(q, catalog.ModeFeed)},
		approve:  []catalog.GrantedField{f("personalId", catalog.MaskHash), f("fullName", ""), f("dateOfBirth", ""), f("sex", "")},
		note:     "religion refused: sensitive, and not needed for the card",
		describe: "Social Security ← population: personalId (hashed), fullName, dateOfBirth, sex; religion refused (sensitive)",
	}, {
		name: "lgsp-population",
		input: service.AccessRequestInput{Consumer: upLGSPSystem, Provider: upProviderSystem, Dataset: "population",
			Fields:     []string{"personalId", "fullName", "dateOfBirth", "permanentResidence", "currentResidence"},
			Purpose:    catalog.Purpose{Code: "1.004194", Text: "xác nhận thông tin cư trú trên Cổng dịch vụ công Hà Nội"},
			LegalBasis: catalog.LegalBasis{Reference: "Luật Cư trú 2020, Điều 17; Nghị định 104/2022/NĐ-CP"},
			RowScope:   &catalog.RowScope{Field: "permanentResidence.provinceCode", Values: []string{"01"}},
			Modes:      q},
		approve: []catalog.GrantedField{f("personalId", catalog.MaskPartial), f("fullName", ""), f("dateOfBirth", ""),
			f("permanentResidence", ""), f("currentResidence", "")},
		note:     "Hà Nội residents only",
		describe: "Hà Nội LGSP ← population, Hà Nội residents only (permanentResidence.provinceCode = 01): personalId (last digits), fullName, dateOfBirth, residences",
	}, {
		name: "population-birth",
		input: service.AccessRequestInput{Consumer: upProviderSystem, Provider: upJusticeSystem, Dataset: "birth-registration",
			Fields: []string{"registrationNumber", "registeredAt", "child.fullName", "child.dateOfBirth", "child.sex",
				"child.placeOfBirth.provinceCode", "mother.personalId", "mother.fullName"},
			Purpose:    catalog.Purpose{Code: "1.001193", Text: "cấp số định danh cá nhân và đăng ký thường trú cho trẻ em được khai sinh"},
			LegalBasis: feedBasis, Modes: feedOnly},
		describe: "Public Security ← birth registrations (feed): child's name, birth date, sex, birth province; mother's personalId and name",
	}, {
		name: "population-death",
		input: service.AccessRequestInput{Consumer: upProviderSystem, Provider: upJusticeSystem, Dataset: "death-registration",
			Fields:     []string{"registrationNumber", "registeredAt", "deceased.personalId", "deceased.fullName", "deceased.dateOfDeath"},
			Purpose:    catalog.Purpose{Code: "1.000656", Text: "xóa đăng ký thường trú của người đã chết"},
			LegalBasis: feedBasis, Modes: feedOnly},
		describe: "Public Security ← death registrations (feed): deceased's personalId, name, date of death",
	}, {
		name: "bhxh-birth",
		input: service.AccessRequestInput{Consumer: upConsumerSystem, Provider: upJusticeSystem, Dataset: "birth-registration",
			Fields: []string{"registrationNumber", "child.fullName", "child.dateOfBirth", "child.sex", "child.ethnicity",
				"mother.personalId", "mother.fullName"},
			Purpose:    catalog.Purpose{Code: "1.002045", Text: "cấp thẻ BHYT cho trẻ em dưới 6 tuổi"},
			LegalBasis: feedBasis, Modes: feedOnly},
		approve: []catalog.GrantedField{f("registrationNumber", catalog.MaskPartial), f("child.fullName", ""), f("child.dateOfBirth", ""),
			f("child.sex", ""), f("mother.personalId", ""), f("mother.fullName", "")},
		note:     "child.ethnicity refused: sensitive, and not needed for the card",
		describe: "Social Security ← birth registrations (feed): child's name, birth date, sex; mother; registration number (last digits); ethnicity refused",
	}, {
		name: "bhxh-death",
		input: service.AccessRequestInput{Consumer: upConsumerSystem, Provider: upJusticeSystem, Dataset: "death-registration",
			Fields:     []string{"deceased.personalId", "deceased.fullName", "deceased.dateOfDeath"},
			Purpose:    catalog.Purpose{Code: "1.000657", Text: "giải quyết trợ cấp mai táng"},
			LegalBasis: feedBasis, Modes: feedOnly},
		describe: "Social Security ← death registrations (feed): deceased's personalId, name, date of death",
	}, {
		name: "lgsp-birth",
		input: service.AccessRequestInput{Consumer: upLGSPSystem, Provider: upJusticeSystem, Dataset: "birth-registration",
			Fields:     []string{"registrationNumber", "registeredAt", "child.fullName", "child.dateOfBirth", "mother.fullName"},
			Purpose:    catalog.Purpose{Code: "1.001193", Text: "tra cứu đăng ký khai sinh khi giải quyết thủ tục trên cổng dịch vụ công"},
			LegalBasis: catalog.LegalBasis{Reference: "Nghị định 87/2020/NĐ-CP, Điều 13"}, Modes: []catalog.Mode{catalog.ModeQuery}},
		pending:  true,
		describe: "Hà Nội LGSP → birth registrations (query): child's name and birth date, mother's name",
	}}
}

// fileAccessRequests files each request not yet filed, as the consumer's
// integrator, and decides it as the provider's approver. A request filed by
// a start that then stopped before deciding it is decided now.
func fileAccessRequests(ctx context.Context, admin *client.Client, dir string, o upOptions) (*upFederation, error) {
	rdir := filepath.Join(dir, "requests")
	if err := os.MkdirAll(rdir, 0o700); err != nil {
		return nil, err
	}
	// A data directory made before the federation grew holds the first
	// grant under the name "done".
	if _, err := os.Stat(filepath.Join(dir, "done")); err == nil {
		if _, err := os.Stat(filepath.Join(rdir, "bhxh-population")); os.IsNotExist(err) {
			if err := durable.WriteFile(filepath.Join(rdir, "bhxh-population"), []byte("filed before requests were named\n"), 0o600); err != nil {
				return nil, err
			}
		}
	}
	fed := &upFederation{}
	clients := map[string]*client.Client{}
	as := func(role catalog.Role, member string) (*client.Client, error) {
		key := string(role) + " " + member
		if c, ok := clients[key]; ok {
			return c, nil
		}
		tok, err := admin.CreateToken(ctx, client.NewToken{Name: "up: " + string(role) + " of " + member, Role: role, Member: member})
		if err != nil {
			return nil, err
		}
		c, err := client.New("https://"+o.controlPlane, tok.Token, filepath.Join(o.dataDir, "tls", "ca.pem"))
		if err != nil {
			return nil, err
		}
		clients[key] = c
		return c, nil
	}
	for _, r := range upRequests() {
		file := filepath.Join(rdir, r.name)
		if raw, err := os.ReadFile(file); err == nil {
			if r.pending {
				fed.pending, fed.pendingState = strings.TrimSpace(string(raw)), catalog.RequestPending
				// Someone may have decided it since (the walkthrough does).
				if req, err := admin.AccessRequest(ctx, fed.pending); err == nil {
					fed.pendingState = req.State
				}
			}
			continue
		}
		integrator, err := as(catalog.RoleIntegrator, memberOfSystem(r.input.Consumer))
		if err != nil {
			return nil, err
		}
		in := r.input
		in.ValidUntil = time.Now().AddDate(0, 6, 0)
		req, err := integrator.RequestAccess(ctx, in)
		if err != nil {
			return nil, fmt.Errorf("request %s: %w", r.name, err)
		}
		if !r.pending {
			approver, err := as(catalog.RoleApprover, memberOfSystem(r.input.Provider))
			if err != nil {
				return nil, err
			}
			if _, err := approver.Approve(ctx, req.ID, service.Approval{Note: r.note, Fields: r.approve}); err != nil {
				return nil, fmt.Errorf("approve %s: %w", r.name, err)
			}
		} else {
			fed.pending, fed.pendingState = req.ID, catalog.RequestPending
		}
		if err := durable.WriteFile(file, []byte(req.ID+"\n"), 0o600); err != nil {
			return nil, err
		}
	}
	return fed, nil
}

// memberOfSystem is the member code in a system id.
func memberOfSystem(system string) string {
	id, err := catalog.ParseSystemID(system)
	if err != nil {
		panic("lienthong up: bad system id " + system)
	}
	return id.Member
}
