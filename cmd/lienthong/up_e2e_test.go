package main

import (
	"bytes"
	"context"
	"encoding/json"
	"io/fs"
	"maps"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/lienthong/lienthong/catalog/storetest"
	"github.com/lienthong/lienthong/gateway/feed/broker"
)

// upHeadings are the headings `lienthong up` prints above its curl
// commands, each naming what the command under it shows.
var upHeadings = []string{
	"Allowed read", "Masked read", "Verify", "Refused read", "Row-scoped read", "Outside the row scope",
	"Publish a birth registration", "Birth feed", "Death feed", "Publish a population change", "Population feed",
}

// readyIn matches the ready line and the time it took.
var readyIn = regexp.MustCompile(`^lienthong federation ready in ([0-9.]+)s$`)

// upRun is one start of `lienthong up`: its process, the commands it
// printed, by heading, and the operations listeners it printed after them
// (readOps).
type upRun struct {
	p     *proc
	curls map[string]string
	lines []string
	ops   map[string]string
}

// startUpRun starts `lienthong up` and reads its output up to the last
// command.
func startUpRun(t *testing.T, args []string) *upRun {
	t.Helper()
	p := start(t, nil, args...)
	lines := p.waitFor("lienthong federation ready in", 60*time.Second)
	if m := readyIn.FindStringSubmatch(lines[len(lines)-1]); m == nil {
		t.Fatalf("ready line %q does not say how long the start took", lines[len(lines)-1])
	} else if s, err := strconv.ParseFloat(m[1], 64); err != nil || s <= 0 {
		t.Fatalf("ready line %q: %v", lines[len(lines)-1], err)
	}
	lines = append(lines, p.waitFor("/feeds/"+upProviderSystem+"/population'", 10*time.Second)...)
	ops := readOps(t, p)
	p.drain()
	r := &upRun{p: p, curls: map[string]string{}, lines: lines, ops: ops}
	for i, l := range lines {
		s := strings.TrimSpace(l)
		if !strings.HasPrefix(s, "curl ") || i == 0 {
			continue
		}
		for _, h := range upHeadings {
			if strings.HasPrefix(lines[i-1], h+":") {
				r.curls[h] = s
			}
		}
	}
	for _, h := range upHeadings {
		if r.curls[h] == "" {
			t.Fatalf("no command under %q:\n%s", h, strings.Join(lines, "\n"))
		}
	}
	return r
}

// run executes a printed command through the shell, as a person would.
func (r *upRun) run(t *testing.T, heading string, extra ...string) string {
	t.Helper()
	line := r.curls[heading]
	if len(extra) > 0 {
		line += " " + strings.Join(extra, " ")
	}
	out, err := exec.Command("sh", "-c", line).CombinedOutput()
	if err != nil && !strings.Contains(line, " -N ") { // a feed read ends by --max-time
		t.Fatalf("%s: %v\n%s", heading, err, out)
	}
	return string(out)
}

