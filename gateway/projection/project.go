package projection

import (
	"errors"
	"fmt"
	"io"
	"sync"

	"github.com/lienthong/lienthong/catalog"
)

// The errors Project wraps. The gateway answers 502 to every one of them:
// each means the backend's answer cannot be passed on safely.
var (
	// ErrDuplicateKey means an object somewhere in the answer repeats a key
	// (compared after unescaping: "name" and "\u006eame" are the same key).
	// Parsers disagree about which of two equal keys wins, so a filter that
	// decided on one could pass the other to the consumer.
	ErrDuplicateKey = errors.New("projection: duplicate key in the backend response")
	// ErrInvalidJSON means the answer is not exactly one JSON value.
	ErrInvalidJSON = errors.New("projection: the backend response is not valid JSON")
	// ErrTooDeep means values nest deeper than Options.MaxDepth.
	ErrTooDeep = errors.New("projection: the backend response nests too deeply")
	// ErrTooLarge means the answer is longer than Options.MaxBytes.
	ErrTooLarge = errors.New("projection: the backend response is too large")
	// ErrInvalidRecord means the answer is not a record object or an array of
	// them, or a record failed Options.Validate (whose error is wrapped too).
	ErrInvalidRecord = errors.New("projection: invalid record in the backend response")
)

// Defaults of Options.
const (
	// DefaultMaxDepth bounds nesting (the top-level value is depth 1). Real
	// records nest a few levels; the bound also bounds recursion.
	DefaultMaxDepth = 64
	// DefaultMaxBytes bounds a backend answer (64 MiB).
	DefaultMaxBytes = 64 << 20
)

// Options are the per-response settings of Project.
type Options struct {
	// MaxDepth bounds how deeply values nest, the top-level value being at
	// depth 1 (so the records of an array are at depth 2); 0 or less means
	// DefaultMaxDepth.
	MaxDepth int
	// MaxBytes bounds the bytes read from src; 0 means DefaultMaxBytes and a
	// negative value means no bound.
	MaxBytes int64
	// Validate, if set, is called with each full top-level record, before
	// projection, in the form encoding/json decodes to with UseNumber
	// (map[string]any, []any, json.Number, string, bool, nil). An error
	// stops Project with ErrInvalidRecord. It sees ungranted fields, so its
	// error must never reach the consumer (see Validator).
	Validate func(record any) error
	// Validator, if set, checks each full top-level record against its
	// dataset's record schema before Validate, with the same errors as its
	// Validate method. Given here rather than as Validate, a valid record is
	// judged on the decoder's own representation, and the record's
	// map[string]any form is not built at all when Validate and Keep are
	// unset.
	Validator *Validator
	// Keep, if set, is called with each full record after Validate; records
	// it returns false for are left out (row scope). Like Validate it sees
	// the whole record, so it can filter on a field the consumer may not read.
	Keep func(record any) bool
}

// Stats describe one Project call, for the audit record and metrics.
type Stats struct {
	// Records counts the records written.
	Records int
	// Filtered counts the records Options.Keep left out.
	Filtered int
	// Dropped counts the keys (and array items) removed because they are not
	// allowed; a removed subtree counts once.
	Dropped int
	// Undeclared counts the keys among Dropped that the dataset's schema
	// does not declare (plans of Schema.Plan only): a backend sending more
	// than its dataset promises, worth a metric and a word to its operator.
	Undeclared int
	// Masked counts the masks applied.
	Masked int
	// BytesIn and BytesOut count the bytes read from src and written to dst.
	BytesIn, BytesOut int64
}

// Project reads the backend's answer from src — one record object, or an
// array of record objects — and writes to dst what the plan allows of it:
// an object for an object, an array of projected records for an array. Key
// order and number literals are kept as the backend wrote them; strings and
// keys are re-encoded.
//
// Records are processed one at a time: each is decoded (refusing duplicate
// keys at any depth), checked by opts.Validate, filtered by opts.Keep,
// projected, masked and written before the next is read, so memory is
// bounded by the largest record, not by the answer.
//
// On error, part of the output may already be in dst (the records before
// the failing one, an opening bracket): the caller must discard it all. For
// a single object nothing is written unless Project succeeds. A single
// object that opts.Keep leaves out produces no output at all (Stats.Records
// is 0, Stats.Filtered 1): the caller decides what to answer.
func (p *Plan) Project(dst io.Writer, src io.Reader, opts Options) (Stats, error) {
	if opts.MaxDepth <= 0 {
		opts.MaxDepth = DefaultMaxDepth
	}
	if opts.MaxBytes == 0 {
		opts.MaxBytes = DefaultMaxBytes
	}
	pr := workPool.Get().(*projector)
	defer pr.release()
	pr.plan, pr.opts, pr.dst, pr.stats = p, opts, dst, Stats{}
	pr.dec.init(src, opts.MaxDepth, opts.MaxBytes)
	err := pr.run()
	pr.stats.BytesIn = pr.dec.src.n
	return pr.stats, err
}

