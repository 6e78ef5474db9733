package policies

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"maps"
	"slices"
	"sort"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/open-policy-agent/opa/v1/ast"
	"github.com/open-policy-agent/opa/v1/metrics"
	"github.com/open-policy-agent/opa/v1/rego"
	"github.com/open-policy-agent/opa/v1/storage/inmem"
	"github.com/open-policy-agent/opa/v1/topdown"
	"github.com/open-policy-agent/opa/v1/util"

	"github.com/lienthong/lienthong/catalog"
)

// Consumer is the calling system as the gateway knows it. Only ID is needed:
// the policy data is authoritative. The other fields, when set (e.g. from the
// certificate or a live revocation check), can only make the decision
// stricter: a lower level, an earlier expiry, a revocation, or a member that
// must match.
type Consumer struct {
	ID                   string    `json:"id"`
	Member               string    `json:"member,omitempty"`
	Level                int       `json:"level,omitempty"`
	AssessmentValidUntil time.Time `json:"assessment_valid_until,omitzero"`
	Revoked              bool      `json:"revoked,omitempty"`
}

// Input is one exchange to decide. Its JSON form is the Rego input (times as
// RFC 3339 text; the engine itself passes Unix nanoseconds, which the rules
// accept too).
type Input struct {
	Consumer Consumer `json:"consumer"`
	// Provider is the provider system id, Dataset the dataset code.
	Provider string `json:"provider"`
	Dataset  string `json:"dataset"`
	// Fields are the dotted paths asked for; empty asks for everything the
	// consumer may have.
	Fields  []string     `json:"fields,omitempty"`
	Mode    catalog.Mode `json:"mode"`
	Purpose string       `json:"purpose"`
	// Time is when the exchange happens; zero means the engine's clock.
	Time time.Time `json:"time,omitzero"`
}

// Reason is one machine-readable code with a human message. Messages name
// fields, grants and rules, never data values. Field is set when the reason
// is about one field (e.g. why it was dropped).
type Reason struct {
	Code    string `json:"code"`
	Message string `json:"message"`
	Field   string `json:"field,omitempty"`
}

// Decision is the answer for one exchange. Treat it as read-only: the engine
// hands out copies, so changing one affects nothing else.
type Decision struct {
	Allow bool `json:"allow"`
	// Fields are the allowed dotted paths, sorted. An allowed object path
	// allows everything below it except what Masks says to mask.
	Fields []string `json:"fields"`
	// Masks maps a path to the mask the gateway applies to it and to
	// everything below it; where masks nest, the stronger one holds.
	Masks map[string]catalog.Mask `json:"masks"`
	// RowScope limits which records may be returned, if the grant has one.
	RowScope *catalog.RowScope `json:"row_scope"`
	// GrantID is the grant that allowed the fields; empty when only
	// default-shared fields were allowed, or when denied.
	GrantID string   `json:"grant_id"`
	Reasons []Reason `json:"reasons"`
	// Expires is the next validity boundary the decision depended on, in
	// Unix nanoseconds (0: none before the next revision).
	Expires int64 `json:"expires"`
	// Revision is the policy revision that decided.
	Revision string `json:"revision,omitempty"`
}

// Has reports whether code is among the decision's reasons.
func (d Decision) Has(code string) bool {
	return slices.ContainsFunc(d.Reasons, func(r Reason) bool { return r.Code == code })
}

// clone copies the decision's slices and maps, so a cached decision is never
// shared with a caller.
func (d Decision) clone() Decision {
	d.Fields = slices.Clone(d.Fields)
	d.Masks = maps.Clone(d.Masks)
	d.Reasons = slices.Clone(d.Reasons)
	if d.RowScope != nil {
		rs := *d.RowScope
		rs.Values = slices.Clone(rs.Values)
		d.RowScope = &rs
	}
	return d
}

func deny(code, message string) Decision {
	return denied(0, Reason{Code: code, Message: message})
}

// ErrNoPolicy is returned by Decide before any revision was loaded.
var ErrNoPolicy = errors.New("policies: no policy revision loaded")

