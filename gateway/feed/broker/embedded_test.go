package broker

import (
	"context"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kgo"
)

// TestEmbeddedKeepsRecordsAndOffsetsAcrossRestarts restarts the embedded
// broker on its data directory: an acknowledged record and a committed
// group offset must both still be there.
func TestEmbeddedKeepsRecordsAndOffsetsAcrossRestarts(t *testing.T) {
	dir := t.TempDir()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	b, err := StartEmbedded(EmbeddedConfig{Listen: "127.0.0.1:0", DataDir: dir, Partitions: 1})
	if err != nil {
		t.Fatal(err)
	}
	topic := PublishTopic("VN:GOV:000.00.00.G05:HTTTHT", "birth-registration")
	cl := client(t, Config{Brokers: []string{b.Addr()}}, kgo.ConsumerGroup("g"), kgo.ConsumeTopics(topic), kgo.DisableAutoCommit())
	for _, v := range []string{"one", "two"} {
		if err := cl.ProduceSync(ctx, &kgo.Record{Topic: topic, Key: []byte("k"), Value: []byte(v)}).FirstErr(); err != nil {
			t.Fatal(err)
		}
	}
	first := poll(ctx, t, cl, 1)
	if err := cl.CommitRecords(ctx, first...); err != nil {
		t.Fatal(err)
	}
	cl.Close()
	b.Close()

	b, err = StartEmbedded(EmbeddedConfig{Listen: "127.0.0.1:0", DataDir: dir, Partitions: 1})
	if err != nil {
		t.Fatal(err)
	}
	defer b.Close()
	cl = client(t, Config{Brokers: []string{b.Addr()}}, kgo.ConsumerGroup("g"), kgo.ConsumeTopics(topic), kgo.DisableAutoCommit())
	defer cl.Close()
	rest := poll(ctx, t, cl, 1)
	if string(rest[0].Value) != "two" {
		t.Fatalf("after the restart the group resumed at %q, want the record after its committed offset", rest[0].Value)
	}
}

func TestEmbeddedRefusesNonLoopback(t *testing.T) {
	for _, listen := range []string{"0.0.0.0:0", "10.0.0.1:9092", "example.org:9092", "127.0.0.1:x"} {
		if _, err := StartEmbedded(EmbeddedConfig{Listen: listen, DataDir: t.TempDir()}); err == nil {
			t.Errorf("%s accepted", listen)
		}
	}
	if _, err := StartEmbedded(EmbeddedConfig{Listen: "127.0.0.1:0"}); err == nil {
		t.Error("started without a data directory")
	}
}

func TestTopicNames(t *testing.T) {
	p, d, err := ParsePublishTopic(PublishTopic("VN:GOV:000.00.00.G05:HTTTHT", "birth-registration"))
	if err != nil || p != "VN:GOV:000.00.00.G05:HTTTHT" || d != "birth-registration" {
		t.Fatalf("%s %s %v", p, d, err)
	}
	if got := DeliverTopic("VN:GOV:000.00.00.G14:CSDLBH", "VN:GOV:000.00.00.G05:HTTTHT", "birth-registration"); got != "deliver.VN_GOV_000.00.00.G14_CSDLBH.VN_GOV_000.00.00.G05_HTTTHT.birth-registration" {
		t.Fatal(got)
	}
	for _, bad := range []string{"deliver.x.y", "publish.", "publish.x", "publish.x."} {
		if _, _, err := ParsePublishTopic(bad); err == nil {
			t.Errorf("%s parsed", bad)
		}
	}
}

func client(t *testing.T, c Config, more ...kgo.Opt) *kgo.Client {
	t.Helper()
	opts, err := c.Options()
	if err != nil {
		t.Fatal(err)
	}
	cl, err := kgo.NewClient(append(append(opts, ProducerOptions()...), more...)...)
	if err != nil {
		t.Fatal(err)
	}
	return cl
}

func poll(ctx context.Context, t *testing.T, cl *kgo.Client, n int) []*kgo.Record {
	t.Helper()
	var out []*kgo.Record
	for len(out) < n {
		fs := cl.PollRecords(ctx, n-len(out))
		if err := ctx.Err(); err != nil {
			t.Fatalf("waiting for records: %v", err)
		}
		fs.EachError(func(_ string, _ int32, err error) { t.Logf("fetch: %v", err) })
		out = append(out, fs.Records()...)
	}
	return out
}
