package main

import (
	"bufio"
	"bytes"
	"context"
	"io/fs"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"
)

func freePort(t *testing.T) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	return ln.Addr().String()
}

// TestUpPrintsWorkingCurlCommands runs `lienthong up` (what make run runs)
// and executes the curl commands it prints, as a person would.
func TestUpPrintsWorkingCurlCommands(t *testing.T) {
	if _, err := exec.LookPath("curl"); err != nil {
		if os.Getenv("LIENTHONG_REQUIRE_SERVICES") == "1" {
			t.Fatal("curl not installed; .ci/run installs it")
		}
		t.Skip("curl not installed")
	}
	dir := t.TempDir()
	ctx, cancel := context.WithCancel(context.Background())
	cmd := exec.CommandContext(ctx, binary, "up", "--data-dir", dir, "--seed", filepath.Join("..", "..", "examples", "federation.json"),
		"--listen", freePort(t), "--consumer-outbound", freePort(t), "--provider-inbound", freePort(t),
		"--provider-outbound", freePort(t), "--consumer-inbound", freePort(t), "--backend", freePort(t), "--citizens", "300",
		"--kafka-listen", freePort(t))
	cmd.Cancel = func() error { return cmd.Process.Signal(os.Interrupt) }
	cmd.WaitDelay = 10 * time.Second
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { cancel(); _ = cmd.Wait() })

	lines := make(chan string)
	go func() {
		sc := bufio.NewScanner(stdout)
		for sc.Scan() {
			lines <- sc.Text()
		}
		close(lines)
	}()
	var curls []string
	deadline := time.After(90 * time.Second)
	for len(curls) < 6 {
		select {
		case line, ok := <-lines:
			if !ok {
				t.Fatalf("lienthong up exited:\n%s", stderr.String())
			}
			if s := strings.TrimSpace(line); strings.HasPrefix(s, "curl ") {
				curls = append(curls, s)
			}
		case <-deadline:
			t.Fatalf("lienthong up not ready in 90s:\n%s", stderr.String())
		}
	}
	go func() {
		for range lines {
		}
	}()
	run := func(line string) string {
		out, err := exec.Command("sh", "-c", line).CombinedOutput()
		if err != nil {
			t.Fatalf("%s: %v\n%s", line, err, out)
		}
		return string(out)
	}
	if out := run(curls[0]); !strings.Contains(out, `"fullName"`) || strings.Contains(out, `"personalId"`) {
		t.Errorf("granted read: %s", out)
	}
	if out := run(curls[1]); !strings.Contains(out, `"personalId":"hmac-sha256:`) {
		t.Errorf("masked read: %s", out)
	}
	if out := run(curls[2]); !strings.Contains(out, `"dateOfBirth":"match"`) {
		t.Errorf("verify: %s", out)
	}
	if out := run(curls[3]); !strings.Contains(out, `"status":403`) || !strings.Contains(out, "religion") {
		t.Errorf("refused read: %s", out)
	}
	// The gateways pulled their configuration with their certificates
	// alone: no gateway configuration file or state file holds an API token.
	noTokenOnGatewayHosts(t, dir)
	// The change feed: published through the provider's gateway, read by
	// Social Security as Server-Sent Events with only its granted fields.
	if out := run(curls[4]); !strings.Contains(out, `"accepted":1`) {
		t.Errorf("publish: %s", out)
	}
	sse, _ := exec.Command("sh", "-c", curls[5]+" --max-time 10").CombinedOutput()
	if !strings.Contains(string(sse), `"personalId":"hmac-sha256:`) || !strings.Contains(string(sse), `"fullName"`) || !strings.Contains(string(sse), `"subject":"hmac-sha256:`) {
		t.Errorf("feed as SSE: %s", sse)
	}
	// Both gateways' logs hold the granted read, intent then outcome; the
	// outcome is synced a moment after the answer, so allow for that.
	for _, member := range []string{"000.00.00.G01", "000.00.00.G14"} {
		file := filepath.Join(dir, "federation", member, "audit.jsonl")
		var out []byte
		for end := time.Now().Add(5 * time.Second); ; {
			if out, err = exec.Command(binary, "audit", "read", "-o", "json", file).CombinedOutput(); err != nil {
				t.Fatalf("audit read %s: %v\n%s", file, err, out)
			}
			if strings.Count(string(out), `"phase":"outcome"`) >= 4 || time.Now().After(end) {
				break
			}
			time.Sleep(50 * time.Millisecond)
		}
		if n := strings.Count(string(out), `"phase":"outcome"`); n < 4 {
			t.Errorf("%s: %d outcome records for the 4 exchanges:\n%s", file, n, out)
		}
		if !strings.Contains(string(out), `"phase":"intent"`) || strings.Contains(string(out), "\x00") {
			t.Errorf("%s: no intent record, or NUL bytes in the output:\n%s", file, out)
		}
	}
}

// tokenPattern matches an API token (lt_<id>_<base64url of 32 bytes>).
var tokenPattern = regexp.MustCompile(`lt_[A-Za-z0-9-]{1,32}_[A-Za-z0-9_-]{43}`)

// noTokenOnGatewayHosts fails if any file of a gateway (its configuration,
// key, certificates, state directory, logs) holds an API token, the
// operator's included, or names a token file.
func noTokenOnGatewayHosts(t *testing.T, dataDir string) {
	t.Helper()
	admin, err := os.ReadFile(filepath.Join(dataDir, "admin.token"))
	if err != nil || len(bytes.TrimSpace(admin)) == 0 {
		t.Fatalf("the operator's token, to look for: %v", err)
	}
	files := 0
	for _, member := range []string{"000.00.00.G01", "000.00.00.G14"} {
		err := filepath.WalkDir(filepath.Join(dataDir, "federation", member), func(path string, d fs.DirEntry, err error) error {
			if err != nil || d.IsDir() {
				return err
			}
			data, err := os.ReadFile(path)
			if err != nil {
				return err
			}
			files++
			if tokenPattern.Match(data) || bytes.Contains(data, bytes.TrimSpace(admin)) {
				t.Errorf("%s holds an API token", path)
			}
			if filepath.Base(path) == "gateway.json" && bytes.Contains(data, []byte("token")) {
				t.Errorf("%s names a token:\n%s", path, data)
			}
			return nil
		})
		if err != nil {
			t.Fatal(err)
		}
	}
	if files < 8 {
		t.Fatalf("only %d files under the gateways' directories: the walk missed them", files)
	}
}
