package service

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"

	"github.com/lienthong/lienthong/catalog"
	"github.com/lienthong/lienthong/controlplane/auth"
)

// PublishInput is what a provider submits to publish a dataset version.
type PublishInput struct {
	System string
	// Code may be empty when the document names it in info.x-dataset-code.
	Code     string
	Document []byte
	// MinConsumerLevel overrides the document's level when non-zero.
	MinConsumerLevel int
}

// PublishResult says what publishing did.
type PublishResult struct {
	Dataset catalog.Dataset `json:"dataset"`
	// Created is false when the document was identical to the latest version
	// and no new version was made.
	Created bool                  `json:"created"`
	Changes []catalog.FieldChange `json:"changes"`
}

// Publish validates a dataset document and stores it as a new version of the
// dataset. Republishing an identical document is a no-op, so publishing is
// safe to retry.
func (s *Service) Publish(ctx context.Context, p auth.Principal, in PublishInput) (*PublishResult, error) {
	id, err := catalog.ParseSystemID(in.System)
	if err != nil {
		return nil, catalog.Invalid("dataset", "/system", "%v", err)
	}
	if err := p.RequireMemberAdmin("publish a dataset", id.Member); err != nil {
		return nil, err
	}
	doc, err := catalog.LoadDocument(ctx, in.Document)
	if err != nil {
		return nil, err
	}
	code := in.Code
	switch {
	case code == "" && doc.Code == "":
		return nil, catalog.Invalid("dataset", "/code", "a dataset code is required (or set info.x-dataset-code in the document)")
	case code == "":
		code = doc.Code
	case doc.Code != "" && doc.Code != code:
		return nil, catalog.Invalid("dataset", "/code", "code %q differs from info.x-dataset-code %q in the document", code, doc.Code)
	}
	if !catalog.ValidDatasetCode(code) {
		return nil, catalog.Invalid("dataset", "/code", "code %q must be 2-64 lower-case letters, digits or dashes, like population", code)
	}
	level := doc.MinConsumerLevel()
	if in.MinConsumerLevel != 0 {
		if in.MinConsumerLevel < catalog.MinSecurityLevel || in.MinConsumerLevel > catalog.MaxSecurityLevel {
			return nil, catalog.Invalid("dataset", "/minConsumerLevel", "level %d must be between 1 and 5", in.MinConsumerLevel)
		}
		level = in.MinConsumerLevel
	}
	sum := sha256.Sum256(in.Document)
	d := catalog.Dataset{
		System: in.System, Code: code, Title: doc.Title, Description: doc.Description,
		RecordSchema: doc.RecordSchema, MinConsumerLevel: level, Digest: hex.EncodeToString(sum[:]),
		Fields: doc.Fields, Document: in.Document, PublishedAt: s.Now(), PublishedBy: p.Actor(),
	}
	res := &PublishResult{Changes: []catalog.FieldChange{}}
	err = s.store.Update(ctx, func(tx catalog.Tx) error {
		if _, err := tx.GetSystem(ctx, in.System); err != nil {
			if errors.Is(err, catalog.ErrNotFound) {
				return catalog.Invalid("dataset", "/system", "system %s is not registered", in.System)
			}
			return err
		}
		prev, err := tx.GetDataset(ctx, in.System, code, 0)
		switch {
		case errors.Is(err, catalog.ErrNotFound):
			d.Version = 1
		case err != nil:
			return err
		case prev.Digest == d.Digest && prev.MinConsumerLevel == d.MinConsumerLevel:
			res.Dataset = *prev
			return nil
		default:
			d.Version = prev.Version + 1
			res.Changes = catalog.DiffFields(prev.Fields, d.Fields)
		}
		if err := tx.InsertDataset(ctx, &d); err != nil {
			return err
		}
		res.Dataset, res.Created = d, true
		summary := struct {
			Version          int                   `json:"version"`
			Digest           string                `json:"digest"`
			MinConsumerLevel int                   `json:"minConsumerLevel"`
			Fields           int                   `json:"fields"`
			Changes          []catalog.FieldChange `json:"changes"`
		}{d.Version, d.Digest, d.MinConsumerLevel, len(d.Fields), res.Changes}
		return s.record(ctx, tx, p, change{action: "dataset.publish", object: d.Ref(), member: id.Member, after: summary})
	})
	if err != nil {
		return nil, fmt.Errorf("publish dataset %s/%s: %w", in.System, code, err)
	}
	return res, nil
}

// Dataset returns one version (0: the latest) of a dataset.
func (s *Service) Dataset(ctx context.Context, system, code string, version int) (*catalog.Dataset, error) {
	d, err := s.store.GetDataset(ctx, system, code, version)
	if err != nil {
		return nil, fmt.Errorf("dataset %s/%s: %w", system, code, err)
	}
	return d, nil
}

// Datasets lists the latest version of each dataset; the catalog is
// discoverable by every authenticated caller.
func (s *Service) Datasets(ctx context.Context, f catalog.DatasetFilter) ([]catalog.Dataset, error) {
	return s.store.ListDatasets(ctx, f)
}

// DatasetVersions lists every version of a dataset.
func (s *Service) DatasetVersions(ctx context.Context, system, code string) ([]catalog.Dataset, error) {
	list, err := s.store.ListDatasetVersions(ctx, system, code)
	if err != nil {
		return nil, err
	}
	if len(list) == 0 {
		return nil, fmt.Errorf("dataset %s/%s: %w", system, code, catalog.ErrNotFound)
	}
	return list, nil
}
