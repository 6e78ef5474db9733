package main

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"
)

// binary is the lienthong binary built once for the end-to-end tests.
var binary string

func TestMain(m *testing.M) {
	dir, err := os.MkdirTemp("", "lienthong-e2e-")
	if err != nil {
		panic(err)
	}
	binary = filepath.Join(dir, "lienthong")
	build := exec.Command("go", "build", "-o", binary, ".")
	build.Stderr = os.Stderr
	if err := build.Run(); err != nil {
		panic("build lienthong: " + err.Error())
	}
	code := m.Run()
	os.RemoveAll(dir)
	os.Exit(code)
}

// controlPlane starts `lienthong controlplane` as a real process on a free
// loopback port and returns the environment the CLI needs.
func controlPlane(t *testing.T, dataDir string, args ...string) []string {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	cmd := exec.CommandContext(ctx, binary, append([]string{"controlplane", "--data-dir", dataDir, "--listen", "127.0.0.1:0", "--log-level", "warn"}, args...)...)
	cmd.Cancel = func() error { return cmd.Process.Signal(os.Interrupt) }
	cmd.WaitDelay = 10 * time.Second
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		cancel()
		_ = cmd.Wait()
		if t.Failed() {
			t.Logf("control plane log:\n%s", stderr.String())
		}
	})

	exports := regexp.MustCompile(`^\s*export (LIENTHONG_[A-Z_]+)=(\S+)`)
	env := []string{}
	lines := make(chan string)
	go func() {
		sc := bufio.NewScanner(stdout)
		for sc.Scan() {
			lines <- sc.Text()
		}
		close(lines)
	}()
	deadline := time.After(60 * time.Second)
	for len(env) < 3 {
		select {
		case line, ok := <-lines:
			if !ok {
				t.Fatalf("control plane exited before it was ready:\n%s", stderr.String())
			}
			if m := exports.FindStringSubmatch(line); m != nil {
				env = append(env, m[1]+"="+m[2])
			}
		case <-deadline:
			t.Fatalf("control plane not ready in 60s:\n%s", stderr.String())
		}
	}
	go func() {
		for range lines {
		}
	}()
	return env
}

// cli runs the lienthong CLI with env (and LIENTHONG_TOKEN=token when set).
func cli(t *testing.T, env []string, token string, args ...string) (string, error) {
	t.Helper()
	cmd := exec.Command(binary, args...)
	cmd.Env = append(os.Environ(), env...)
	if token != "" {
		cmd.Env = append(cmd.Env, "LIENTHONG_TOKEN="+token)
	}
	var out bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &out
	err := cmd.Run()
	return out.String(), err
}

func mustCLI(t *testing.T, env []string, token string, args ...string) string {
	t.Helper()
	out, err := cli(t, env, token, args...)
	if err != nil {
		t.Fatalf("lienthong %s: %v\n%s", strings.Join(args, " "), err, out)
	}
	return out
}

func newToken(t *testing.T, env []string, args ...string) string {
	t.Helper()
	out := mustCLI(t, env, "", append([]string{"token", "create", "-o", "json"}, args...)...)
	var created struct {
		Token string `json:"token"`
	}
	if err := json.Unmarshal([]byte(out), &created); err != nil || !strings.HasPrefix(created.Token, "lt_") {
		t.Fatalf("token create: %v\n%s", err, out)
	}
	return created.Token
}

