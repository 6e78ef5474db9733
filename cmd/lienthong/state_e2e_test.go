package main

import (
	"crypto/tls"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/lienthong/lienthong/adapters/synthetic"
	"github.com/lienthong/lienthong/audit"
	"github.com/lienthong/lienthong/internal/durable"
)

// upAddrs are the addresses `lienthong up` listens on.
type upAddrs struct {
	listen, consumerOut, providerIn, providerOut, consumerIn, backend string
	justiceIn, justiceOut, lgspIn, lgspOut, kafka                     string
}

func newUpAddrs(t *testing.T) upAddrs {
	return upAddrs{listenPort(t), listenPort(t), listenPort(t), listenPort(t), listenPort(t), listenPort(t),
		listenPort(t), listenPort(t), listenPort(t), listenPort(t), listenPort(t)}
}

// listenPort is a free loopback address below Linux's ephemeral range
// (32768-60999): a port the kernel handed out could be taken again as the
// source port of a connection before the process that will listen on it
// starts.
func listenPort(t *testing.T) string {
	t.Helper()
	for range 100 {
		addr := fmt.Sprintf("127.0.0.1:%d", 20000+rand.IntN(12000))
		if ln, err := net.Listen("tcp", addr); err == nil {
			ln.Close()
			return addr
		}
	}
	t.Fatal("no free port below the ephemeral range")
	return ""
}

const upCitizens = 50

func (a upAddrs) args(dir string) []string {
	return []string{"up", "--data-dir", dir, "--seed", filepath.Join("..", "..", "examples", "federation.json"),
		"--listen", a.listen, "--consumer-outbound", a.consumerOut, "--provider-inbound", a.providerIn,
		"--provider-outbound", a.providerOut, "--consumer-inbound", a.consumerIn, "--backend", a.backend,
		"--justice-inbound", a.justiceIn, "--justice-outbound", a.justiceOut, "--lgsp-inbound", a.lgspIn, "--lgsp-outbound", a.lgspOut,
		"--kafka-listen", a.kafka, "--citizens", fmt.Sprint(upCitizens), "--log-level", "warn"}
}

// startUp runs `lienthong up` and waits for its ready output, returning
// the lines printed.
func startUp(t *testing.T, dir string, a upAddrs, env ...string) (*proc, []string) {
	t.Helper()
	p := start(t, env, a.args(dir)...)
	lines := p.waitFor("?fields=religion", 90*time.Second)
	p.drain()
	return p, lines
}

// stopClean sends SIGTERM and requires exit status 0.
func stopClean(t *testing.T, p *proc) {
	t.Helper()
	if err := p.stop(syscall.SIGTERM, 30*time.Second); err != nil {
		t.Fatalf("after SIGTERM: %v, want exit status 0", err)
	}
}

// newFederation makes a data directory with a whole federation in it and
// stops it cleanly.
func newFederation(t *testing.T) (string, upAddrs) {
	t.Helper()
	dir, a := filepath.Join(t.TempDir(), "data"), newUpAddrs(t)
	p, _ := startUp(t, dir, a)
	stopClean(t, p)
	return dir, a
}

// exchangeClient is the Social Security system's mTLS client. The gateway is
// named by SPIFFE id, not host name; the test talks to loopback only, so it
// skips the name check (the printed curl commands pin the key instead).
func exchangeClient(t *testing.T, dir string) *http.Client {
	t.Helper()
	c := filepath.Join(dir, "federation", "client")
	pair, err := tls.LoadX509KeyPair(filepath.Join(c, "cert.pem"), filepath.Join(c, "key.pem"))
	if err != nil {
		t.Fatal(err)
	}
	return &http.Client{Timeout: 10 * time.Second, Transport: &http.Transport{
		TLSClientConfig: &tls.Config{Certificates: []tls.Certificate{pair}, InsecureSkipVerify: true},
	}}
}

var sampleCitizen = synthetic.Citizens(upCitizens, 2026)[0].PersonalID

