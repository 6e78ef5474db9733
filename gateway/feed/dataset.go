package feed

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"

	"github.com/lienthong/lienthong/catalog"
	"github.com/lienthong/lienthong/gateway/exchange"
	"github.com/lienthong/lienthong/gateway/feed/event"
	"github.com/lienthong/lienthong/gateway/projection"
)

// Dataset is what publishing and routing check an event against: the
// dataset's declared event types and its record schema, validated by the
// same validator the gateway uses for query answers.
type Dataset struct {
	Provider string
	Code     string
	types    map[string]bool
	schema   *projection.Validator
	// core is the dataset as the exchange core reads it (a router alone
	// builds its snapshot from it).
	core *exchange.Dataset
}

// NewDataset reads a dataset's OpenAPI document: its record schema
// (info.x-record-schema) and declared event types (info.x-events).
func NewDataset(ctx context.Context, provider string, doc []byte) (*Dataset, error) {
	d, err := catalog.LoadDocument(ctx, doc)
	if err != nil {
		return nil, fmt.Errorf("feed: dataset of %s: %w", provider, err)
	}
	if d.Code == "" || d.RecordSchema == "" {
		return nil, fmt.Errorf("feed: dataset of %s: the document names no x-dataset-code or x-record-schema", provider)
	}
	types, err := catalog.EventTypes(doc)
	if err != nil {
		return nil, fmt.Errorf("feed: dataset %s/%s: %w", provider, d.Code, err)
	}
	v, err := projection.NewValidator(doc, d.RecordSchema)
	if err != nil {
		return nil, fmt.Errorf("feed: dataset %s/%s: %w", provider, d.Code, err)
	}
	schema, err := projection.LoadSchema(ctx, doc, d.RecordSchema)
	if err != nil {
		return nil, fmt.Errorf("feed: dataset %s/%s: %w", provider, d.Code, err)
	}
	cat := &catalog.Dataset{System: provider, Code: d.Code, RecordSchema: d.RecordSchema, Fields: d.Fields, Document: doc}
	ds := &Dataset{Provider: provider, Code: d.Code, types: map[string]bool{}, schema: v,
		core: &exchange.Dataset{Catalog: cat, Validator: v, Partial: v, Schema: schema}}
	for _, t := range types {
		ds.types[t] = true
	}
	return ds, nil
}

// Declares reports whether the dataset publishes events of type t.
func (d *Dataset) Declares(t string) bool { return d.types[t] }

// CheckEnvelope refuses an event of another source or of a type the
// dataset does not declare, as an *event.Error.
func (d *Dataset) CheckEnvelope(ev *event.Event) error {
	if ev.Source != d.Provider {
		return &event.Error{Pointer: "/source", Reason: "must be the provider system " + d.Provider}
	}
	if !d.types[ev.Type] {
		return &event.Error{Pointer: "/type", Reason: "the dataset " + d.Code + " declares no such event type (info.x-events)"}
	}
	return nil
}

// Check refuses an event the dataset does not publish: another source, an
// undeclared type, or data that does not match the record schema. The
// error is an *event.Error whose pointer is into the event (data problems
// under /data); it never quotes a value.
func (d *Dataset) Check(ev *event.Event) error {
	if err := d.CheckEnvelope(ev); err != nil {
		return err
	}
	dec := json.NewDecoder(bytes.NewReader(ev.Data))
	dec.UseNumber()
	var rec any
	if err := dec.Decode(&rec); err != nil {
		return &event.Error{Pointer: "/data", Reason: "is not valid JSON"}
	}
	if err := d.schema.Validate(rec); err != nil {
		var re *projection.RecordError
		if errors.As(err, &re) && len(re.Problems) > 0 {
			p := re.Problems[0]
			reason := "does not match the record schema"
			if p.Keyword != "" {
				reason += " (" + p.Keyword + ")"
			}
			if n := len(re.Problems) + re.More - 1; n > 0 {
				reason += fmt.Sprintf("; %d more problem(s)", n)
			}
			return &event.Error{Pointer: "/data" + p.Pointer, Reason: reason}
		}
		return &event.Error{Pointer: "/data", Reason: "does not match the record schema"}
	}
	return nil
}
