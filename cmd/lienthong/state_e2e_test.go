package main

import (
	"context"
	"crypto/tls"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/lienthong/lienthong/adapters/synthetic"
	"github.com/lienthong/lienthong/audit"
	"github.com/lienthong/lienthong/controlplane/client"
	"github.com/lienthong/lienthong/internal/durable"
)

// upAddrs are the addresses one start of `lienthong up` bound, as its
// --ready-file says.
type upAddrs struct {
	listen, consumerOut, backend, kafka string
	ready                               upReady
}

// upFlagsOnPortZero give every listener of `lienthong up` a port the
// system picks: a test reads the addresses bound (--ready-file, or the
// output) and never guesses a free port another process could take first.
var upFlagsOnPortZero = []string{
	"--listen", "127.0.0.1:0", "--consumer-outbound", "127.0.0.1:0", "--provider-inbound", "127.0.0.1:0",
	"--provider-outbound", "127.0.0.1:0", "--consumer-inbound", "127.0.0.1:0", "--backend", "127.0.0.1:0",
	"--justice-inbound", "127.0.0.1:0", "--justice-outbound", "127.0.0.1:0", "--lgsp-inbound", "127.0.0.1:0",
	"--lgsp-outbound", "127.0.0.1:0", "--kafka-listen", "127.0.0.1:0",
}

// upArgs are the arguments of `lienthong up` on dir, every listener on
// port 0, the seed of examples/, then extra.
func upArgs(dir string, extra ...string) []string {
	args := []string{"up", "--data-dir", dir, "--seed", filepath.Join("..", "..", "examples", "federation.json")}
	return append(append(args, upFlagsOnPortZero...), extra...)
}

const upCitizens = 50

// smallUpArgs start a federation of upCitizens, writing its addresses to
// readyFile.
func smallUpArgs(dir, readyFile string) []string {
	return upArgs(dir, "--citizens", fmt.Sprint(upCitizens), "--log-level", "warn", "--ready-file", readyFile)
}

// readUpAddrs reads the addresses a start of `up` wrote to its ready file.
func readUpAddrs(t *testing.T, file string) upAddrs {
	t.Helper()
	raw, err := os.ReadFile(file)
	if err != nil {
		t.Fatalf("the ready file: %v", err)
	}
	var r upReady
	if err := json.Unmarshal(raw, &r); err != nil {
		t.Fatalf("the ready file: %v\n%s", err, raw)
	}
	a := upAddrs{listen: strings.TrimPrefix(r.ControlPlane, "https://"), consumerOut: r.Gateways[upConsumer].Outbound,
		backend: r.Backend, kafka: r.Kafka, ready: r}
	for name, v := range map[string]string{"control plane": a.listen, "consumer outbound": a.consumerOut, "backend": a.backend, "kafka": a.kafka} {
		if _, port, err := net.SplitHostPort(v); err != nil || port == "0" {
			t.Fatalf("the ready file names no %s address bound (%q):\n%s", name, v, raw)
		}
	}
	return a
}

// startUp runs `lienthong up` and waits for its ready output, returning
// the lines printed and the addresses it bound.
func startUp(t *testing.T, dir string, env ...string) (*proc, []string, upAddrs) {
	t.Helper()
	ready := filepath.Join(t.TempDir(), "ready.json")
	p := start(t, env, smallUpArgs(dir, ready)...)
	lines := p.waitFor("?fields=religion", 90*time.Second)
	p.drain()
	return p, lines, readUpAddrs(t, ready)
}

// stopClean sends SIGTERM and requires exit status 0.
func stopClean(t *testing.T, p *proc) {
	t.Helper()
	if err := p.stop(syscall.SIGTERM, 30*time.Second); err != nil {
		t.Fatalf("after SIGTERM: %v, want exit status 0", err)
	}
}

