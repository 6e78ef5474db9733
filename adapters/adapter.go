// Package adapters connects provider gateways to provider backends. An
// adapter fetches records of one dataset; the gateway has already decided
// which fields may leave and projects and masks the answer itself, but an
// adapter that can (PostgreSQL) fetches only the granted columns and applies
// the row scope at the source, so ungranted data is never even read.
package adapters

import (
	"context"
	"errors"
	"io"
	"net/url"

	"github.com/lienthong/lienthong/catalog"
)

// Errors adapters wrap so the gateway can answer with the right status.
var (
	// ErrNotFound means the backend has no such record (404).
	ErrNotFound = errors.New("record not found")
	// ErrBackend means the backend failed or answered nonsense (502).
	ErrBackend = errors.New("backend error")
	// ErrTimeout means the backend did not answer in time (504).
	ErrTimeout = errors.New("backend timeout")
	// ErrTooLarge means the backend's answer exceeds the size limit (502).
	ErrTooLarge = errors.New("backend response too large")
)

// Request is one fetch from a backend.
type Request struct {
	// Dataset is the published dataset (with its Document).
	Dataset *catalog.Dataset
	// Path is what follows /r/{provider}/{dataset}/ in the consumer's URL,
	// e.g. "citizens/001099012345"; adapters map it to the backend.
	Path string
	// Query holds the consumer's query parameters, minus the gateway's own
	// (fields=); adapters pass through only what the dataset documents.
	Query url.Values
	// Fields are the dotted paths the decision allows; adapters may fetch
	// only these (they must not fetch fewer).
	Fields []string
	// RowScope limits the records, when the grant has one.
	RowScope *catalog.RowScope
}

// Response is a backend's answer: a JSON object (one record) or a JSON array
// of records. The gateway streams it through projection, so Body is read once.
type Response struct {
	Body io.ReadCloser
	// Scoped is true when the adapter applied Request.RowScope itself; when
	// false the gateway filters records by the row scope.
	Scoped bool
	// Partial is true when records hold only (some of) Request.Fields, as
	// when a database adapter selects granted columns only; the gateway then
	// checks types and formats but not the schema's required members.
	Partial bool
}

// Adapter fetches records of a dataset from a provider backend. It must be
// safe for concurrent use.
type Adapter interface {
	Fetch(ctx context.Context, req Request) (*Response, error)
}