// projector is the state of one Project call. Its buffers are pooled.
type projector struct {
	plan    *Plan
	opts    Options
	dst     io.Writer
	dec     decoder
	arena   arena // the containers of the projected record
	stats   Stats
	out     []byte // the output of the current record
	scratch []byte // canonical JSON for the hash mask
	// bad is the declared node whose value had the wrong type, once one has:
	// projection of the record stops and the record is refused.
	bad *node
}

// workPool keeps projectors, so that a Project call reuses the buffers
// and arenas of an earlier one instead of growing new ones.
var workPool = sync.Pool{New: func() any { return new(projector) }}

// maxPooled bounds what a pooled projector keeps: one that grew past it on
// a huge record is left to the collector rather than kept alive.
const maxPooled = 1 << 20

// release returns pr to workPool. It drops every reference to the call's
// values and zeroes its buffers, so that no backend data (ungranted fields
// included) lingers in pooled memory; only interned key names stay.
func (pr *projector) release() {
	pr.dec.arena.release()
	pr.arena.release()
	clear(pr.dec.buf[:cap(pr.dec.buf)])
	clear(pr.dec.scratch[:cap(pr.dec.scratch)])
	clear(pr.out[:cap(pr.out)])
	clear(pr.scratch[:cap(pr.scratch)])
	pr.dec.src = limitedReader{}
	for _, m := range pr.dec.sets {
		clear(m) // key names of this record, undeclared ones included
	}
	if cap(pr.dec.buf) > maxPooled || cap(pr.out) > maxPooled || cap(pr.scratch) > maxPooled ||
		cap(pr.dec.scratch) > maxPooled || pr.dec.arena.size() > maxPooled/64 || pr.arena.size() > maxPooled/64 {
		return
	}
	*pr = projector{dec: decoder{buf: pr.dec.buf[:0], scratch: pr.dec.scratch[:0], arena: pr.dec.arena, keys: pr.dec.keys,
		sets: pr.dec.sets},
		arena: pr.arena, out: pr.out[:0], scratch: pr.scratch[:0]}
	workPool.Put(pr)
}

func (pr *projector) run() error {
	d := &pr.dec
	c, ok := d.skip()
	switch {
	case !ok && d.rerr == nil:
		return fmt.Errorf("%w: the response is empty", ErrInvalidJSON)
	case !ok:
		return d.truncated()
	case c == '{':
		rec, err := d.value(1)
		if err != nil {
			return err
		}
		if err := d.end(); err != nil {
			return err
		}
		keep, err := pr.record(&rec, 0, 0)
		if err != nil || !keep {
			return err
		}
		return pr.write(pr.out)
	case c == '[':
		d.pos++
		return pr.stream()
	case startsValue(c):
		return fmt.Errorf("%w: the response is neither a record object nor an array of them", ErrInvalidRecord)
	}
	return d.syntax(0, "unexpected character where a value should start")
}

// stream projects a top-level array of records whose '[' has been read.
func (pr *projector) stream() error {
	d := &pr.dec
	written := false
	c, ok := d.skip()
	if ok && c == ']' {
		d.pos++
	} else {
		for i := 0; ; i++ {
			switch {
			case !ok:
				return d.truncated()
			case c != '{' && startsValue(c):
				return fmt.Errorf("%w: item %d of the response array is not an object", ErrInvalidRecord, i)
			case c != '{':
				return d.syntax(0, "expected a record in the response array")
			}
			d.arena.reset()
			pr.arena.reset()
			rec, err := d.value(2)
			if err != nil {
				return fmt.Errorf("item %d of the response array: %w", i, err)
			}
			sep := byte(',')
			if !written {
				sep = '['
			}
			keep, err := pr.record(&rec, i, sep)
			if err != nil {
				return err
			}
			if keep {
				written = true
				if err := pr.write(pr.out); err != nil {
					return err
				}
			}
			if c, ok = d.skip(); !ok {
				return d.truncated()
			}
			d.pos++
			if c == ']' {
				break
			}
			if c != ',' {
				return d.syntax(-1, "expected a comma or the end of the response array")
			}
			c, ok = d.skip()
		}
	}
	if err := d.end(); err != nil {
		return err
	}
	if !written {
		return pr.write([]byte("[]"))
	}
	return pr.write([]byte("]"))
}

// record validates, filters and projects one record into pr.out, after
// prefix unless it is 0 (the array's separator: one write per record).
func (pr *projector) record(rec *value, i int, prefix byte) (keep bool, err error) {
	if v := pr.opts.Validator; v != nil {
		if err := v.validateValue(rec); err != nil {
			return false, fmt.Errorf("%w: record %d: %w", ErrInvalidRecord, i, err)
		}
	}
	if pr.opts.Validate != nil || pr.opts.Keep != nil {
		plain := toAny(rec)
		if pr.opts.Validate != nil {
			if err := pr.opts.Validate(plain); err != nil {
				return false, fmt.Errorf("%w: record %d: %w", ErrInvalidRecord, i, err)
			}
		}
		if pr.opts.Keep != nil && !pr.opts.Keep(plain) {
			pr.stats.Filtered++
			return false, nil
		}
	}
	return true, pr.emit(rec, i, prefix)
}