// Engine answers decisions with the revision last loaded. It is safe for
// concurrent use; Load swaps revisions atomically while Decide runs.
//
// A decision is the base policy's (rego/exchange.rego), narrowed by the
// provider's own module when its dataset has one: the engine evaluates the
// module's deny, drop and masks only when the base allows, and intersects.
// deny (a set of strings or {code, message}) turns the answer into a denial;
// drop (a set of paths) removes fields, carving an allowed object into its
// other parts when a part of it is dropped; masks ({path: mask}) can only
// strengthen masks. Nothing else the module defines is read, so it can never
// add a field, lift a mask or allow what the base denied; output of the wrong
// shape denies (agency_policy_invalid).
//
// The common case (the consumer named by its id, an explicit list of fields,
// one grant naming the mode and purpose) is decided natively, from a table
// compiled out of the same data when a revision is loaded (nativeTable); the
// Rego decides everything else and is the reference the native answers are
// held equal to.
type Engine struct {
	loadMu    sync.Mutex
	cur       atomic.Pointer[loaded]
	cacheSize int
	clock     func() time.Time
	maxStale  time.Duration
	// regoOnly makes every decision evaluate the Rego (tests compare the
	// native answers with it; the benchmark measures both).
	regoOnly bool
}

// Option configures an Engine.
type Option func(*Engine)

// WithCacheSize bounds the decision cache to about n entries; 0 disables it
// (the benchmark measures uncached decisions that way). Default 10,000.
func WithCacheSize(n int) Option { return func(e *Engine) { e.cacheSize = max(n, 0) } }

// WithClock sets the time used when an Input has none (tests move it).
func WithClock(now func() time.Time) Option { return func(e *Engine) { e.clock = now } }

// WithMaxStaleness makes Decide deny with policy_stale once the loaded
// snapshot's IssuedAt is older than d by the engine's clock: a gateway cut off
// from the control plane for too long stops allowing (0, the default, never).
// A snapshot without IssuedAt counts as stale.
func WithMaxStaleness(d time.Duration) Option { return func(e *Engine) { e.maxStale = d } }

// NewEngine returns an engine with no revision loaded; Decide denies until
// Load succeeds.
func NewEngine(opts ...Option) *Engine {
	e := &Engine{cacheSize: 10_000, clock: time.Now}
	for _, o := range opts {
		o(e)
	}
	return e
}

// loaded is one prepared revision; immutable once published.
type loaded struct {
	revision string
	issuedAt time.Time
	// bounds gives each decision its expiry.
	bounds *boundaries
	// native decides the common case without evaluating query.
	native *nativeTable
	query  rego.PreparedEvalQuery
	// agency holds one prepared query per provider module, by dataset ref,
	// evaluated only when the base decision allows.
	agency map[string]rego.PreparedEvalQuery
	cache  *decisionCache
	// children lists each dataset path's direct children, by dataset ref, so
	// an agency drop below an allowed object can carve the object up.
	children map[string]map[string][]string
	// uncacheable marks datasets whose agency module may read the time.
	uncacheable map[string]bool
	// strs are the data's string terms, which inputs share (termPool).
	strs termPool
}

// Revision is the revision currently loaded ("" before the first Load).
func (e *Engine) Revision() string {
	if st := e.cur.Load(); st != nil {
		return st.revision
	}
	return ""
}

// CacheStats reports the decision cache's hits and misses for the revision
// currently loaded (both 0 when the cache is disabled).
func (e *Engine) CacheStats() (hits, misses int64) {
	if st := e.cur.Load(); st != nil && st.cache != nil {
		return st.cache.hits.Load(), st.cache.misses.Load()
	}
	return 0, 0
}

// decisionQuery is the query evaluated for every exchange.
const decisionQuery = "data.lienthong.exchange.decision"