// read asks for one record with a case reference the audit log keeps, and
// reports whether it was answered with the record.
func read(c *http.Client, a upAddrs, caseRef string) bool {
	req, _ := http.NewRequest("GET", "https://"+a.consumerOut+"/r/"+upProviderSystem+"/population/citizens/"+sampleCitizen+"?fields=fullName", nil)
	req.Header.Set("X-LT-Purpose", upPurpose)
	req.Header.Set("X-LT-Case", caseRef)
	resp, err := c.Do(req)
	if err != nil {
		return false
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	return err == nil && resp.StatusCode == http.StatusOK && strings.Contains(string(body), `"fullName"`)
}

// outcomes returns the case references of the outcome records in a
// member's audit log.
func outcomes(t *testing.T, dir, member string) map[string]bool {
	t.Helper()
	recs, err := audit.ReadFile(filepath.Join(dir, "federation", member, "audit.jsonl"))
	if err != nil {
		t.Fatal(err)
	}
	out := map[string]bool{}
	for _, r := range recs {
		if r.Phase == audit.Outcome && r.Case != "" {
			out[r.Case] = true
		}
	}
	return out
}

// TestUpSIGTERMUnderLoadLosesNoAuditRecord stops `lienthong up` with SIGTERM
// twenty times while systems read through it, and requires every answered
// exchange to have its outcome in both gateways' audit logs, exit status 0
// and a checkpointed catalog (no WAL left) after each stop.
func TestUpSIGTERMUnderLoadLosesNoAuditRecord(t *testing.T) {
	dir, a := newFederation(t)
	client := exchangeClient(t, dir)
	const stops, workers = 20, 4
	var mu sync.Mutex
	var answered []string
	for stop := range stops {
		p, _ := startUp(t, dir, a)
		quit := make(chan struct{})
		var wg sync.WaitGroup
		for w := range workers {
			wg.Add(1)
			go func() {
				defer wg.Done()
				for i := 0; i < 2000; i++ { // bounded; ends with the process
					select {
					case <-quit:
						return
					default:
					}
					ref := fmt.Sprintf("stop%d-w%d-%d", stop, w, i)
					if read(client, a, ref) {
						mu.Lock()
						answered = append(answered, ref)
						mu.Unlock()
					}
				}
			}()
		}
		time.Sleep(150 * time.Millisecond) // some exchanges in flight when the signal comes
		err := p.stop(syscall.SIGTERM, 30*time.Second)
		close(quit)
		wg.Wait()
		client.CloseIdleConnections()
		if err != nil {
			t.Fatalf("stop %d: exit %v, want status 0", stop, err)
		}
		if fi, err := os.Stat(filepath.Join(dir, "catalog.db-wal")); err == nil && fi.Size() > 0 {
			t.Errorf("stop %d: catalog.db-wal holds %d bytes after a clean stop: the store was not checkpointed", stop, fi.Size())
		}
	}
	if len(answered) < stops {
		t.Fatalf("only %d exchanges answered over %d stops: the load did not run", len(answered), stops)
	}
	for _, member := range []string{upConsumer, upProvider} {
		logged := outcomes(t, dir, member)
		missing := 0
		for _, ref := range answered {
			if !logged[ref] {
				missing++
				if missing <= 5 {
					t.Errorf("%s: answered exchange %s has no outcome record", member, ref)
				}
			}
		}
		if missing > 0 {
			t.Errorf("%s: %d of %d answered exchanges missing from the audit log", member, missing, len(answered))
		}
	}
	t.Logf("%d answered exchanges over %d stops, all in both audit logs", len(answered), stops)
}

// TestStartRefusesDamagedState damages a federation's catalog in the ways
// an operator's worst day does and requires `lienthong up` to refuse to
// start, name what is wrong and how to restore, and leave every file of the
// data directory byte-identical.
func TestStartRefusesDamagedState(t *testing.T) {
	// A federation killed outright: its catalog lives in the WAL.
	killed, a := filepath.Join(t.TempDir(), "data"), newUpAddrs(t)
	p, _ := startUp(t, killed, a)
	if err := p.stop(syscall.SIGKILL, 10*time.Second); !killedBySignal(err) {
		t.Fatalf("SIGKILL: %v", err)
	}
	if fi, err := os.Stat(filepath.Join(killed, "catalog.db-wal")); err != nil || fi.Size() < 32+3*(24+4096) {
		t.Fatalf("the killed federation's WAL is missing or nearly empty (%v): the damage below would test nothing", err)
	}
	// Killed is not damaged: a copy of it starts, with its catalog whole.
	t.Run("killed but whole starts", func(t *testing.T) {
		dir := filepath.Join(t.TempDir(), "data")
		copyDir(t, killed, dir)
		p, _ := startUp(t, dir, a)
		if !read(exchangeClient(t, dir), a, "after-sigkill") {
			t.Error("no exchange after a restart from a killed federation")
		}
		stopClean(t, p)
	})
	// A federation stopped cleanly: its catalog is all in catalog.db.
	clean, _ := newFederation(t)

	flip := func(path string, off int64) func(t *testing.T) {
		return func(t *testing.T) {
			f, err := os.OpenFile(path, os.O_RDWR, 0)
			if err != nil {
				t.Fatal(err)
			}
			defer f.Close()
			b := make([]byte, 1)
			if _, err := f.ReadAt(b, off); err != nil {
				t.Fatal(err)
			}
			b[0] ^= 0x5a
			if _, err := f.WriteAt(b, off); err != nil {
				t.Fatal(err)
			}
		}
	}
	cases := []struct {
		name, from, why string
		damage          func(dir string) func(t *testing.T)
	}{
		{"damaged WAL frame", killed, "fails its checksum", func(dir string) func(*testing.T) {
			return flip(filepath.Join(dir, "catalog.db-wal"), 32+24+1000)
		}},
		{"damaged WAL header", killed, "header", func(dir string) func(*testing.T) {
			return flip(filepath.Join(dir, "catalog.db-wal"), 5)
		}},
		{"truncated database", clean, "truncated", func(dir string) func(*testing.T) {
			return func(t *testing.T) {
				db := filepath.Join(dir, "catalog.db")
				fi, err := os.Stat(db)
				if err != nil {
					t.Fatal(err)
				}
				if err := os.Truncate(db, fi.Size()/2/4096*4096); err != nil {
					t.Fatal(err)
				}
			}
		}},
		{"removed catalog", clean, "is missing", func(dir string) func(*testing.T) {
			return func(t *testing.T) {
				if err := os.Remove(filepath.Join(dir, "catalog.db")); err != nil {
					t.Fatal(err)
				}
			}
		}},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			dir := filepath.Join(t.TempDir(), "data")
			copyDir(t, c.from, dir)
			c.damage(dir)(t)
			before := fileHashes(t, dir)
			p := start(t, nil, a.args(dir)...)
			p.drain()
			err := p.wait(60 * time.Second)
			if err == nil {
				t.Fatal("lienthong up started on damaged state")
			}
			msg := p.errText()
			for _, want := range []string{"refusing to start", c.why, "Restore", "Backup, restore and recovery"} {
				if !strings.Contains(msg, want) {
					t.Errorf("the refusal does not say %q:\n%s", want, msg)
				}
			}
			sameFiles(t, before, fileHashes(t, dir))
		})
	}
}

