package main

import (
	"bufio"
	"bytes"
	"context"
	"crypto/tls"
	"io"
	"math/rand/v2"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"sync"
	"testing"
	"time"

	"github.com/lienthong/lienthong/audit"
)

// upCurl matches the granted read `lienthong up` prints.
var upCurl = regexp.MustCompile(`--cert (\S+) --key (\S+) -H 'X-LT-Purpose: ([^']+)' '(https://[^']+)'`)

// TestGatewaySIGKILLLosesNoAcknowledgedExchange runs the federation (`lienthong
// up`: control plane and both gateways in one process) under a bounded load
// and SIGKILLs it at random moments, five times, restarting it on the same
// data each time. Every exchange the client saw answered 200 has its intent
// record (made durable before the answer) in both gateways' logs, and both
// logs, across every crash and recovery, verify. Then a changed byte in one
// log stops the federation from starting, naming the position, with the
// file unchanged, until the operator sets the log aside.
func TestGatewaySIGKILLLosesNoAcknowledgedExchange(t *testing.T) {
	if testing.Short() {
		t.Skip("runs and kills the federation five times")
	}
	dir := t.TempDir()
	args := []string{"up", "--data-dir", dir, "--seed", filepath.Join("..", "..", "examples", "federation.json"),
		"--listen", freePort(t), "--consumer-outbound", freePort(t), "--provider-inbound", freePort(t),
		"--provider-outbound", freePort(t), "--consumer-inbound", freePort(t), "--backend", freePort(t), "--citizens", "50",
		"--justice-inbound", freePort(t), "--justice-outbound", freePort(t), "--lgsp-inbound", freePort(t), "--lgsp-outbound", freePort(t),
		"--kafka-listen", freePort(t)}
	var mu sync.Mutex
	acked := map[string]bool{}
	rng := rand.New(rand.NewPCG(uint64(time.Now().UnixNano()), 7))
	start := func() (*exec.Cmd, []string, *bytes.Buffer) {
		cmd := exec.Command(binary, args...)
		var stderr bytes.Buffer
		cmd.Stderr = &stderr
		stdout, err := cmd.StdoutPipe()
		if err != nil {
			t.Fatal(err)
		}
		if err := cmd.Start(); err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { _ = cmd.Process.Kill() })
		ready := make(chan []string, 1)
		go func() {
			sc := bufio.NewScanner(stdout)
			for sc.Scan() {
				if m := upCurl.FindStringSubmatch(sc.Text()); m != nil {
					ready <- m
					break
				}
			}
			_, _ = io.Copy(io.Discard, stdout)
			close(ready)
		}()
		select {
		case m, ok := <-ready:
			if !ok {
				t.Fatalf("lienthong up exited before it was ready:\n%s", stderr.String())
			}
			return cmd, m, &stderr
		case <-time.After(90 * time.Second):
			t.Fatalf("lienthong up not ready in 90s:\n%s", stderr.String())
		}
		return nil, nil, nil
	}
	for kill := range 5 {
		cmd, m, _ := start()
		cert, err := tls.LoadX509KeyPair(m[1], m[2])
		if err != nil {
			t.Fatal(err)
		}
		// The gateway is named by SPIFFE id, not host name: on loopback
		// the test skips the name check (curl pins the key instead).
		client := &http.Client{Timeout: 5 * time.Second, Transport: &http.Transport{
			TLSClientConfig: &tls.Config{Certificates: []tls.Certificate{cert}, InsecureSkipVerify: true}}}
		stop := make(chan struct{})
		var wg sync.WaitGroup
		for range 4 {
			wg.Go(func() {
				for n := 0; n < 2000; n++ {
					select {
					case <-stop:
						return
					default:
					}
					req, _ := http.NewRequest(http.MethodGet, m[4], nil)
					req.Header.Set("X-LT-Purpose", m[3])
					resp, err := client.Do(req)
					if err != nil {
						continue
					}
					_, _ = io.Copy(io.Discard, resp.Body)
					resp.Body.Close()
					if id := resp.Header.Get("X-LT-Exchange-Id"); resp.StatusCode == http.StatusOK && id != "" {
						mu.Lock()
						acked[id] = true
						mu.Unlock()
					}
				}
			})
		}
		time.Sleep(time.Duration(200+rng.IntN(1000)) * time.Millisecond)
		if err := cmd.Process.Kill(); err != nil {
			t.Fatalf("kill %d: %v", kill, err)
		}
		_ = cmd.Wait()
		close(stop)
		wg.Wait()
	}
	// One more start recovers both logs; then a clean stop.
	cmd, _, stderr := start()
	_ = cmd.Process.Signal(os.Interrupt)
	done := make(chan error, 1)
	go func() { done <- cmd.Wait() }()
	select {
	case <-done:
	case <-time.After(30 * time.Second):
		t.Fatalf("lienthong up did not stop:\n%s", stderr.String())
	}
	if len(acked) == 0 {
		t.Fatal("no exchange was acknowledged: the test proved nothing")
	}
	for _, member := range []string{"000.00.00.G14", "000.00.00.G01"} {
		path := filepath.Join(dir, "federation", member, "audit.jsonl")
		files, err := audit.LogFiles(path)
		if err != nil {
			t.Fatal(err)
		}
		if _, err := audit.Verify(files, nil); err != nil {
			t.Fatalf("%s: %v", member, err)
		}
		intents := map[string]bool{}
		if err := audit.EachEntry(files, func(e *audit.Entry, _ []byte) error {
			if e.Record != nil && e.Record.Phase == audit.Intent {
				intents[e.Record.ExchangeID] = true
			}
			return nil
		}); err != nil {
			t.Fatal(err)
		}
		for id := range acked {
			if !intents[id] {
				t.Fatalf("%s: exchange %s was answered 200 but its intent is not in the log", member, id)
			}
		}
	}
	t.Logf("5 kills, %d acknowledged exchanges, all in both logs", len(acked))

	// A changed byte in the consumer gateway's log: the federation refuses
	// to start, names the position, and leaves the file as it was; after
	// set-aside it starts on a new segment.
	log := filepath.Join(dir, "federation", "000.00.00.G14", "audit.jsonl")
	damaged := mustReadFile(t, log)
	i := bytes.Index(damaged, []byte(`"exchangeId":"`)) + len(`"exchangeId":"`)
	damaged[i] ^= 0x01
	if err := os.WriteFile(log, damaged, 0o600); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 90*time.Second)
	defer cancel()
	out, err := exec.CommandContext(ctx, binary, args...).CombinedOutput()
	if err == nil || !bytes.Contains(out, []byte("damaged at seq")) || !bytes.Contains(out, []byte("last good")) {
		t.Fatalf("started on a damaged log (%v):\n%s", err, out)
	}
	if !bytes.Equal(mustReadFile(t, log), damaged) {
		t.Fatal("the refused log changed")
	}
	if out, err := exec.Command(binary, "audit", "set-aside", log).CombinedOutput(); err != nil {
		t.Fatalf("set-aside: %v\n%s", err, out)
	}
	cmd, _, stderr = start()
	_ = cmd.Process.Signal(os.Interrupt)
	go func() { done <- cmd.Wait() }()
	select {
	case <-done:
	case <-time.After(30 * time.Second):
		t.Fatalf("lienthong up did not stop:\n%s", stderr.String())
	}
}