// agencyQuery reads a provider module's three outputs; each binding is a list
// of zero or one value, so an undefined rule is simply empty.
func agencyQuery(key string) string {
	ref := "data." + AgencyNamespace + "." + key
	return "deny := [x | x := " + ref + ".deny]; drop := [x | x := " + ref + ".drop]; masks := [x | x := " + ref + ".masks]"
}

// Load prepares snap (compiles the modules, builds the data as an in-memory
// AST store, prepares the queries, compiles the native table of the common
// case) and, only if that succeeds, makes it the revision that decides. The
// previous revision keeps answering meanwhile; its cache goes with it.
// Loading the revision already loaded does nothing, so a gateway may hand
// every fetched bundle to Load: a revision names content.
func (e *Engine) Load(ctx context.Context, snap *Snapshot) error {
	if snap == nil || snap.Data == nil {
		return errors.New("policies: load: snapshot has no data")
	}
	if snap.Revision == "" {
		return errors.New("policies: load: snapshot has no revision")
	}
	if e.Revision() == snap.Revision {
		return nil
	}
	if len(snap.Base) == 0 {
		return fmt.Errorf("policies: load revision %s: snapshot has no base policy", snap.Revision)
	}
	st := &loaded{
		revision:    snap.Revision,
		issuedAt:    snap.IssuedAt,
		children:    map[string]map[string][]string{},
		uncacheable: map[string]bool{},
	}
	if e.cacheSize > 0 {
		st.cache = newDecisionCache(e.cacheSize)
	}

	modules := map[string]*ast.Module{}
	popts := ast.ParserOptions{RegoVersion: ast.RegoV1, Capabilities: capabilities}
	for name, src := range snap.Base {
		file := Root + "/" + name
		mod, err := ast.ParseModuleWithOpts(file, string(src), popts)
		if err != nil {
			return fmt.Errorf("policies: load revision %s: %w", snap.Revision, moduleError(file, err))
		}
		modules[file] = mod
	}
	timeDep := map[string]bool{}
	for provider, src := range snap.Agency {
		mod, err := parseAgencyModule(provider, src)
		if err != nil {
			return fmt.Errorf("policies: load revision %s: agency module of %s: %w", snap.Revision, provider, err)
		}
		key := AgencyKey(provider)
		if snap.Data.Agencies[key] != provider {
			return fmt.Errorf("policies: load revision %s: agency module of %s is not registered in the data", snap.Revision, provider)
		}
		timeDep[key] = timeDependent(mod)
		modules[Root+"/agency/"+key+".rego"] = mod
	}
	compiler := ast.NewCompiler().WithCapabilities(capabilities).WithDefaultRegoVersion(ast.RegoV1)
	if compiler.Compile(modules); compiler.Failed() {
		return fmt.Errorf("policies: load revision %s: %w", snap.Revision, moduleError("", compiler.Errors))
	}

	doc, strs := astDocumentAndStrings(snap.Data)
	st.strs = strs
	store := inmem.NewFromASTObject(ast.NewObject([2]*ast.Term{ast.StringTerm(Root), ast.NewTerm(doc)}))
	prepare := func(query string, gen func(*ast.Term, *rego.EvalContext) (any, error)) (rego.PreparedEvalQuery, error) {
		return rego.New(
			rego.Query(query),
			rego.Compiler(compiler),
			rego.Store(store),
			rego.Capabilities(capabilities),
			rego.SetRegoVersion(ast.RegoV1),
			rego.GenerateJSON(gen),
		).PrepareForEval(ctx)
	}
	var err error
	st.query, err = prepare(decisionQuery, generateDecision)
	if err != nil {
		return fmt.Errorf("policies: load revision %s: prepare: %w", snap.Revision, err)
	}
	st.bounds = newBoundaries(snap.Data)
	st.native = newNativeTable(snap.Data)
	st.agency = map[string]rego.PreparedEvalQuery{}
	agencyQueries := map[string]rego.PreparedEvalQuery{}
	for key := range timeDep {
		if agencyQueries[key], err = prepare(agencyQuery(key), rawTerm); err != nil {
			return fmt.Errorf("policies: load revision %s: prepare agency module %s: %w", snap.Revision, key, err)
		}
	}

	for ref, dd := range snap.Data.Datasets {
		provider := ref[:max(strings.LastIndexByte(ref, '/'), 0)]
		if _, has := snap.Agency[provider]; has && dd.Agency != AgencyKey(provider) {
			return fmt.Errorf("policies: load revision %s: dataset %s does not point at its provider's agency module", snap.Revision, ref)
		}
		if dd.Agency != "" {
			q, ok := agencyQueries[dd.Agency]
			if !ok {
				return fmt.Errorf("policies: load revision %s: dataset %s names agency module %s, which the snapshot lacks", snap.Revision, ref, dd.Agency)
			}
			st.agency[ref] = q
			st.uncacheable[ref] = timeDep[dd.Agency]
		}
		kids := map[string][]string{}
		for p, fd := range dd.Fields {
			if n := len(fd.Lineage); n >= 2 {
				parent := fd.Lineage[n-2]
				kids[parent] = append(kids[parent], p)
			}
		}
		for _, k := range kids {
			sort.Strings(k)
		}
		st.children[ref] = kids
	}

	e.loadMu.Lock()
	defer e.loadMu.Unlock()
	e.cur.Store(st)
	return nil
}

