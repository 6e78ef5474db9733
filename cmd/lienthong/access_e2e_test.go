package main

import (
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// TestAccessAndPolicyThroughTheCLI drives the whole access workflow against a
// running control plane seeded with examples/federation.json: request,
// approve with a mask, explain, revoke, explain again.
func TestAccessAndPolicyThroughTheCLI(t *testing.T) {
	env := controlPlane(t, t.TempDir(), "--seed", filepath.Join("..", "..", "examples", "federation.json"))
	const (
		consumer = "VN:GOV:000.00.00.G14:CSDLBH"
		dataset  = "VN:GOV:000.00.00.G01:CSDLDC/population"
	)
	integrator := newToken(t, env, "--name", "BHXH integrator", "--role", "integrator", "--member", "000.00.00.G14")
	approver := newToken(t, env, "--name", "C06 approver", "--role", "approver", "--member", "000.00.00.G01")
	until := time.Now().AddDate(0, 6, 0).Format("2006-01-02")

	// A sensitive field without a legal basis is refused, naming the rule.
	out, err := cli(t, env, integrator, "access", "request", "--consumer", consumer, "--dataset", dataset,
		"--fields", "fullName,ethnicity", "--purpose", "1.001234", "--until", until)
	if err == nil || !strings.Contains(out, "/legalBasis/reference") {
		t.Fatalf("sensitive request without legal basis:\n%s", out)
	}

	out = mustCLI(t, env, integrator, "access", "request", "-o", "json", "--consumer", consumer, "--dataset", dataset,
		"--fields", "personalId,fullName,dateOfBirth,religion", "--purpose", "1.001234",
		"--purpose-text", "cấp thẻ BHYT cho trẻ em dưới 6 tuổi", "--legal-basis", "Nghị định 13/2023/NĐ-CP, Điều 17",
		"--until", until, "--modes", "query,verify")
	var req struct{ ID, State string }
	if err := json.Unmarshal([]byte(out), &req); err != nil || req.State != "pending" {
		t.Fatalf("access request: %v\n%s", err, out)
	}

	// The consumer cannot approve its own request.
	if out, err := cli(t, env, integrator, "access", "approve", req.ID); err == nil || !strings.Contains(out, "403") {
		t.Fatalf("self-approval:\n%s", out)
	}
	out = mustCLI(t, env, approver, "access", "approve", req.ID, "--field", "personalId:hash", "--field", "fullName", "--field", "dateOfBirth")
	if !strings.Contains(out, "personalId:hash") {
		t.Errorf("approve output:\n%s", out)
	}
	grantID := strings.Fields(strings.TrimPrefix(out, "granted "))[0]
	grantID = strings.TrimSuffix(grantID, ":")

	out = mustCLI(t, env, integrator, "policy", "explain", "--consumer", consumer, "--dataset", dataset,
		"--purpose", "1.001234", "--fields", "fullName,personalId,religion")
	if !strings.Contains(out, "ALLOW") || !strings.Contains(out, "personalId:hash") || strings.Contains(out, "religion,") {
		t.Errorf("explain after approval:\n%s", out)
	}
	out = mustCLI(t, env, integrator, "policy", "explain", "--consumer", consumer, "--dataset", dataset, "--purpose", "2.000001")
	if !strings.Contains(out, "DENY") || !strings.Contains(out, "purpose_not_granted") {
		t.Errorf("explain for another purpose:\n%s", out)
	}
	if out := mustCLI(t, env, integrator, "grant", "list"); !strings.Contains(out, grantID) || !strings.Contains(out, "active") {
		t.Errorf("grant list:\n%s", out)
	}
	mustCLI(t, env, approver, "access", "revoke", grantID, "--reason", "hồ sơ đã xử lý xong")
	out = mustCLI(t, env, integrator, "policy", "explain", "--consumer", consumer, "--dataset", dataset, "--purpose", "1.001234", "--fields", "fullName")
	if !strings.Contains(out, "DENY") {
		t.Errorf("explain after revocation:\n%s", out)
	}
	out = mustCLI(t, env, approver, "access", "show", req.ID)
	for _, want := range []string{"approved", "requested", "Granted:"} {
		if !strings.Contains(out, want) {
			t.Errorf("access show lacks %q:\n%s", want, out)
		}
	}
}

func TestPolicyTestRunsAgencyModuleTests(t *testing.T) {
	dir := t.TempDir()
	module := "package lienthong.agency.vn_gov_000_00_00_g01_csdldc\n\ndrop contains \"religion\"\n"
	test := "package lienthong.agency.vn_gov_000_00_00_g01_csdldc_test\n\nimport data.lienthong.agency.vn_gov_000_00_00_g01_csdldc as agency\n\ntest_drops_religion if \"religion\" in agency.drop\n"
	for name, src := range map[string]string{"agency.rego": module, "agency_test.rego": test} {
		if err := os.WriteFile(filepath.Join(dir, name), []byte(src), 0o600); err != nil {
			t.Fatal(err)
		}
	}
	out := mustCLI(t, nil, "", "policy", "test", filepath.Join(dir, "agency.rego"), filepath.Join(dir, "agency_test.rego"))
	if !strings.Contains(out, "test_drops_religion") || !strings.Contains(out, " 0 failed") {
		t.Errorf("policy test output:\n%s", out)
	}
	failing := strings.Replace(test, `"religion" in`, `"ethnicity" in`, 1)
	if err := os.WriteFile(filepath.Join(dir, "agency_test.rego"), []byte(failing), 0o600); err != nil {
		t.Fatal(err)
	}
	if out, err := cli(t, nil, "", "policy", "test", filepath.Join(dir, "agency.rego"), filepath.Join(dir, "agency_test.rego")); err == nil || !strings.Contains(out, "FAIL") {
		t.Errorf("failing agency test did not fail the command:\n%s", out)
	}
}