// TestDataDirectoryMoves copies a federation's data directory elsewhere,
// moves the original out of the way, starts from the copy and exchanges
// through it: the copy uses its own files, the original's are untouched.
func TestDataDirectoryMoves(t *testing.T) {
	orig, a := newFederation(t)
	before := fileHashes(t, orig)
	moved := filepath.Join(t.TempDir(), "restored")
	copyDir(t, orig, moved)
	gone := orig + ".elsewhere"
	if err := os.Rename(orig, gone); err != nil {
		t.Fatal(err)
	}
	p, _ := startUp(t, moved, a)
	if !read(exchangeClient(t, moved), a, "after-the-move") {
		t.Error("no exchange through the federation started from the copy")
	}
	stopClean(t, p)
	if _, err := os.Stat(orig); err == nil {
		t.Errorf("%s was created again by the copy", orig)
	}
	sameFiles(t, before, fileHashes(t, gone))
	if !outcomes(t, moved, upConsumer)["after-the-move"] {
		t.Error("the copy's audit log does not hold the exchange")
	}
	raw, err := os.ReadFile(filepath.Join(moved, "federation", upConsumer, "gateway.json"))
	if err != nil {
		t.Fatal(err)
	}
	if strings.Contains(string(raw), orig) {
		t.Errorf("the copy's gateway configuration names the original directory:\n%s", raw)
	}
}