// TestUpRunsTheFederation runs `lienthong up` (what make run runs) as a
// process, executes the curl commands it prints and checks their answers,
// checks that both joint-service feeds carried events through every hop,
// stops it with SIGTERM and starts it again on the same data directory.
func TestUpRunsTheFederation(t *testing.T) {
	needCurl(t)
	dir := t.TempDir()
	ready := filepath.Join(t.TempDir(), "ready.json")
	args := upArgs(dir, "--ready-file", ready,
		// Fewer citizens than make run's 100,000 keep the test short; a
		// registration every half second keeps the feeds busy.
		"--citizens", "3000", "--trickle-every", "500ms", "--trickle-max", "60")
	up := startUpRun(t, args)
	kafka := readUpAddrs(t, ready).kafka
	if !strings.Contains(strings.Join(up.lines, "\n"), "3000 synthetic citizens (generated on this start)") {
		t.Errorf("the first start does not say it generated the population database:\n%s", strings.Join(up.lines, "\n"))
	}

	// Queries: allowed, masked, verify, refused, and the row scope.
	if out := up.run(t, "Allowed read"); !strings.Contains(out, `"fullName"`) || strings.Contains(out, `"personalId"`) {
		t.Errorf("allowed read: %s", out)
	}
	if out := up.run(t, "Masked read"); !strings.Contains(out, `"personalId":"hmac-sha256:`) || strings.Contains(out, `"religion"`) {
		t.Errorf("masked read: %s", out)
	}
	if out := up.run(t, "Verify"); !strings.Contains(out, `"dateOfBirth":"match"`) {
		t.Errorf("verify: %s", out)
	}
	if out := up.run(t, "Refused read"); !strings.Contains(out, `"status":403`) || !strings.Contains(out, "religion") {
		t.Errorf("refused read: %s", out)
	}
	if out := up.run(t, "Row-scoped read"); !strings.Contains(out, `"permanentResidence":{"provinceCode":"01"`) || !regexp.MustCompile(`"personalId":"\*+[0-9]{4}"`).MatchString(out) {
		t.Errorf("row-scoped read of a Hà Nội resident: %s", out)
	}
	if out := up.run(t, "Outside the row scope"); !strings.Contains(out, `"status":404`) || strings.Contains(out, `"fullName"`) {
		t.Errorf("read outside the row scope: %s", out)
	}
	checkUpOps(t, up, readUpAddrs(t, ready).ready)

	// Feeds: the printed publish commands are accepted...
	if out := up.run(t, "Publish a birth registration"); !strings.Contains(out, `"accepted":1`) {
		t.Errorf("publish a birth registration: %s", out)
	}
	if out := up.run(t, "Publish a population change"); !strings.Contains(out, `"accepted":1`) {
		t.Errorf("publish a population change: %s", out)
	}
	// ...and every hop of both joint services carries events: the civil
	// registry's provider topics, its router (one audit record per
	// delivery), each consumer's topic, and the consumers' SSE doors.
	topics := map[string]bool{}
	for _, ds := range []string{"birth-registration", "death-registration"} {
		topics[broker.PublishTopic(upJusticeSystem, ds)] = false
		for _, consumer := range []string{upProviderSystem, upConsumerSystem} {
			topics[broker.DeliverTopic(consumer, upJusticeSystem, ds)] = false
		}
	}
	// The second hop: the population database's topic and Social
	// Security's projection of it.
	topics[broker.PublishTopic(upProviderSystem, "population")] = false
	topics[broker.DeliverTopic(upConsumerSystem, upProviderSystem, "population")] = false
	seen := topicsWithRecords(t, kafka, topics, 30*time.Second)
	for topic, ok := range seen {
		if !ok {
			t.Errorf("no event on %s", topic)
		}
	}
	// The civil registry's router, in `up`, reports each subscriber's lag.
	waitForLag(t, up.ops["feed router "+upJustice], routedFeeds, 20*time.Second)
	routerAudit := filepath.Join(dir, "federation", upJustice, "feed-audit.jsonl")
	out, err := exec.Command(binary, "audit", "read", "-o", "json", routerAudit).CombinedOutput()
	if err != nil {
		t.Fatalf("audit read %s: %v\n%s", routerAudit, err, out)
	}
	for _, ds := range []string{"birth-registration", "death-registration"} {
		for _, consumer := range []string{upProviderSystem, upConsumerSystem} {
			if !strings.Contains(string(out), `"consumer":"`+consumer+`","provider":"`+upJusticeSystem+`","dataset":"`+ds+`","mode":"feed"`) {
				t.Errorf("the civil registry's router recorded no delivery of %s to %s:\n%s", ds, consumer, out)
			}
		}
	}
	popAudit := filepath.Join(dir, "federation", upProvider, "feed-audit.jsonl")
	out, err = exec.Command(binary, "audit", "read", "-o", "json", popAudit).CombinedOutput()
	if err != nil {
		t.Fatalf("audit read %s: %v\n%s", popAudit, err, out)
	}
	if !strings.Contains(string(out), `"consumer":"`+upConsumerSystem+`","provider":"`+upProviderSystem+`","dataset":"population","mode":"feed"`) {
		t.Errorf("the population database's router recorded no delivery to Social Security:\n%s", out)
	}
	birth := up.run(t, "Birth feed", "--max-time", "4")
	if !strings.Contains(birth, `"type":"vn.gov.civilstatus.birth.registered"`) || !strings.Contains(birth, `"child":{"fullName"`) ||
		strings.Contains(birth, `"ethnicity"`) || !strings.Contains(birth, `"registrationNumber":"*`) {
		t.Errorf("Social Security's birth feed (child's ethnicity refused, registration number masked): %s", birth)
	}
	death := up.run(t, "Death feed", "--max-time", "4")
	if !strings.Contains(death, `"type":"vn.gov.civilstatus.death.registered"`) || !strings.Contains(death, `"deceased":{"personalId"`) ||
		strings.Contains(death, `causeOfDeath`) {
		t.Errorf("Public Security's death feed (cause of death not granted): %s", death)
	}
	// The second hop of both services: the population database's program
	// acts on each registration it receives and publishes the personal id
	// issued, or the residence removed, which Social Security reads.
	var pop string
	for end := time.Now().Add(20 * time.Second); ; {
		pop = up.run(t, "Population feed", "--max-time", "3")
		if strings.Contains(pop, `"id":"pid-`) && strings.Contains(pop, `"id":"rm-`) || time.Now().After(end) {
			break
		}
	}
	if !strings.Contains(pop, `"type":"vn.gov.population.personal-id.issued"`) || !strings.Contains(pop, `"id":"pid-`) ||
		!strings.Contains(pop, `"type":"vn.gov.population.permanent-residence.removed"`) || !strings.Contains(pop, `"id":"rm-`) ||
		!strings.Contains(pop, `"personalId":"hmac-sha256:`) {
		t.Errorf("Social Security's population feed (personal ids issued and residences removed, ids hashed): %s", pop)
	}
	// The gateways pulled their configuration with their certificates
	// alone: no gateway configuration file or state file holds an API token.
	noTokenOnGatewayHosts(t, dir)

	// SIGTERM stops everything cleanly; a second start reuses the data
	// directory: nothing is generated, filed or granted again.
	requests, _ := os.ReadDir(filepath.Join(dir, "federation", "requests"))
	if err := up.p.stop(syscall.SIGTERM, 30*time.Second); err != nil {
		t.Fatalf("after SIGTERM: %v, want exit status 0", err)
	}
	again := startUpRun(t, args)
	text := strings.Join(again.lines, "\n")
	if !strings.Contains(text, "3000 synthetic citizens (kept from an earlier start)") {
		t.Errorf("the second start did not reuse the population database:\n%s", text)
	}
	if first, second := pendingLine(up.lines), pendingLine(again.lines); first == "" || first != second {
		t.Errorf("the pending request changed between starts: %q, then %q", first, second)
	}
	if after, _ := os.ReadDir(filepath.Join(dir, "federation", "requests")); len(after) != len(requests) || len(requests) != len(upRequests()) {
		t.Errorf("%d requests filed by the first start, %d after the second; want %d", len(requests), len(after), len(upRequests()))
	}
	if out := again.run(t, "Masked read"); !strings.Contains(out, `"personalId":"hmac-sha256:`) {
		t.Errorf("masked read after a restart: %s", out)
	}
	if err := again.p.stop(syscall.SIGTERM, 30*time.Second); err != nil {
		t.Fatalf("after SIGTERM: %v, want exit status 0", err)
	}
}