// newFederation makes a data directory with a whole federation in it and
// stops it cleanly, returning the addresses that start bound.
func newFederation(t *testing.T) (string, upAddrs) {
	t.Helper()
	dir := filepath.Join(t.TempDir(), "data")
	p, _, a := startUp(t, dir)
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
	dir, _ := newFederation(t)
	client := exchangeClient(t, dir)
	const stops, workers = 20, 4
	var mu sync.Mutex
	var answered []string
	for stop := range stops {
		p, _, a := startUp(t, dir)
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
	killed := filepath.Join(t.TempDir(), "data")
	p, _, _ := startUp(t, killed)
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
		p, _, a := startUp(t, dir)
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
			p := start(t, nil, smallUpArgs(dir, filepath.Join(t.TempDir(), "ready.json"))...)
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
	orig, _ := newFederation(t)
	before := fileHashes(t, orig)
	moved := filepath.Join(t.TempDir(), "restored")
	copyDir(t, orig, moved)
	gone := orig + ".elsewhere"
	if err := os.Rename(orig, gone); err != nil {
		t.Fatal(err)
	}
	p, _, a := startUp(t, moved)
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

// TestUpRestartWithOtherAddresses restarts `up` on new addresses and runs
// the commands it prints: they must reach what listens now.
func TestUpRestartWithOtherAddresses(t *testing.T) {
	needCurl(t)
	dir, first := newFederation(t)
	// The test holds the first start's ports (those it can: one another
	// process took since is just as unavailable), so every address of the
	// second start differs from the one registered and configured.
	held := []string{first.listen, first.backend, first.kafka}
	for _, g := range first.ready.Gateways {
		held = append(held, g.Outbound, g.Inbound)
	}
	for _, addr := range held {
		if ln, err := net.Listen("tcp", addr); err == nil {
			defer ln.Close()
		}
	}
	p, lines, b := startUp(t, dir)
	for member, g := range b.ready.Gateways {
		if was := first.ready.Gateways[member]; g.Outbound == was.Outbound || g.Inbound == was.Inbound {
			t.Fatalf("%s listens where it did on the first start (%+v, then %+v)", member, was, g)
		}
	}
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

// controlPlaneOf runs the control plane of a federation made by `up`, on a
// port the system picks, for `lienthong gateway` processes to talk to
// (gatewayOf points them at it). It returns the process and its URL.
func controlPlaneOf(t *testing.T, dir string) (*proc, string) {
	t.Helper()
	cp := start(t, nil, "controlplane", "--data-dir", dir, "--listen", "127.0.0.1:0", "--log-level", "warn")
	lines := cp.waitFor("control plane ready", 60*time.Second)
	cp.drain()
	m := controlPlaneReady.FindStringSubmatch(lines[len(lines)-1])
	if m == nil {
		t.Fatalf("no URL in the ready line %q", lines[len(lines)-1])
	}
	return cp, m[1]
}

var (
	controlPlaneReady = regexp.MustCompile(`control plane ready at (https://\S+)`)
	gatewayDoors      = regexp.MustCompile(`ready: outbound (\S+), inbound (\S+),`)
)

// gatewayOf rewrites the configuration `up` wrote for a member's gateway to
// run it as its own process: the control plane at cpURL, both doors on
// ports the system picks, and edit's changes. It returns the arguments of
// `lienthong gateway`.
func gatewayOf(t *testing.T, dir, member, cpURL string, edit func(cfg map[string]any)) []string {
	t.Helper()
	file := filepath.Join(dir, "federation", member, "gateway.json")
	raw, err := os.ReadFile(file)
	if err != nil {
		t.Fatal(err)
	}
	var cfg map[string]any
	if err := json.Unmarshal(raw, &cfg); err != nil {
		t.Fatal(err)
	}
	cfg["controlPlane"].(map[string]any)["url"] = cpURL
	cfg["outbound"] = map[string]string{"listen": "127.0.0.1:0"}
	cfg["inbound"] = map[string]string{"listen": "127.0.0.1:0"}
	if edit != nil {
		edit(cfg)
	}
	if raw, err = json.Marshal(cfg); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(file, raw, 0o600); err != nil {
		t.Fatal(err)
	}
	return []string{"gateway", "--config", file, "--log-level", "warn"}
}

// doorsOf reads a gateway's two addresses from its ready line.
func doorsOf(t *testing.T, lines []string) (outbound, inbound string) {
	t.Helper()
	m := gatewayDoors.FindStringSubmatch(lines[len(lines)-1])
	if m == nil {
		t.Fatalf("no addresses in the gateway's ready line %q", lines[len(lines)-1])
	}
	return m[1], m[2]
}

const gatewayReady = "lienthong gateway of " + upConsumer + " ready"

// TestSIGKILLDuringCertificateRenewalLeavesAStateThatStarts kills a gateway
// between replacing its key and its certificate chain, and restarts it.
func TestSIGKILLDuringCertificateRenewalLeavesAStateThatStarts(t *testing.T) {
	dir, _ := newFederation(t)
	_, cpURL := controlPlaneOf(t, dir)
	gatewayArgs := gatewayOf(t, dir, upConsumer, cpURL, nil)
	gdir := filepath.Join(dir, "federation", upConsumer)
	oldCert, err := os.ReadFile(filepath.Join(gdir, "cert.pem"))
	if err != nil {
		t.Fatal(err)
	}
	gw := start(t, []string{durable.CrashEnv + "=replace-half-renamed:key.pem"}, gatewayArgs...)
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
	gw = start(t, nil, gatewayArgs...)
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
	dir, _ := newFederation(t)
	cp, cpURL := controlPlaneOf(t, dir)
	gatewayArgs := gatewayOf(t, dir, upConsumer, cpURL, nil)
	// A gateway's first start: nothing kept yet, so it downloads and saves.
	if err := os.RemoveAll(filepath.Join(dir, "federation", upConsumer, "state")); err != nil {
		t.Fatal(err)
	}
	gw := start(t, []string{durable.CrashEnv + "=replace-half-renamed:gateway-config.json"}, gatewayArgs...)
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
	gw = start(t, nil, gatewayArgs...)
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
	dir, _ := newFederation(t)
	arrived, release := make(chan struct{}, 16), make(chan struct{})
	defer close(release)
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	backend := &http.Server{Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		arrived <- struct{}{}
		<-release
	})}
	go func() { _ = backend.Serve(ln) }()
	defer backend.Close()

	_, cpURL := controlPlaneOf(t, dir)
	provider := start(t, nil, gatewayOf(t, dir, upProvider, cpURL, func(cfg map[string]any) {
		b := cfg["backends"].(map[string]any)[upProviderSystem+"/population"].(map[string]any)
		b["rest"] = map[string]string{"baseUrl": "http://" + ln.Addr().String()}
	})...)
	_, inbound := doorsOf(t, provider.waitFor("ready", 60*time.Second))
	provider.drain()
	// The provider's gateway moved: its operator registers where peers
	// now call it, before the consumer's gateway starts and pulls.
	token, err := os.ReadFile(filepath.Join(dir, "admin.token"))
	if err != nil {
		t.Fatal(err)
	}
	admin, err := client.New(cpURL, strings.TrimSpace(string(token)), filepath.Join(dir, "tls", "ca.pem"))
	if err != nil {
		t.Fatal(err)
	}
	if _, err := admin.RegisterGateway(context.Background(), upProvider, upProviderGW, inbound); err != nil {
		t.Fatal(err)
	}
	consumer := start(t, nil, gatewayOf(t, dir, upConsumer, cpURL, nil)...)
	outbound, _ := doorsOf(t, consumer.waitFor(gatewayReady, 60*time.Second))
	consumer.drain()

	go read(exchangeClient(t, dir), upAddrs{consumerOut: outbound}, "held")
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
