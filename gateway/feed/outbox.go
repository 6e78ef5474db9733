package feed

import (
	"context"
	"errors"
	"fmt"

	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/lienthong/lienthong/adapters/postgres"
	"github.com/lienthong/lienthong/gateway/feed/broker"
	"github.com/lienthong/lienthong/gateway/feed/event"
)

// OutboxPublisher moves events from a provider's PostgreSQL outbox to its
// provider topics, checked as the publishing endpoint checks them. An event
// that fails the check cannot be refused to the application that wrote it
// long ago, so it goes to the dataset's dead-letter topic with the reason
// and the outbox moves on.
type OutboxPublisher struct {
	cl       *kgo.Client
	datasets map[string]*Dataset
}

// NewOutboxPublisher returns a publisher for the given datasets (by code).
func NewOutboxPublisher(cfg broker.Config, datasets []*Dataset) (*OutboxPublisher, error) {
	opts, err := cfg.Options()
	if err != nil {
		return nil, err
	}
	cl, err := kgo.NewClient(append(opts, broker.ProducerOptions()...)...)
	if err != nil {
		return nil, err
	}
	p := &OutboxPublisher{cl: cl, datasets: map[string]*Dataset{}}
	for _, d := range datasets {
		p.datasets[d.Code] = d
	}
	return p, nil
}

// Close closes the Kafka client.
func (p *OutboxPublisher) Close() { p.cl.Close() }

// Publish produces rows in order and returns once Kafka acknowledged all
// of them (acks=all, idempotent producer), so the relay may then commit
// its position.
func (p *OutboxPublisher) Publish(ctx context.Context, rows []postgres.OutboxRow) error {
	recs := make([]*kgo.Record, 0, len(rows))
	for _, row := range rows {
		ds, ok := p.datasets[row.Dataset]
		if !ok {
			return fmt.Errorf("outbox row %d: dataset %q is not routed here", row.Position, row.Dataset)
		}
		ev, err := event.Parse(row.Event)
		if err == nil {
			err = ds.Check(ev)
		}
		if err != nil {
			recs = append(recs, &kgo.Record{Topic: broker.DeadLetterTopic(ds.Provider, ds.Code), Value: row.Event,
				Headers: []kgo.RecordHeader{{Key: HeaderReason, Value: []byte("invalid event: " + err.Error())},
					{Key: "lienthong-source", Value: fmt.Appendf(nil, "outbox/%d", row.Position)}}})
			continue
		}
		value, err := ev.Marshal()
		if err != nil {
			return err
		}
		recs = append(recs, &kgo.Record{Topic: broker.PublishTopic(ds.Provider, ds.Code), Key: []byte(ev.Subject), Value: value})
	}
	if err := p.cl.ProduceSync(ctx, recs...).FirstErr(); err != nil {
		return errors.Join(errors.New("outbox: Kafka did not acknowledge the batch"), err)
	}
	return nil
}
