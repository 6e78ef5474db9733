package main

import (
	"bytes"
	"context"
	"crypto/ed25519"
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kfake"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/lienthong/lienthong/audit"
	"github.com/lienthong/lienthong/audit/index"
	"github.com/lienthong/lienthong/audit/index/indextest"
)

// The index's records go to a Kafka topic for a SIEM (kfake is the broker:
// the Kafka protocol, in process): once, each record exactly once with its
// gateway and seq; a second run resumes from its state and repeats none;
// the follower, started afresh on a new topic, produces them all and stops
// cleanly on a signal.
func TestAuditExportFollowsIntoKafka(t *testing.T) {
	dir := t.TempDir()
	const gw = "VN:GOV:000.00.00.G01:GW"
	logFile := filepath.Join(dir, "gateway-audit.jsonl")
	key := ed25519.NewKeyFromSeed(bytes.Repeat([]byte{5}, ed25519.SeedSize))
	sink, err := audit.OpenFile(logFile, audit.Options{Gateway: gw, Key: key, CheckpointEvery: 16})
	if err != nil {
		t.Fatal(err)
	}
	base := time.Date(2026, 11, 20, 8, 0, 0, 0, time.UTC)
	const records = 40
	for i := 0; i < records; i++ {
		r := indextest.Outcome(fmt.Sprintf("x-%02d", i), "VN:GOV:000.00.00.G14:BHXH", "VN:GOV:000.00.00.G01:CSDLDC", "", base.Add(time.Duration(i)*time.Second))
		if err := audit.Write(context.Background(), sink, &r); err != nil {
			t.Fatal(err)
		}
	}
	if err := sink.Close(); err != nil {
		t.Fatal(err)
	}
	data := filepath.Join(dir, "cp")
	mustCLI(t, nil, "", "audit", "reindex", "--data-dir", data, logFile)
	env := controlPlane(t, data)
	tok := tokenOf(env)

	kafka, err := kfake.NewCluster(kfake.NumBrokers(1), kfake.AllowAutoTopicCreation())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(kafka.Close)
	brokers := strings.Join(kafka.ListenAddrs(), ",")
	// consume reads a topic until it has want records (or fails after 30s).
	consume := func(topic string, want int) map[string]int {
		cl, err := kgo.NewClient(kgo.SeedBrokers(kafka.ListenAddrs()...), kgo.ConsumeTopics(topic), kgo.ConsumeResetOffset(kgo.NewOffset().AtStart()))
		if err != nil {
			t.Fatal(err)
		}
		defer cl.Close()
		seen := map[string]int{}
		n := 0
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer cancel()
		for n < want {
			fs := cl.PollFetches(ctx)
			if ctx.Err() != nil {
				t.Fatalf("topic %s: %d records after 30s, want %d", topic, n, want)
			}
			fs.EachRecord(func(r *kgo.Record) {
				var x index.Exchange
				if err := json.Unmarshal(r.Value, &x); err != nil || string(r.Key) != x.Gateway || x.Gateway != gw {
					t.Fatalf("record %s: %+v %v", r.Value, x, err)
				}
				h := map[string]string{}
				for _, kv := range r.Headers {
					h[kv.Key] = string(kv.Value)
				}
				if h["lienthong-gateway"] != gw || h["lienthong-seq"] != strconv.FormatUint(x.Seq, 10) {
					t.Fatalf("headers %v of seq %d", h, x.Seq)
				}
				seen[x.ExchangeID]++
				n++
			})
		}
		return seen
	}

	state := filepath.Join(dir, "siem.state")
	once := []string{"audit", "export", "--kafka-brokers", brokers, "--kafka-topic", "audit-siem", "--state", state, "--once"}
	if out := mustCLI(t, env, tok, once...); !strings.Contains(out, fmt.Sprintf("%d records produced", records)) {
		t.Fatalf("first export: %s", out)
	}
	if out := mustCLI(t, env, tok, once...); !strings.Contains(out, "0 records produced") {
		t.Fatalf("the export resumed from its state and still produced: %s", out)
	}
	seen := consume("audit-siem", records)
	if len(seen) != records {
		t.Fatalf("%d distinct exchanges on the topic, want %d", len(seen), records)
	}
	for id, n := range seen {
		if n != 1 {
			t.Fatalf("exchange %s on the topic %d times", id, n)
		}
	}
	if out, err := cli(t, env, tok, "audit", "export", "--kafka-brokers", brokers, "--kafka-topic", "x", "--once"); err == nil || !strings.Contains(out, "--state") {
		t.Fatalf("an export without a state file: %v %s", err, out)
	}
	if out, err := cli(t, env, tok, "audit", "export", "--kafka-brokers", brokers, "--kafka-topic", "x", "--state", state, "--status", "403"); err == nil || !strings.Contains(out, "query flags") {
		t.Fatalf("a filtered Kafka export: %v %s", err, out)
	}

	// The follower, on a new topic with a new state, until a signal.
	cmd := exec.Command(binary, "audit", "export", "--kafka-brokers", brokers, "--kafka-topic", "audit-follow",
		"--state", filepath.Join(dir, "follow.state"), "--poll", "50ms")
	cmd.Env = append(append(os.Environ(), env...), "LIENTHONG_TOKEN="+tok)
	var out bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &out
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = cmd.Process.Kill() })
	if followed := consume("audit-follow", records); len(followed) != records {
		t.Fatalf("the follower produced %d distinct exchanges", len(followed))
	}
	_ = cmd.Process.Signal(os.Interrupt)
	done := make(chan error, 1)
	go func() { done <- cmd.Wait() }()
	select {
	case err := <-done:
		if err != nil {
			t.Fatalf("the follower stopped with %v:\n%s", err, out.String())
		}
	case <-time.After(20 * time.Second):
		t.Fatalf("the follower did not stop on a signal:\n%s", out.String())
	}
}