// dataDocument converts the typed data into JSON-shaped values, as a bundle's
// data.json holds them (the engine itself builds AST directly: astDocument).
func dataDocument(pd *PolicyData) (any, error) {
	bs, err := json.Marshal(pd)
	if err != nil {
		return nil, fmt.Errorf("encode policy data: %w", err)
	}
	var doc any
	if err := util.UnmarshalJSON(bs, &doc); err != nil {
		return nil, fmt.Errorf("decode policy data: %w", err)
	}
	return doc, nil
}

// Decide answers one exchange. It never returns an allowing decision with an
// error; on any failure the decision denies (policy_error, no_policy) and the
// error says why. Cached answers are used only within the revision that made
// them and before their Expires. The common case is answered by the native
// table, everything else by the Rego; a provider's module then narrows an
// allowing answer either way.
func (e *Engine) Decide(ctx context.Context, in Input) (Decision, error) {
	st := e.cur.Load()
	if st == nil {
		return deny("no_policy", "no policy revision is loaded"), ErrNoPolicy
	}
	now := in.Time
	if now.IsZero() {
		now = e.clock()
	}
	nowNS := now.UnixNano()
	// The policy's age is judged by the clock, not by the exchange's time.
	if e.maxStale > 0 && e.clock().Sub(st.issuedAt) > e.maxStale {
		d := deny("policy_stale", fmt.Sprintf("policy revision %s was issued at %s, longer ago than the allowed %s", st.revision, st.issuedAt.UTC().Format(time.RFC3339), e.maxStale))
		d.Revision = st.revision
		return d, nil
	}
	fields := normalizeFields(in.Fields)
	ref := in.Provider + "/" + in.Dataset

	var key string
	useCache := st.cache != nil && !st.uncacheable[ref]
	if useCache {
		key = cacheKey(&in, fields)
		if d, ok := st.cache.get(key, nowNS); ok {
			return d.clone(), nil
		}
	}

	var input ast.Value
	d, native := Decision{}, false
	if !e.regoOnly {
		d, native = st.native.decide(&in, ref, fields, nowNS)
	}
	if !native {
		input = st.strs.input(&in, fields, nowNS)
		rs, err := eval(ctx, st.query, input)
		if err != nil {
			d := deny("policy_error", "the policy could not be evaluated")
			d.Revision = st.revision
			return d, fmt.Errorf("policies: decide on revision %s: %w", st.revision, err)
		}
		var dp *Decision
		if len(rs) == 1 && len(rs[0].Expressions) == 1 {
			dp, _ = rs[0].Expressions[0].Value.(*Decision)
		}
		if dp == nil {
			d := deny("policy_error", "the policy gave no decision")
			d.Revision = st.revision
			return d, fmt.Errorf("policies: decide on revision %s: query %s was undefined", st.revision, decisionQuery)
		}
		d = *dp
		d.Expires = st.bounds.expiresAt(&in, ref, nowNS)
	}
	if aq, ok := st.agency[ref]; ok && d.Allow {
		if input == nil {
			input = st.strs.input(&in, fields, nowNS)
		}
		out, err := evalAgency(ctx, aq, input)
		if err != nil {
			d := deny("policy_error", "the provider's policy module could not be evaluated")
			d.Revision = st.revision
			return d, fmt.Errorf("policies: decide on revision %s: agency module of %s: %w", st.revision, in.Provider, err)
		}
		applyAgency(&d, out, st.children[ref])
	}
	d.Revision = st.revision
	if useCache {
		st.cache.put(key, d, nowNS)
		return d.clone(), nil
	}
	return d, nil
}