// checkUpOps checks the operations listeners `up` printed after its
// commands: one per process it runs, the same as in its ready file, each
// alive and ready, and the consumer gateway's /metrics (parsed with the
// Prometheus text parser) counting the reads just made through it.
func checkUpOps(t *testing.T, up *upRun, ready upReady) {
	t.Helper()
	want := map[string]string{"control plane": ready.ControlPlaneMetrics}
	for member, g := range ready.Gateways {
		want["gateway "+member] = g.Metrics
	}
	for member, addr := range ready.FeedRouterMetrics {
		want["feed router "+member] = addr
	}
	if len(up.ops) != 1+len(upAgencies)+len(upRouters) || !maps.Equal(up.ops, want) {
		t.Errorf("printed operations listeners %v; the ready file names %v; want the control plane, %d gateways and %d feed routers",
			up.ops, want, len(upAgencies), len(upRouters))
	}
	for name, addr := range up.ops {
		if status, body := opsGet(t, addr, "/healthz"); status != http.StatusOK {
			t.Errorf("%s /healthz: %d %s", name, status, body)
		}
		if status, body := opsGet(t, addr, "/readyz"); status != http.StatusOK {
			t.Errorf("%s /readyz: %d %s", name, status, body)
		}
		scrapeOps(t, addr) // parses
	}
	// Social Security's system read three times (allowed, masked, verify)
	// and was refused religion once; its trickle program reads more.
	mfs := scrapeOps(t, up.ops["gateway "+upConsumer])
	of := func(outcome, reason string) float64 {
		want := map[string]string{"side": "consumer", "consumer": upConsumerSystem, "provider": upProviderSystem, "outcome": outcome}
		if reason != "" {
			want["reason"] = reason
		}
		n, _ := seriesOf(mfs, "lienthong_gateway_exchanges_total", want)
		return n
	}
	if n := of("allowed", ""); n < 3 {
		t.Errorf("Social Security's gateway counts %v allowed reads of the population database, want at least 3", n)
	}
	if n := of("denied", "access-denied"); n < 1 {
		t.Errorf("Social Security's gateway counts %v reads refused for access, want at least 1 (religion)", n)
	}
}

