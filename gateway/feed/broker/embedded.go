package broker

import (
	"fmt"
	"net"
	"os"
	"strconv"

	"github.com/twmb/franz-go/pkg/kfake"
)

// EmbeddedConfig configures the embedded broker.
type EmbeddedConfig struct {
	// Listen is a loopback host:port; port 0 picks a free one.
	Listen string `json:"listen"`
	// DataDir keeps topics, committed offsets and transaction state, so a
	// restart of the broker loses nothing that was acknowledged.
	DataDir string `json:"dataDir"`
	// Partitions of topics created on demand (default 3).
	Partitions int `json:"partitions,omitempty"`
	// SyncWrites fsyncs every batch before it is acknowledged (slower; the
	// default relies on the page cache, as Kafka itself does).
	SyncWrites bool `json:"syncWrites,omitempty"`
}

// Embedded is an in-process Kafka-protocol broker. Any Kafka client (kcat,
// the Java client, franz-go) can reach it on its address.
type Embedded struct {
	c *kfake.Cluster
}

// StartEmbedded starts the embedded broker. It refuses a non-loopback
// listen address: kfake has no authentication configured here, so it must
// not be reachable from another machine.
func StartEmbedded(cfg EmbeddedConfig) (*Embedded, error) {
	host, portText, err := net.SplitHostPort(cfg.Listen)
	if err != nil {
		return nil, fmt.Errorf("embedded broker: listen %q: %w", cfg.Listen, err)
	}
	if ip := net.ParseIP(host); host != "localhost" && (ip == nil || !ip.IsLoopback()) {
		return nil, fmt.Errorf("embedded broker: listen %q: only a loopback address is allowed", cfg.Listen)
	}
	port, err := strconv.Atoi(portText)
	if err != nil || port < 0 || port > 65535 {
		return nil, fmt.Errorf("embedded broker: listen %q: bad port", cfg.Listen)
	}
	if cfg.DataDir == "" {
		return nil, fmt.Errorf("embedded broker: a data directory is required, or topics and offsets would not survive a restart")
	}
	if err := os.MkdirAll(cfg.DataDir, 0o700); err != nil {
		return nil, fmt.Errorf("embedded broker: data dir: %w", err)
	}
	partitions := cfg.Partitions
	if partitions <= 0 {
		partitions = 3
	}
	opts := []kfake.Opt{
		kfake.NumBrokers(1),
		kfake.Ports(port),
		kfake.DataDir(cfg.DataDir),
		kfake.AllowAutoTopicCreation(),
		kfake.DefaultNumPartitions(partitions),
		// A router restarted after a crash rejoins its group at once
		// (static membership); a short minimum lets tests and small
		// deployments notice a dead member quickly too.
		kfake.GroupMinSessionTimeout(500 * 1e6),
	}
	if cfg.SyncWrites {
		opts = append(opts, kfake.SyncWrites())
	}
	c, err := kfake.NewCluster(opts...)
	if err != nil {
		return nil, fmt.Errorf("embedded broker: %w", err)
	}
	return &Embedded{c: c}, nil
}

// Addr is the broker's host:port.
func (e *Embedded) Addr() string { return e.c.ListenAddrs()[0] }

// Close stops the broker, flushing its state to the data directory.
func (e *Embedded) Close() { e.c.Close() }