func TestCLIAgainstRunningControlPlane(t *testing.T) {
	env := controlPlane(t, t.TempDir())
	const (
		mps = "000.00.00.G01"
		vss = "000.00.00.G14"
		sys = "VN:GOV:000.00.00.G01:CSDLDC"
	)
	mustCLI(t, env, "", "member", "add", "--code", mps, "--name", "Bộ Công an", "--contact", "Cục C06 <c06@example.gov.vn>")
	mustCLI(t, env, "", "member", "add", "--code", vss, "--name", "Bảo hiểm xã hội Việt Nam")
	mpsAdmin := newToken(t, env, "--name", "C06 admin", "--role", "member-admin", "--member", mps)
	vssAdmin := newToken(t, env, "--name", "VSS admin", "--role", "member-admin", "--member", vss)

	out := mustCLI(t, env, mpsAdmin, "system", "add", "--id", sys, "--name", "CSDL quốc gia về dân cư", "--level", "4")
	if !strings.Contains(out, "not assessed") {
		t.Errorf("new system not reported as unassessed:\n%s", out)
	}
	validUntil := time.Now().AddDate(1, 0, 0).Format("2006-01-02")
	out = mustCLI(t, env, "", "system", "assess", sys, "--level", "4", "--by", "Cục A05", "--reference", "QĐ 12/QĐ-A05", "--valid-until", validUntil)
	if !strings.Contains(out, "Connectable:") || !strings.Contains(out, "yes") {
		t.Errorf("assessed system not connectable:\n%s", out)
	}

	doc := filepath.Join("..", "..", "examples", "population.yaml")
	out = mustCLI(t, env, mpsAdmin, "dataset", "publish", "--system", sys, "--openapi", doc)
	if !strings.Contains(out, "published "+sys+"/population version 1") {
		t.Errorf("publish output:\n%s", out)
	}
	out = mustCLI(t, env, mpsAdmin, "dataset", "fields", sys+"/population")
	for _, want := range []*regexp.Regexp{
		regexp.MustCompile(`(?m)^ethnicity\s+\S+\s+sensitive`),
		regexp.MustCompile(`(?m)^religion\s+\S+\s+sensitive`),
		regexp.MustCompile(`(?m)^fullName\s+\S+\s+personal`),
		regexp.MustCompile(`(?m)^permanentResidence\.provinceCode\s`),
	} {
		if !want.MatchString(out) {
			t.Errorf("fields table lacks %s:\n%s", want, out)
		}
	}

	// The second agency's admin is refused on the first agency's dataset.
	out, err := cli(t, env, vssAdmin, "dataset", "publish", "--system", sys, "--openapi", doc)
	if err == nil || !strings.Contains(out, "Forbidden (403)") || !strings.Contains(out, mps) {
		t.Errorf("foreign publish was not refused with 403:\n%s", out)
	}

	// A bad document names the exact place.
	bad := filepath.Join(t.TempDir(), "bad.yaml")
	raw, _ := os.ReadFile(doc)
	if err := os.WriteFile(bad, []byte(strings.Replace(string(raw), "x-classification: sensitive", "x-classification: secret", 1)), 0o600); err != nil {
		t.Fatal(err)
	}
	out, err = cli(t, env, mpsAdmin, "dataset", "publish", "--system", sys, "--openapi", bad)
	if err == nil || !strings.Contains(out, "at /components/schemas/") {
		t.Errorf("bad document error does not name the place:\n%s", out)
	}

	var systems []map[string]any
	if err := json.Unmarshal([]byte(mustCLI(t, env, "", "system", "list", "-o", "json")), &systems); err != nil || len(systems) != 1 {
		t.Fatalf("system list -o json: %v %v", systems, err)
	}
	out = mustCLI(t, env, "", "trail")
	for _, action := range []string{"member.create", "token.create", "system.create", "system.assess", "dataset.publish"} {
		if !strings.Contains(out, action) {
			t.Errorf("trail lacks %s:\n%s", action, out)
		}
	}
}

func TestFirstStartSeedsAndRestartKeepsToken(t *testing.T) {
	dir := t.TempDir()
	seed := filepath.Join("..", "..", "examples", "federation.json")
	env := controlPlane(t, dir, "--seed", seed)
	out := mustCLI(t, env, "", "dataset", "list")
	if !strings.Contains(out, "population") {
		t.Fatalf("seeded catalog lacks the population dataset:\n%s", out)
	}
	before := mustCLI(t, env, "", "member", "list", "-o", "json")

	// A second start on the same data dir neither reseeds nor mints a new
	// bootstrap token. (The first process is still running, so use a copy.)
	env2 := controlPlane(t, dir, "--seed", seed)
	if tokenOf(env) != tokenOf(env2) {
		t.Error("restart minted a new bootstrap token")
	}
	if after := mustCLI(t, env2, "", "member", "list", "-o", "json"); after != before {
		t.Errorf("restart reseeded:\n%s\nvs\n%s", before, after)
	}
}

func tokenOf(env []string) string {
	for _, e := range env {
		if v, ok := strings.CutPrefix(e, "LIENTHONG_TOKEN="); ok {
			return v
		}
	}
	return ""
}

func TestHelpDescribesEveryCommand(t *testing.T) {
	root := newRootCommand()
	for _, c := range root.Commands() {
		if c.Short == "" {
			t.Errorf("command %s has no description", c.Name())
		}
		for _, sub := range c.Commands() {
			if sub.Short == "" {
				t.Errorf("command %s %s has no description", c.Name(), sub.Name())
			}
		}
	}
}