// pendingLine is the printed line of the request left pending.
func pendingLine(lines []string) string {
	for _, l := range lines {
		if strings.Contains(l, "pending") && strings.Contains(l, "(request ") {
			return l
		}
	}
	return ""
}

// topicsWithRecords reads the given topics from the start, read-committed,
// until each has a record or the time is up, and says which have.
func topicsWithRecords(t *testing.T, addr string, topics map[string]bool, within time.Duration) map[string]bool {
	t.Helper()
	var names []string
	for name := range topics {
		names = append(names, name)
	}
	cl, err := kgo.NewClient(kgo.SeedBrokers(addr), kgo.ConsumeTopics(names...), kgo.FetchIsolationLevel(kgo.ReadCommitted()),
		kgo.ConsumeResetOffset(kgo.NewOffset().AtStart()), kgo.FetchMaxWait(200*time.Millisecond))
	if err != nil {
		t.Fatal(err)
	}
	defer cl.Close()
	ctx, cancel := context.WithTimeout(context.Background(), within)
	defer cancel()
	for missing := len(topics); missing > 0 && ctx.Err() == nil; {
		cl.PollFetches(ctx).EachRecord(func(r *kgo.Record) {
			if !topics[r.Topic] {
				topics[r.Topic] = true
				missing--
			}
		})
	}
	return topics
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
	for _, a := range upAgencies {
		err := filepath.WalkDir(filepath.Join(dataDir, "federation", a.member), func(path string, d fs.DirEntry, err error) error {
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
	if files < 16 {
		t.Fatalf("only %d files under the gateways' directories: the walk missed them", files)
	}
}

// TestUpServesPopulationFromPostgres runs `lienthong up --population-dsn`:
// the population database is generated into PostgreSQL once and read
// through the gateway's PostgreSQL adapter, with the same masks and row
// scope as from SQLite.
func TestUpServesPopulationFromPostgres(t *testing.T) {
	dsn := storetest.FreshPostgresDatabase(t)
	needCurl(t)
	dir := t.TempDir()
	args := upArgs(dir, "--population-dsn", dsn, "--citizens", "2000", "--trickle-every", "0")
	for i, want := range []string{"2000 synthetic citizens (generated on this start), PostgreSQL table", "2000 synthetic citizens (kept from an earlier start), PostgreSQL table"} {
		up := startUpRun(t, args)
		if text := strings.Join(up.lines, "\n"); !strings.Contains(text, want) {
			t.Errorf("start %d does not say %q:\n%s", i+1, want, text)
		}
		if out := up.run(t, "Masked read"); !strings.Contains(out, `"personalId":"hmac-sha256:`) || strings.Contains(out, `"religion"`) {
			t.Errorf("masked read from PostgreSQL: %s", out)
		}
		if out := up.run(t, "Row-scoped read"); !strings.Contains(out, `"provinceCode":"01"`) || !regexp.MustCompile(`"personalId":"\*+[0-9]{4}"`).MatchString(out) {
			t.Errorf("row-scoped read from PostgreSQL: %s", out)
		}
		if out := up.run(t, "Outside the row scope"); !strings.Contains(out, `"status":404`) || strings.Contains(out, `"fullName"`) {
			t.Errorf("read outside the row scope from PostgreSQL: %s", out)
		}
		if err := up.p.stop(syscall.SIGTERM, 30*time.Second); err != nil {
			t.Fatalf("after SIGTERM: %v, want exit status 0", err)
		}
	}
}

// TestUpAssessesWhatTheSeedLeftUnassessed seeds a catalog whose Hà Nội
// portal is level 2 and unassessed (as data directories made by an older
// `up` have it): the start assesses it, as the operator would, before
// enrolling it, and its row-scoped read works.
func TestUpAssessesWhatTheSeedLeftUnassessed(t *testing.T) {
	needCurl(t)
	examples := t.TempDir()
	for _, name := range []string{"population.yaml", "birth-registration.yaml", "death-registration.yaml", "social-insurance.yaml", "federation.json"} {
		raw, err := os.ReadFile(filepath.Join("..", "..", "examples", name))
		if err != nil {
			t.Fatal(err)
		}
		if name == "federation.json" {
			var fed map[string]any
			if err := json.Unmarshal(raw, &fed); err != nil {
				t.Fatal(err)
			}
			found := false
			for _, s := range fed["systems"].([]any) {
				if sys := s.(map[string]any); sys["id"] == upLGSPSystem {
					sys["securityLevel"], found = 2, true
					delete(sys, "assessment")
				}
			}
			if !found {
				t.Fatalf("examples/federation.json has no %s", upLGSPSystem)
			}
			raw, _ = json.Marshal(fed)
		}
		if err := os.WriteFile(filepath.Join(examples, name), raw, 0o600); err != nil {
			t.Fatal(err)
		}
	}
	args := slices.Concat([]string{"up", "--data-dir", t.TempDir(), "--seed", filepath.Join(examples, "federation.json")},
		upFlagsOnPortZero, []string{"--citizens", "1000", "--trickle-every", "0"})
	up := startUpRun(t, args)
	if out := up.run(t, "Row-scoped read"); !strings.Contains(out, `"provinceCode":"01"`) {
		t.Errorf("row-scoped read by the portal assessed at start: %s", out)
	}
	if err := up.p.stop(syscall.SIGTERM, 30*time.Second); err != nil {
		t.Fatalf("after SIGTERM: %v, want exit status 0", err)
	}
}

// needCurl skips a test that runs the printed curl commands when curl is
// missing, and fails it under LIENTHONG_REQUIRE_SERVICES=1 (CI installs it).
func needCurl(t *testing.T) {
	t.Helper()
	if _, err := exec.LookPath("curl"); err != nil {
		if os.Getenv("LIENTHONG_REQUIRE_SERVICES") == "1" {
			t.Fatal("curl not installed; .ci/run installs it")
		}
		t.Skip("curl not installed")
	}
}
