// Package broker connects the feed components to Kafka: the client options
// for a real cluster (seed brokers, TLS, SASL/SCRAM) and, for `make run` and
// tests, an embedded Kafka-protocol broker (franz-go's kfake) on a loopback
// port that keeps its topics and offsets in a data directory. Both are
// reached the same way, through Config.Options, so no code path differs
// between a laptop and a cluster.
//
// It also names the topics (see topics.go), so every component and the
// deploy/kafka/ ACLs agree on them.
package broker
