package broker

import (
	"errors"
	"strings"
)

// Topic names. Kafka allows only [a-zA-Z0-9._-] in a topic name, so the
// ':' of a system id becomes '_' (system ids never hold '_' otherwise:
// member codes are digits and dots, system codes letters and digits).
//
//	publish.<provider>.<dataset>            a provider's events, as published
//	deliver.<consumer>.<provider>.<dataset> one consumer's projection of them
//	deadletter.<provider>.<dataset>         events the router could not deliver
//
// The first segment is what the ACLs in deploy/kafka/ grant by prefix: a
// provider writes publish.<its system>., a consumer reads
// deliver.<its system>., and only the router reads publish.* and writes
// deliver.* and deadletter.*.

// PublishTopic is the provider topic of a dataset.
func PublishTopic(provider, dataset string) string {
	return "publish." + topicSystem(provider) + "." + dataset
}

// DeliverTopic is the topic a consumer system reads a dataset's events from.
func DeliverTopic(consumer, provider, dataset string) string {
	return "deliver." + topicSystem(consumer) + "." + topicSystem(provider) + "." + dataset
}

// DeadLetterTopic holds a dataset's events the router could not deliver.
func DeadLetterTopic(provider, dataset string) string {
	return "deadletter." + topicSystem(provider) + "." + dataset
}

// ParsePublishTopic returns the provider and dataset of a provider topic.
func ParsePublishTopic(topic string) (provider, dataset string, err error) {
	rest, ok := strings.CutPrefix(topic, "publish.")
	if !ok {
		return "", "", errors.New("not a publish topic")
	}
	i := strings.LastIndexByte(rest, '.')
	if i <= 0 || i == len(rest)-1 {
		return "", "", errors.New("not a publish topic")
	}
	return strings.ReplaceAll(rest[:i], "_", ":"), rest[i+1:], nil
}

func topicSystem(id string) string { return strings.ReplaceAll(id, ":", "_") }