// TestUpRestartWithOtherAddresses restarts `up` on six new addresses and
// runs the commands it prints: they must reach what listens now.
func TestUpRestartWithOtherAddresses(t *testing.T) {
	needCurl(t)
	dir, _ := newFederation(t)
	b := newUpAddrs(t)
	p, lines := startUp(t, dir, b)
	var curls []string
	for _, l := range lines {
		if s := strings.TrimSpace(l); strings.HasPrefix(s, "curl ") {
			curls = append(curls, s)
		}
	}
	if len(curls) != 4 {
		t.Fatalf("%d curl commands printed, want 4:\n%s", len(curls), strings.Join(lines, "\n"))
	}
	for _, c := range curls {
		if !strings.Contains(c, "https://"+b.consumerOut+"/") {
			t.Errorf("printed command does not name the new outbound address %s: %s", b.consumerOut, c)
		}
	}
	if !strings.Contains(strings.Join(lines, "\n"), "https://"+b.listen) {
		t.Errorf("the control plane's new address %s is not printed", b.listen)
	}
	run := func(line string) string {
		out, err := exec.Command("sh", "-c", line).CombinedOutput()
		if err != nil {
			t.Fatalf("%s: %v\n%s", line, err, out)
		}
		return string(out)
	}
	if out := run(curls[0]); !strings.Contains(out, `"fullName"`) {
		t.Errorf("granted read on the new addresses: %s", out)
	}
	if out := run(curls[3]); !strings.Contains(out, `"status":403`) {
		t.Errorf("refused read on the new addresses: %s", out)
	}
	stopClean(t, p)
}

// gatewayProcs runs the control plane of a federation made by `up` on its
// address, for `lienthong gateway` processes to talk to.
func controlPlaneOf(t *testing.T, dir string, a upAddrs) *proc {
	t.Helper()
	cp := start(t, nil, "controlplane", "--data-dir", dir, "--listen", a.listen, "--log-level", "warn")
	cp.waitFor("control plane ready", 60*time.Second)
	cp.drain()
	return cp
}

func gatewayArgs(dir string) []string {
	return []string{"gateway", "--config", filepath.Join(dir, "federation", upConsumer, "gateway.json"), "--log-level", "warn"}
}

const gatewayReady = "lienthong gateway of " + upConsumer + " ready"

// TestSIGKILLDuringCertificateRenewalLeavesAStateThatStarts kills a gateway
// between replacing its key and its certificate chain, and restarts it.
func TestSIGKILLDuringCertificateRenewalLeavesAStateThatStarts(t *testing.T) {
	dir, a := newFederation(t)
	controlPlaneOf(t, dir, a)
	gdir := filepath.Join(dir, "federation", upConsumer)
	oldCert, err := os.ReadFile(filepath.Join(gdir, "cert.pem"))
	if err != nil {
		t.Fatal(err)
	}
	gw := start(t, []string{durable.CrashEnv + "=replace-half-renamed:key.pem"}, gatewayArgs(dir)...)
	gw.waitFor(gatewayReady, 60*time.Second)
	gw.drain()
	if err := gw.stop(syscall.SIGHUP, 30*time.Second); !killedBySignal(err) {
		t.Fatalf("the gateway was not killed during the renewal: %v", err)
	}
	// The crash left the new key beside the old chain: on their own they
	// do not load.
	if _, err := tls.LoadX509KeyPair(filepath.Join(gdir, "cert.pem"), filepath.Join(gdir, "key.pem")); err == nil {
		t.Fatal("key and certificate still match: the crash point was not between the two")
	}
	gw = start(t, nil, gatewayArgs(dir)...)
	gw.waitFor(gatewayReady, 60*time.Second)
	gw.drain()
	newCert, err := os.ReadFile(filepath.Join(gdir, "cert.pem"))
	if err != nil {
		t.Fatal(err)
	}
	if string(newCert) == string(oldCert) {
		t.Error("the restarted gateway did not complete the renewal it had committed")
	}
	if _, err := tls.LoadX509KeyPair(filepath.Join(gdir, "cert.pem"), filepath.Join(gdir, "key.pem")); err != nil {
		t.Errorf("key and certificate after recovery: %v", err)
	}
	for _, left := range []string{"key.pem.next", "cert.pem.next", "key.pem.commit"} {
		if _, err := os.Stat(filepath.Join(gdir, left)); err == nil {
			t.Errorf("%s left behind after recovery", left)
		}
	}
	if err := gw.stop(syscall.SIGTERM, 30*time.Second); err != nil {
		t.Errorf("gateway after SIGTERM: %v, want status 0", err)
	}
}

