package broker

import (
	"context"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kfake"
	"github.com/twmb/franz-go/pkg/kgo"
	"github.com/twmb/franz-go/pkg/kmsg"
)

// TestConsumersAreKeptToTheirOwnTopics sets up, on a Kafka-protocol broker
// with SCRAM and ACLs, the principals of deploy/kafka/: the router writes
// every deliver. topic, each consumer reads only deliver.<itself>. — and
// connects through Config's SASL options, the path a real cluster uses.
func TestConsumersAreKeptToTheirOwnTopics(t *testing.T) {
	const (
		prov  = "VN:GOV:000.00.00.G05:HTTTHT"
		bhxh  = "VN:GOV:000.00.00.G14:CSDLBH"
		other = "VN:GOV:000.00.00.H26:DVCHN"
		mech  = "SCRAM-SHA-512"
	)
	readOwn := func(system string) []kfake.ACL {
		prefix := "deliver." + topicSystem(system) + "."
		return []kfake.ACL{
			{Resource: kmsg.ACLResourceTypeTopic, Name: prefix, Pattern: kmsg.ACLResourcePatternTypePrefixed, Operation: kmsg.ACLOperationRead, Allow: true},
			{Resource: kmsg.ACLResourceTypeTopic, Name: prefix, Pattern: kmsg.ACLResourcePatternTypePrefixed, Operation: kmsg.ACLOperationDescribe, Allow: true},
			{Resource: kmsg.ACLResourceTypeGroup, Name: topicSystem(system) + ".", Pattern: kmsg.ACLResourcePatternTypePrefixed, Operation: kmsg.ACLOperationRead, Allow: true},
		}
	}
	c, err := kfake.NewCluster(kfake.NumBrokers(1), kfake.EnableSASL(), kfake.EnableACLs(),
		kfake.Superuser(mech, "admin", "admin-secret"),
		kfake.User(mech, "router-G05", "router-secret",
			kfake.ACL{Resource: kmsg.ACLResourceTypeTopic, Name: "deliver.", Pattern: kmsg.ACLResourcePatternTypePrefixed, Operation: kmsg.ACLOperationWrite, Allow: true},
			kfake.ACL{Resource: kmsg.ACLResourceTypeTopic, Name: "deliver.", Pattern: kmsg.ACLResourcePatternTypePrefixed, Operation: kmsg.ACLOperationDescribe, Allow: true},
			kfake.ACL{Resource: kmsg.ACLResourceTypeCluster, Name: "kafka-cluster", Pattern: kmsg.ACLResourcePatternTypeLiteral, Operation: kmsg.ACLOperationIdempotentWrite, Allow: true}),
		kfake.User(mech, topicSystem(bhxh), "bhxh-secret", readOwn(bhxh)...),
		kfake.User(mech, topicSystem(other), "other-secret", readOwn(other)...),
		kfake.SeedTopics(1, DeliverTopic(bhxh, prov, "birth-registration"), DeliverTopic(other, prov, "birth-registration")),
	)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	dir := t.TempDir()
	as := func(user, pass string, more ...kgo.Opt) *kgo.Client {
		t.Helper()
		pw := filepath.Join(dir, user+".password")
		if err := os.WriteFile(pw, []byte(pass+"\n"), 0o600); err != nil {
			t.Fatal(err)
		}
		opts, err := Config{Brokers: c.ListenAddrs(), SASL: &SASLConfig{Mechanism: mech, User: user, PasswordFile: pw}}.Options()
		if err != nil {
			t.Fatal(err)
		}
		cl, err := kgo.NewClient(append(append(opts, kgo.RequiredAcks(kgo.AllISRAcks())), more...)...)
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(cl.Close)
		return cl
	}
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	own, foreign := DeliverTopic(bhxh, prov, "birth-registration"), DeliverTopic(other, prov, "birth-registration")
	router := as("router-G05", "router-secret")
	for _, topic := range []string{own, foreign} {
		if err := router.ProduceSync(ctx, &kgo.Record{Topic: topic, Value: []byte(`{"id":"e1"}`)}).FirstErr(); err != nil {
			t.Fatalf("the router writes %s: %v", topic, err)
		}
	}
	read := func(cl *kgo.Client) (int, error) {
		pctx, cancel := context.WithTimeout(ctx, 3*time.Second)
		defer cancel()
		fs := cl.PollFetches(pctx)
		var ferr error
		fs.EachError(func(_ string, _ int32, err error) {
			if err != context.DeadlineExceeded {
				ferr = err
			}
		})
		return len(fs.Records()), ferr
	}
	if n, err := read(as(topicSystem(bhxh), "bhxh-secret", kgo.ConsumeTopics(own))); n != 1 || err != nil {
		t.Fatalf("Social Insurance reading its own topic: %d records, %v", n, err)
	}
	if n, _ := read(as(topicSystem(bhxh), "bhxh-secret", kgo.ConsumeTopics(foreign))); n != 0 {
		t.Fatalf("Social Insurance read %d records of another consumer's topic", n)
	}
	if err := as(topicSystem(bhxh), "bhxh-secret").ProduceSync(ctx, &kgo.Record{Topic: own, Value: []byte("forged")}).FirstErr(); err == nil {
		t.Fatal("a consumer wrote into its own delivery topic")
	}
	if n, _ := read(as(topicSystem(bhxh), "wrong-password", kgo.ConsumeTopics(own))); n != 0 {
		t.Fatal("a wrong password read records")
	}
}
