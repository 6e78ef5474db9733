package broker

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"net"
	"os"
	"strings"
	"time"

	"github.com/twmb/franz-go/pkg/kgo"
	"github.com/twmb/franz-go/pkg/sasl/scram"
)

// Config says how to reach Kafka. The same options serve the embedded
// broker (Brokers is then its address) and a real cluster.
type Config struct {
	// Brokers are seed host:port addresses (--kafka-brokers).
	Brokers []string `json:"brokers"`
	// TLS, when set, encrypts and (with a client certificate) authenticates
	// the connection: the certificate's subject is the Kafka principal the
	// ACLs name.
	TLS *TLSConfig `json:"tls,omitempty"`
	// SASL, when set, authenticates with SCRAM (over TLS in production).
	SASL *SASLConfig `json:"sasl,omitempty"`
}

// TLSConfig holds PEM file paths.
type TLSConfig struct {
	CAFile   string `json:"caFile"`
	CertFile string `json:"certFile,omitempty"`
	KeyFile  string `json:"keyFile,omitempty"`
}

// SASLConfig is a SCRAM user; the password is read from a file so it never
// sits in the configuration or a command line.
type SASLConfig struct {
	// Mechanism is SCRAM-SHA-256 or SCRAM-SHA-512.
	Mechanism    string `json:"mechanism"`
	User         string `json:"user"`
	PasswordFile string `json:"passwordFile"`
}

// Options turns the configuration into franz-go client options.
func (c Config) Options() ([]kgo.Opt, error) {
	if len(c.Brokers) == 0 {
		return nil, errors.New("kafka: no brokers configured")
	}
	opts := []kgo.Opt{kgo.SeedBrokers(c.Brokers...)}
	if c.TLS != nil {
		tc, err := c.TLS.config()
		if err != nil {
			return nil, err
		}
		dialer := &tls.Dialer{NetDialer: &net.Dialer{Timeout: 10 * time.Second}, Config: tc}
		opts = append(opts, kgo.Dialer(func(ctx context.Context, network, host string) (net.Conn, error) {
			return dialer.DialContext(ctx, network, host)
		}))
	}
	if c.SASL != nil {
		pw, err := os.ReadFile(c.SASL.PasswordFile)
		if err != nil {
			return nil, fmt.Errorf("kafka: sasl password: %w", err)
		}
		auth := scram.Auth{User: c.SASL.User, Pass: strings.TrimSpace(string(pw))}
		switch strings.ToUpper(c.SASL.Mechanism) {
		case "SCRAM-SHA-256":
			opts = append(opts, kgo.SASL(auth.AsSha256Mechanism()))
		case "SCRAM-SHA-512":
			opts = append(opts, kgo.SASL(auth.AsSha512Mechanism()))
		default:
			return nil, fmt.Errorf("kafka: sasl mechanism %q: expected SCRAM-SHA-256 or SCRAM-SHA-512", c.SASL.Mechanism)
		}
	}
	return opts, nil
}

func (t *TLSConfig) config() (*tls.Config, error) {
	tc := &tls.Config{MinVersion: tls.VersionTLS12}
	if t.CAFile != "" {
		pemBytes, err := os.ReadFile(t.CAFile)
		if err != nil {
			return nil, fmt.Errorf("kafka: tls ca: %w", err)
		}
		pool := x509.NewCertPool()
		if !pool.AppendCertsFromPEM(pemBytes) {
			return nil, fmt.Errorf("kafka: tls ca: %s holds no PEM certificate", t.CAFile)
		}
		tc.RootCAs = pool
	}
	if t.CertFile != "" || t.KeyFile != "" {
		cert, err := tls.LoadX509KeyPair(t.CertFile, t.KeyFile)
		if err != nil {
			return nil, fmt.Errorf("kafka: tls client certificate: %w", err)
		}
		tc.Certificates = []tls.Certificate{cert}
	}
	return tc, nil
}

// ProducerOptions are the settings every producer of events uses: acks from
// all in-sync replicas and the idempotent producer (franz-go's default,
// stated here so no one turns it off), so an acknowledged event is durable
// and a retry never writes it twice.
func ProducerOptions() []kgo.Opt {
	return []kgo.Opt{
		kgo.RequiredAcks(kgo.AllISRAcks()),
		kgo.ProducerLinger(2 * time.Millisecond),
		kgo.RecordPartitioner(kgo.StickyKeyPartitioner(nil)),
		kgo.AllowAutoTopicCreation(),
	}
}
