package projection

import (
	"fmt"
	"io"
	"sync"
)

// Records is a backend answer (or an event) decoded once, to be projected
// for several decisions: a feed router delivering one event to five
// subscribers decodes and validates it once and projects it five times.
// Unlike Project, it holds the whole answer in memory, so it is meant for
// single records and short answers. It is immutable after Decode and safe
// for concurrent use by any number of ProjectRecords calls.
type Records struct {
	recs  []value
	array bool
	// plain holds each record in encoding/json's form for row filters,
	// built once, on first need (or by Decode when it validates).
	plain     []any
	plainOnce sync.Once
	bytesIn   int64
}

// Decode reads one backend answer — a record object or an array of record
// objects — with the same checks as Project (duplicate keys, depth, size,
// opts.Validator and opts.Validate on each record), for projection by ProjectRecords.
// opts.Keep is ignored: a row scope belongs to a decision, so it is given
// to ProjectRecords.
func Decode(src io.Reader, opts Options) (*Records, error) {
	if opts.MaxDepth <= 0 {
		opts.MaxDepth = DefaultMaxDepth
	}
	if opts.MaxBytes == 0 {
		opts.MaxBytes = DefaultMaxBytes
	}
	// A pooled decoder for its read buffer and interned keys, with an arena
	// of its own: the arena holds the records for as long as the caller
	// keeps them. Decoded values never point into the read buffer.
	pr := workPool.Get().(*projector)
	d := &pr.dec
	pooled := d.arena
	d.arena = arena{}
	defer func() {
		d.arena = pooled
		pr.release()
	}()
	d.init(src, opts.MaxDepth, opts.MaxBytes)
	c, ok := d.skip()
	switch {
	case !ok && d.rerr == nil:
		return nil, fmt.Errorf("%w: the response is empty", ErrInvalidJSON)
	case !ok:
		return nil, d.truncated()
	case c != '{' && c != '[' && startsValue(c):
		return nil, fmt.Errorf("%w: the response is neither a record object nor an array of them", ErrInvalidRecord)
	}
	v, err := d.value(1)
	if err != nil {
		return nil, err
	}
	if err := d.end(); err != nil {
		return nil, err
	}
	r := &Records{bytesIn: d.src.n}
	if v.kind == kindObject {
		r.recs = []value{v}
	} else {
		r.array = true
		for i := range v.items {
			if v.items[i].kind != kindObject {
				return nil, fmt.Errorf("%w: item %d of the response array is not an object", ErrInvalidRecord, i)
			}
		}
		r.recs = v.items
	}
	if v := opts.Validator; v != nil {
		for i := range r.recs {
			if err := v.validateValue(&r.recs[i]); err != nil {
				return nil, fmt.Errorf("%w: record %d: %w", ErrInvalidRecord, i, err)
			}
		}
	}
	if opts.Validate != nil {
		for i, p := range r.records() {
			if err := opts.Validate(p); err != nil {
				return nil, fmt.Errorf("%w: record %d: %w", ErrInvalidRecord, i, err)
			}
		}
	}
	return r, nil
}

// Len is the number of records.
func (r *Records) Len() int { return len(r.recs) }

// records returns the records in encoding/json's form, built once.
func (r *Records) records() []any {
	r.plainOnce.Do(func() {
		r.plain = make([]any, len(r.recs))
		for i := range r.recs {
			r.plain[i] = toAny(&r.recs[i])
		}
	})
	return r.plain
}

// ProjectRecords writes what the plan allows of decoded records to dst, as
// Project would for the answer they were decoded from: an object for an
// object, an array for an array. keep, if set, is the decision's row scope
// (as Options.Keep). On error, dst may hold part of the output, which the
// caller must discard, as with Project.
func (p *Plan) ProjectRecords(dst io.Writer, r *Records, keep func(record any) bool) (Stats, error) {
	pr := workPool.Get().(*projector)
	defer pr.release()
	pr.plan, pr.dst, pr.stats = p, dst, Stats{}
	pr.stats.BytesIn = r.bytesIn
	var plain []any
	if keep != nil {
		plain = r.records()
	}
	written := false
	for i := range r.recs {
		if keep != nil && !keep(plain[i]) {
			pr.stats.Filtered++
			continue
		}
		pr.arena.reset()
		var sep byte
		if r.array {
			sep = ','
			if !written {
				sep = '['
			}
		}
		if err := pr.emit(&r.recs[i], i, sep); err != nil {
			return pr.stats, err
		}
		written = true
		if err := pr.write(pr.out); err != nil {
			return pr.stats, err
		}
	}
	switch {
	case !r.array:
		return pr.stats, nil
	case !written:
		return pr.stats, pr.write([]byte("[]"))
	}
	return pr.stats, pr.write([]byte("]"))
}
