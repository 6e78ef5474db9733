package main

import (
	"bufio"
	"bytes"
	"context"
	"crypto/ed25519"
	"crypto/tls"
	"crypto/x509"
	"fmt"
	"io"
	"log/slog"
	"math/rand/v2"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/lienthong/lienthong/audit"
	"github.com/lienthong/lienthong/audit/index/indextest"
	"github.com/lienthong/lienthong/audit/ship"
	"github.com/lienthong/lienthong/controlplane/auditapi"
	"github.com/lienthong/lienthong/controlplane/client"
)

// killableControlPlane starts `lienthong controlplane` on dataDir and
// returns its environment and a function that SIGKILLs it.
func killableControlPlane(t *testing.T, dataDir string) ([]string, func()) {
	t.Helper()
	cmd := exec.Command(binary, "controlplane", "--data-dir", dataDir, "--listen", "127.0.0.1:0", "--log-level", "error")
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	killed := false
	kill := func() {
		if !killed {
			killed = true
			_ = cmd.Process.Signal(syscall.SIGKILL)
			_ = cmd.Wait()
		}
	}
	t.Cleanup(kill)
	exports := regexp.MustCompile(`^\s*export (LIENTHONG_[A-Z_]+)=(\S+)`)
	env := []string{}
	sc := bufio.NewScanner(stdout)
	deadline := time.AfterFunc(60*time.Second, kill)
	defer deadline.Stop()
	for len(env) < 3 && sc.Scan() {
		if m := exports.FindStringSubmatch(sc.Text()); m != nil {
			env = append(env, m[1]+"="+m[2])
		}
	}
	if len(env) < 3 {
		t.Fatalf("control plane not ready:\n%s", stderr.String())
	}
	go func() { _, _ = io.Copy(io.Discard, stdout) }()
	return env, kill
}

func envValue(env []string, name string) string {
	for _, e := range env {
		if v, ok := strings.CutPrefix(e, name+"="); ok {
			return v
		}
	}
	return ""
}

// The control plane is SIGKILLed at random moments while the gateway's real
// shipper sends it a log, and restarted on the same data: shipping resumes
// from the control plane's position each time, and in the end the index
// holds each record exactly once, with no alert.
func TestShippingSurvivesControlPlaneKills(t *testing.T) {
	dir := t.TempDir()
	data := filepath.Join(dir, "cp")
	const gw = "VN:GOV:000.00.00.G01:GW"
	env, kill := killableControlPlane(t, data)
	mustCLI(t, env, "", "member", "add", "--code", "000.00.00.G01", "--name", "Bộ Công an")
	gwToken := newToken(t, env, "--name", "MPS gateway", "--role", "member-admin", "--member", "000.00.00.G01")
	admin := tokenOf(env)

	// The gateway's log, written whole first: what is measured is the
	// shipping, not the writing.
	logFile := filepath.Join(dir, "audit.jsonl")
	key := ed25519.NewKeyFromSeed(bytes.Repeat([]byte{11}, ed25519.SeedSize))
	sink, err := audit.OpenFile(logFile, audit.Options{Gateway: gw, Key: key, CheckpointEvery: 16, SegmentBytes: 32 << 10})
	if err != nil {
		t.Fatal(err)
	}
	const records = 600
	base := time.Now().Add(-time.Hour).UTC()
	for i := 0; i < records; i++ {
		r := indextest.Outcome(fmt.Sprintf("x-%04d", i), "VN:GOV:000.00.00.G14:BHXH", "VN:GOV:000.00.00.G01:CSDLDC", "", base.Add(time.Duration(i)*time.Millisecond))
		if err := audit.Write(context.Background(), sink, &r); err != nil {
			t.Fatal(err)
		}
	}
	if err := sink.Close(); err != nil {
		t.Fatal(err)
	}
	files, err := audit.LogFiles(logFile)
	if err != nil {
		t.Fatal(err)
	}
	rep, err := audit.Verify(files, nil)
	if err != nil {
		t.Fatal(err)
	}

	pem, err := os.ReadFile(envValue(env, "LIENTHONG_CA_FILE"))
	if err != nil {
		t.Fatal(err)
	}
	pool := x509.NewCertPool()
	pool.AppendCertsFromPEM(pem)
	hc := &http.Client{Timeout: 10 * time.Second, Transport: &http.Transport{TLSClientConfig: &tls.Config{RootCAs: pool, MinVersion: tls.VersionTLS12}}}
	quiet := slog.New(slog.NewTextHandler(io.Discard, nil))
	ship1 := func(env []string) (stop func()) {
		s := ship.New(ship.NewClient(hc, envValue(env, "LIENTHONG_URL"), gw, gwToken), logFile,
			ship.Options{Key: key.Public().(ed25519.PublicKey), Batch: 25, Poll: 5 * time.Millisecond, MaxBackoff: 50 * time.Millisecond, Log: quiet})
		ctx, cancel := context.WithCancel(context.Background())
		done := make(chan struct{})
		go func() { s.Run(ctx); close(done) }()
		return func() { cancel(); <-done }
	}
	position := func(env []string) uint64 {
		c := client.NewWithHTTP(envValue(env, "LIENTHONG_URL"), admin, hc)
		p, err := c.AuditPosition(context.Background(), gw)
		if err != nil {
			t.Fatal(err)
		}
		return p.Next
	}

	rng := rand.New(rand.NewPCG(uint64(time.Now().UnixNano()), 5))
	kills := 0
	for ; kills < 6; kills++ {
		stop := ship1(env)
		time.Sleep(time.Duration(10+rng.IntN(150)) * time.Millisecond)
		kill() // mid-shipment, or between two
		stop()
		env, kill = killableControlPlane(t, data)
		t.Logf("kill %d: the restarted control plane holds up to seq %d of %d", kills+1, position(env)-1, rep.Last.Seq)
	}
	stop := ship1(env)
	deadline := time.Now().Add(60 * time.Second)
	for position(env) != rep.Last.Seq+1 {
		if time.Now().After(deadline) {
			t.Fatalf("after %d kills the index holds up to %d, the log up to %d", kills, position(env)-1, rep.Last.Seq)
		}
		time.Sleep(20 * time.Millisecond)
	}
	stop()

	c := client.NewWithHTTP(envValue(env, "LIENTHONG_URL"), admin, hc)
	seen := map[string]int{}
	q := auditapi.ExchangeQuery{Limit: 1000}
	for {
		page, err := c.AuditExchanges(context.Background(), q)
		if err != nil {
			t.Fatal(err)
		}
		for _, x := range page.Items {
			seen[x.ExchangeID]++
		}
		if page.Next == "" {
			break
		}
		q.Cursor = page.Next
	}
	if len(seen) != records {
		t.Fatalf("the index holds %d distinct exchanges, want %d", len(seen), records)
	}
	for id, n := range seen {
		if n != 1 {
			t.Fatalf("exchange %s held %d times", id, n)
		}
	}
	if as, err := c.AuditAlerts(context.Background(), 0); err != nil || len(as) != 0 {
		t.Fatalf("alerts after the kills: %+v %v", as, err)
	}
	var published []byte
	if err := c.Do(context.Background(), "GET", "/v1/audit/gateways/"+gw+"/checkpoints", nil, &published); err != nil {
		t.Fatal(err)
	}
	cps, err := audit.ReadCheckpoints(bytes.NewReader(published))
	if err != nil {
		t.Fatal(err)
	}
	if _, err := audit.Verify(files, cps); err != nil {
		t.Fatalf("the log does not verify against what the index published: %v", err)
	}
}
