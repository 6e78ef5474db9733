package feed

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"os"
	"os/exec"
	"strings"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/lienthong/lienthong/gateway/feed/broker"
)

// TestKcatReadsOnlyProjectedEvents has Debian's kcat (librdkafka, not
// franz-go) list the embedded broker's metadata and consume a consumer
// topic: it must see the router's projected events and nothing else.
func TestKcatReadsOnlyProjectedEvents(t *testing.T) {
	kcat, err := exec.LookPath("kcat")
	if err != nil {
		if os.Getenv("LIENTHONG_REQUIRE_SERVICES") == "1" {
			t.Fatal("kcat is required (LIENTHONG_REQUIRE_SERVICES=1): apt-get install kcat")
		}
		t.Skip("kcat not installed (apt-get install kcat); skipping the interop test")
	}
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	b, err := broker.StartEmbedded(broker.EmbeddedConfig{Listen: "127.0.0.1:0", DataDir: t.TempDir(), Partitions: 1})
	if err != nil {
		t.Fatal(err)
	}
	defer b.Close()
	w := newWorld(t, []string{b.Addr()})
	cfg, err := LoadConfig(w.config)
	if err != nil {
		t.Fatal(err)
	}
	rctx, stop := context.WithCancel(ctx)
	done := make(chan struct{})
	go func() { _ = Run(rctx, cfg, slog.New(slog.NewTextHandler(io.Discard, nil)), RunOptions{}); close(done) }()
	defer func() { stop(); <-done }()
	prod := newClient(t, b.Addr())
	defer prod.Close()
	const n = 20
	for i := 0; i < n; i++ {
		ev := fmt.Sprintf(`{"specversion":"1.0","id":"k-%d","source":%q,"type":%q,"subject":"KS-%d","time":"2026-03-01T08:00:00Z","data":{"registrationId":"KS-%d","seq":1,"province":"01","child":{"fullName":"Nguyễn Văn An","personalId":"001225004321","ethnicity":"01"}}}`, i, provider, birthType, i, i)
		if err := prod.ProduceSync(ctx, &kgo.Record{Topic: broker.PublishTopic(provider, "vital-events"), Key: []byte(fmt.Sprint("KS-", i)), Value: []byte(ev)}).FirstErr(); err != nil {
			t.Fatal(err)
		}
	}
	topic := broker.DeliverTopic(consumerA, provider, "vital-events")
	for countTopic(ctx, t, b.Addr(), topic) < n && ctx.Err() == nil {
		time.Sleep(200 * time.Millisecond)
	}
	meta, err := exec.CommandContext(ctx, kcat, "-b", b.Addr(), "-L").CombinedOutput()
	if err != nil || !strings.Contains(string(meta), topic) {
		t.Fatalf("kcat -L: %v\n%s", err, meta)
	}
	out, err := exec.CommandContext(ctx, kcat, "-b", b.Addr(), "-C", "-t", topic, "-o", "beginning", "-e", "-q",
		"-X", "isolation.level=read_committed", "-f", "%k %s\n").CombinedOutput()
	if err != nil {
		t.Fatalf("kcat -C: %v\n%s", err, out)
	}
	lines := strings.Split(strings.TrimSpace(string(out)), "\n")
	if len(lines) != n {
		t.Fatalf("kcat read %d records, want %d:\n%s", len(lines), n, out)
	}
	for _, l := range lines {
		if !strings.Contains(l, `"fullName":"Nguyễn Văn An"`) || strings.Contains(l, "personalId") || strings.Contains(l, "ethnicity") || strings.Contains(l, "registrationId") {
			t.Fatalf("kcat saw more or less than A's grant: %s", l)
		}
	}
}