// TestSIGKILLDuringConfigurationSaveLeavesAStateThatStarts kills a gateway
// between replacing its stored configuration and its signature, then stops
// the control plane: the gateway must start from what it kept.
func TestSIGKILLDuringConfigurationSaveLeavesAStateThatStarts(t *testing.T) {
	dir, a := newFederation(t)
	cp := controlPlaneOf(t, dir, a)
	// A gateway's first start: nothing kept yet, so it downloads and saves.
	if err := os.RemoveAll(filepath.Join(dir, "federation", upConsumer, "state")); err != nil {
		t.Fatal(err)
	}
	gw := start(t, []string{durable.CrashEnv + "=replace-half-renamed:gateway-config.json"}, gatewayArgs(dir)...)
	gw.drain()
	if err := gw.wait(60 * time.Second); !killedBySignal(err) {
		t.Fatalf("the gateway was not killed while saving its configuration: %v", err)
	}
	state := filepath.Join(dir, "federation", upConsumer, "state")
	if _, err := os.Stat(filepath.Join(state, "gateway-config.sig")); err == nil {
		t.Fatal("the signature was saved: the crash point was not between the configuration and its signature")
	}
	if _, err := os.Stat(filepath.Join(state, "gateway-config.json.commit")); err != nil {
		t.Fatalf("no committed replacement under way after the crash: %v", err)
	}
	stopClean(t, cp) // a control-plane outage: only what was kept can start it
	gw = start(t, nil, gatewayArgs(dir)...)
	gw.waitFor(gatewayReady, 60*time.Second)
	gw.drain()
	if err := gw.stop(syscall.SIGTERM, 30*time.Second); err != nil {
		t.Errorf("gateway after SIGTERM: %v, want status 0", err)
	}
}

// TestSecondSignalExitsAtOnce holds an exchange in flight at a backend that
// does not answer, stops the provider's gateway with SIGTERM (it waits for
// the exchange) and then again: the second signal must end it at once,
// before the backend ever answers.
func TestSecondSignalExitsAtOnce(t *testing.T) {
	dir, a := newFederation(t)
	arrived, release := make(chan struct{}, 16), make(chan struct{})
	defer close(release)
	ln, err := net.Listen("tcp", a.backend)
	if err != nil {
		t.Fatal(err)
	}
	backend := &http.Server{Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		arrived <- struct{}{}
		<-release
	})}
	go func() { _ = backend.Serve(ln) }()
	defer backend.Close()

	controlPlaneOf(t, dir, a)
	provider := start(t, nil, "gateway", "--config", filepath.Join(dir, "federation", upProvider, "gateway.json"), "--log-level", "warn")
	provider.waitFor("ready", 60*time.Second)
	provider.drain()
	consumer := start(t, nil, gatewayArgs(dir)...)
	consumer.waitFor(gatewayReady, 60*time.Second)
	consumer.drain()

	go read(exchangeClient(t, dir), a, "held")
	select {
	case <-arrived:
	case <-time.After(30 * time.Second):
		t.Fatal("the exchange never reached the backend")
	}
	_ = provider.cmd.Process.Signal(syscall.SIGTERM)
	for !strings.Contains(provider.errText(), "stopping cleanly") {
		select {
		case <-provider.done:
			t.Fatalf("the gateway ended on the first signal with an exchange in flight: %v", provider.err)
		case <-time.After(10 * time.Millisecond):
		}
	}
	err = provider.stop(syscall.SIGTERM, 30*time.Second)
	var ee *exec.ExitError
	if !errors.As(err, &ee) || ee.ExitCode() != 130 {
		t.Fatalf("after the second signal: %v, want exit status 130 while the exchange is still held", err)
	}
	if err := consumer.stop(syscall.SIGTERM, 30*time.Second); err != nil {
		t.Errorf("consumer gateway after SIGTERM: %v", err)
	}
}