// boundaries holds the times at which decisions may change, so the engine
// need not keep the whole policy data (the garbage collector scans what is
// kept on every cycle).
type boundaries struct {
	// assessed is each system's assessment expiry.
	assessed map[string]int64
	// grants lists the start and end of every grant, by consumer and
	// dataset ref.
	grants map[string]map[string][]int64
}

func newBoundaries(pd *PolicyData) *boundaries {
	b := &boundaries{assessed: make(map[string]int64, len(pd.Systems)), grants: make(map[string]map[string][]int64, len(pd.Grants))}
	for id, s := range pd.Systems {
		b.assessed[id] = s.AssessmentValidUntil
	}
	for consumer, byRef := range pd.Grants {
		b.grants[consumer] = make(map[string][]int64, len(byRef))
		for ref, byID := range byRef {
			ts := make([]int64, 0, 2*len(byID))
			for _, g := range byID {
				ts = append(ts, g.ValidFrom, g.ValidUntil)
			}
			b.grants[consumer][ref] = ts
		}
	}
	return b
}

// expiresAt is the next time after now at which the decision may change: the
// consumer's assessment expiry (as recorded, or as the gateway said) or a
// grant of this consumer for this dataset starting or ending. 0: none.
func (b *boundaries) expiresAt(in *Input, ref string, now int64) int64 {
	var next int64
	consider := func(t int64) {
		if t > now && (next == 0 || t < next) {
			next = t
		}
	}
	if t, ok := b.assessed[in.Consumer.ID]; ok {
		consider(t)
	}
	consider(unixNano(in.Consumer.AssessmentValidUntil))
	for _, t := range b.grants[in.Consumer.ID][ref] {
		consider(t)
	}
	return next
}

// noMetrics spares every evaluation a fresh metrics registry nobody reads.
var noMetrics = metrics.NoOp()

// eval runs a prepared query on input. OPA would otherwise start a goroutine
// per evaluation to watch ctx; a cancellation hook registered with
// context.AfterFunc costs nothing for a context that cannot be cancelled and
// still stops the evaluation when ctx is.
func eval(ctx context.Context, q rego.PreparedEvalQuery, input ast.Value) (rego.ResultSet, error) {
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	cancel := topdown.NewCancel()
	stop := context.AfterFunc(ctx, cancel.Cancel)
	defer stop()
	return q.Eval(ctx, rego.EvalParsedInput(input), rego.EvalMetrics(noMetrics), rego.EvalExternalCancel(cancel))
}

// evalAgency runs a provider module's query and gathers its defined outputs.
func evalAgency(ctx context.Context, q rego.PreparedEvalQuery, input ast.Value) (ast.Object, error) {
	rs, err := eval(ctx, q, input)
	if err != nil {
		return nil, err
	}
	out := ast.NewObject()
	if len(rs) != 1 {
		return out, nil
	}
	for _, name := range []string{"deny", "drop", "masks"} {
		t, ok := rs[0].Bindings[name].(*ast.Term)
		if !ok {
			continue
		}
		if arr, ok := t.Value.(*ast.Array); ok && arr.Len() == 1 {
			out.Insert(ast.StringTerm(name), arr.Elem(0))
		}
	}
	return out, nil
}