// emit projects one record into pr.out, after prefix unless it is 0.
func (pr *projector) emit(rec *value, i int, prefix byte) error {
	pr.bad = nil
	out := pr.object(rec, pr.plan.root, false)
	if pr.bad != nil {
		return fmt.Errorf("%w: record %d: %w: the value at %s is not of type %s", ErrInvalidRecord, i, ErrWrongType, pr.bad.path, pr.bad.typ)
	}
	pr.out = pr.out[:0]
	if prefix != 0 {
		pr.out = append(pr.out, prefix)
	}
	pr.out = appendJSON(pr.out, &out)
	pr.stats.Records++
	return nil
}

func (pr *projector) write(b []byte) error {
	n, err := pr.dst.Write(b)
	pr.stats.BytesOut += int64(n)
	if err != nil {
		return fmt.Errorf("projection: writing the projected response: %w", err)
	}
	return nil
}

// project returns what may leave of v, the value at node n (nil below a
// granted node where no mask is set); whole is true at or below a granted
// node. It reports false when nothing of v may leave: a string, number or
// boolean where only parts of an object are allowed.
func (pr *projector) project(v *value, n *node, whole bool) (value, bool) {
	var mask catalog.Mask
	if n != nil {
		mask = n.mask
		if !fits(v, n.typ) {
			pr.bad = n
			return value{}, false
		}
	}
	if !whole && (v.kind == kindString || v.kind == kindNumber || v.kind == kindBool) {
		return value{}, false
	}
	if mask == catalog.MaskNullify {
		pr.stats.Masked++
		return value{kind: kindNull}, true
	}
	out := pr.inner(v, n, whole)
	if mask != catalog.MaskNone {
		out = pr.mask(out, mask)
	}
	return out, true
}

// inner projects the contents of v without applying n's own mask, which
// belongs to the value at n as a whole and not to each item of an array.
func (pr *projector) inner(v *value, n *node, whole bool) value {
	switch v.kind {
	case kindObject:
		return pr.object(v, n, whole)
	case kindArray:
		return pr.items(v, n, whole)
	}
	return *v
}

// plain reports whether v can be sent as it is: a granted subtree with no
// masks below and nothing inside to drop, in a plan without a schema (a
// schema-aware plan checks every key and type of what it sends).
func (pr *projector) plain(v *value, n *node, whole bool) bool {
	return whole && !pr.plan.declared && !v.odd && (n == nil || len(n.children) == 0)
}

func (pr *projector) object(v *value, n *node, whole bool) value {
	if pr.plain(v, n, whole) {
		return *v
	}
	declared := pr.plan.declared
	a := &pr.arena
	base := len(a.mstack)
	for i := range v.members {
		m := &v.members[i]
		var child *node
		if n != nil {
			child = n.children[m.key]
		}
		switch {
		case child == denied:
			pr.stats.Dropped++
			continue
		case child != nil:
		case declared:
			// Not declared by the dataset: dropped even below a granted node.
			pr.stats.Dropped++
			pr.stats.Undeclared++
			continue
		case !whole || m.key == "" || containsDot(m.key):
			pr.stats.Dropped++
			continue
		}
		out, keep := pr.project(&m.val, child, whole || child.granted)
		if pr.bad != nil {
			return value{}
		}
		if !keep {
			pr.stats.Dropped++
			continue
		}
		a.mstack = append(a.mstack, member{key: m.key, val: out})
	}
	return value{kind: kindObject, members: a.closeObject(base)}
}

// items projects the items of an array at node n: arrays are transparent,
// so each item is projected at n itself. Items of which nothing may leave
// are left out. Where the schema declares properties of the items, an item
// that is a string, number or boolean has the wrong type.
func (pr *projector) items(v *value, n *node, whole bool) value {
	if pr.plain(v, n, whole) {
		return *v
	}
	objects := pr.plan.declared && n != nil && len(n.children) > 0
	a := &pr.arena
	base := len(a.istack)
	for i := range v.items {
		it := &v.items[i]
		if it.kind == kindString || it.kind == kindNumber || it.kind == kindBool {
			if objects {
				pr.bad = n
				return value{}
			}
			if !whole {
				pr.stats.Dropped++
				continue
			}
		}
		a.istack = append(a.istack, pr.inner(it, n, whole))
		if pr.bad != nil {
			return value{}
		}
	}
	return value{kind: kindArray, items: a.closeArray(base)}
}

// mask applies m to v, which is already projected, so that a hash covers
// only what the consumer may see (with inner masks applied).
func (pr *projector) mask(v value, m catalog.Mask) value {
	pr.stats.Masked++
	if v.kind == kindNull {
		return v
	}
	switch m {
	case catalog.MaskHash:
		pr.scratch = appendCanonical(pr.scratch[:0], &v)
		return value{kind: kindString, s: pr.plan.masker.Hash(pr.scratch)}
	case catalog.MaskPartial:
		if v.kind == kindString || v.kind == kindNumber {
			return value{kind: kindString, s: pr.plan.masker.Partial(v.s)}
		}
	}
	return value{kind: kindNull}
}