// normalizeFields sorts and de-duplicates the asked paths: order does not
// change the answer, and one cache entry then serves every order.
func normalizeFields(fields []string) []string {
	if len(fields) == 0 {
		return nil
	}
	out := slices.Clone(fields)
	slices.Sort(out)
	return slices.Compact(out)
}

// cacheKey holds everything in the input that can change the answer, except
// the time, which the cache entry's validity window covers.
func cacheKey(in *Input, fields []string) string {
	var b strings.Builder
	n := len(in.Consumer.ID) + len(in.Consumer.Member) + len(in.Provider) + len(in.Dataset) + len(in.Mode) + len(in.Purpose) + 48
	for _, f := range fields {
		n += len(f) + 1
	}
	b.Grow(n)
	for _, s := range []string{in.Consumer.ID, in.Consumer.Member, in.Provider, in.Dataset, string(in.Mode), in.Purpose} {
		b.WriteString(s)
		b.WriteByte(0)
	}
	b.WriteString(strconv.Itoa(in.Consumer.Level))
	b.WriteByte(0)
	b.WriteString(strconv.FormatInt(unixNano(in.Consumer.AssessmentValidUntil), 10))
	b.WriteByte(0)
	if in.Consumer.Revoked {
		b.WriteByte('r')
	}
	b.WriteByte(0)
	for _, f := range fields {
		b.WriteString(f)
		b.WriteByte(1)
	}
	return b.String()
}

// Terms reused by every input and result conversion.
var (
	kConsumer   = ast.StringTerm("consumer")
	kID         = ast.StringTerm("id")
	kMember     = ast.StringTerm("member")
	kLevel      = ast.StringTerm("level")
	kValidUntil = ast.StringTerm("assessment_valid_until")
	kRevoked    = ast.StringTerm("revoked")
	kProvider   = ast.StringTerm("provider")
	kDataset    = ast.StringTerm("dataset")
	kFields     = ast.StringTerm("fields")
	kMode       = ast.StringTerm("mode")
	kPurpose    = ast.StringTerm("purpose")
	kTime       = ast.StringTerm("time")
)

// inputValue builds the Rego input directly as an AST value: converting a Go
// struct would round-trip it through JSON on every decision.
func inputValue(in *Input, fields []string, nowNS int64) ast.Value {
	return termPool(nil).input(in, fields, nowNS)
}

// input is inputValue with the strings the data already holds shared.
func (p termPool) input(in *Input, fields []string, nowNS int64) ast.Value {
	consumer := [][2]*ast.Term{{kID, p.str(in.Consumer.ID)}}
	if in.Consumer.Member != "" {
		consumer = append(consumer, [2]*ast.Term{kMember, p.str(in.Consumer.Member)})
	}
	if in.Consumer.Level > 0 {
		consumer = append(consumer, [2]*ast.Term{kLevel, ast.IntNumberTerm(in.Consumer.Level)})
	}
	if !in.Consumer.AssessmentValidUntil.IsZero() {
		consumer = append(consumer, [2]*ast.Term{kValidUntil, int64Term(in.Consumer.AssessmentValidUntil.UnixNano())})
	}
	if in.Consumer.Revoked {
		consumer = append(consumer, [2]*ast.Term{kRevoked, ast.BooleanTerm(true)})
	}
	fs := make([]*ast.Term, len(fields))
	for i, f := range fields {
		fs[i] = p.str(f)
	}
	return ast.NewObject(
		[2]*ast.Term{kConsumer, ast.ObjectTerm(consumer...)},
		[2]*ast.Term{kProvider, p.str(in.Provider)},
		[2]*ast.Term{kDataset, p.str(in.Dataset)},
		[2]*ast.Term{kFields, ast.ArrayTerm(fs...)},
		[2]*ast.Term{kMode, p.str(string(in.Mode))},
		[2]*ast.Term{kPurpose, p.str(in.Purpose)},
		[2]*ast.Term{kTime, int64Term(nowNS)},
	)
}
