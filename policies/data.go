package policies

import (
	"crypto/sha256"
	"encoding/base64"
	"errors"
	"fmt"
	"maps"
	"slices"
	"sort"
	"strings"
	"time"

	"github.com/lienthong/lienthong/catalog"
)

// Root is the top-level data path of all policy data and the only root of a
// policy bundle.
const Root = "lienthong"

// PolicyData is the document at data.lienthong: what the control plane knows
// about systems, datasets and grants, indexed the way the rules look it up.
// Its JSON form is the bundle's data.json (under "lienthong").
type PolicyData struct {
	// Systems by system id.
	Systems map[string]SystemData `json:"systems"`
	// Datasets by ref "<provider system id>/<code>".
	Datasets map[string]DatasetData `json:"datasets"`
	// Grants by consumer system id, then dataset ref, then grant id. Only
	// active grants are included; their validity period is checked at
	// decision time.
	Grants map[string]map[string]map[string]GrantData `json:"grants"`
	// Agencies maps an agency key (the last segment of an agency module's
	// package) to the provider system id the module belongs to.
	Agencies map[string]string `json:"agencies"`
	// Views holds every distinct answer (FieldView) by id. Grants' views and
	// datasets' fallbacks name answers by id: most grants give the same few
	// answers for a path, so each is written once.
	Views map[string]FieldView `json:"views"`
}

// SystemData is what a decision needs about a consumer system.
type SystemData struct {
	Member string `json:"member"`
	// Level is the assessed security level; 0 when not assessed.
	Level int `json:"level"`
	// AssessmentValidUntil is the assessment's expiry in Unix nanoseconds;
	// 0 when not assessed.
	AssessmentValidUntil int64 `json:"assessment_valid_until"`
	// Revoked is set once the platform has cut the system off. A revocation
	// dated in the future already counts: stricter is safe.
	Revoked bool `json:"revoked"`
}

// DatasetData is what a decision needs about a dataset.
type DatasetData struct {
	// MinLevel is the lowest assessed level a consumer needs.
	MinLevel int `json:"min_level"`
	// Fields by dotted path.
	Fields map[string]FieldData `json:"fields"`
	// DefaultShared lists the top-most paths a consumer may query without a
	// grant (sorted); it spares the rules a walk over Fields.
	DefaultShared []string `json:"default_shared"`
	// Fallback holds, for each path, the id of the answer (in
	// PolicyData.Views) when no grant says anything about it: under "query"
	// default-shared paths are allowed, under "other" (verify and feed)
	// nothing is.
	Fallback map[string]map[string]string `json:"fallback"`
	// Agency is the agency key of the provider's own module, if it has one.
	Agency string `json:"agency,omitempty"`
}

// FieldData describes one field of a dataset for the rules.
type FieldData struct {
	Classification catalog.Classification `json:"classification"`
	// Sensitive is true when the field or anything below it is sensitive:
	// reading an object reads its parts.
	Sensitive bool `json:"sensitive"`
	// DefaultShared is true when the field, or an ancestor, is marked
	// default-shared and nothing at or below it is sensitive.
	DefaultShared bool `json:"default_shared"`
	// Lineage is every dotted prefix of the path, the path last, e.g.
	// ["a", "a.b", "a.b.c"]: coverage by an ancestor grant is then a few
	// lookups.
	Lineage []string `json:"lineage"`
}

// GrantData is one active grant, shaped for lookups: everything about paths
// that can be worked out once is worked out here, so a decision does no
// string work and no walks.
type GrantData struct {
	ID string `json:"id"`
	// Fields lists the paths the grant names, sorted (what "everything I may
	// have" starts from).
	Fields []string `json:"fields"`
	// View is the id of the grant's answer (in PolicyData.Views) for each
	// dataset path it says something about; paths it does not cover and
	// holds no parts of are absent.
	View map[string]string `json:"view"`
	// Reason is the decision's reason when the grant allows something.
	Reason Reason `json:"reason"`
	// Purposes and Modes are sets (value true) keyed by purpose code and mode.
	Purposes map[string]bool `json:"purposes"`
	Modes    map[string]bool `json:"modes"`
	// LegalBasis is the legal basis reference; sensitive fields need one.
	LegalBasis string            `json:"legal_basis"`
	RowScope   *catalog.RowScope `json:"row_scope"`
	// ValidFrom and ValidUntil are Unix nanoseconds; the grant allows at t
	// when ValidFrom <= t < ValidUntil. A zero time in the catalog becomes 0,
	// so a grant without an expiry never allows.
	ValidFrom  int64  `json:"valid_from"`
	ValidUntil int64  `json:"valid_until"`
	State      string `json:"state"`
}

// FieldView is the answer for one asked path, worked out in advance: what a
// grant means for a path of its dataset (GrantData.View), or what the path
// means without a grant (DatasetData.Fallback); both name it by its id in
// PolicyData.Views. Every answer has this one shape so the rules treat them
// alike.
type FieldView struct {
	// Fields are the paths the answer allows: the path itself, the granted
	// parts of an object of which the grant names only parts, or none.
	Fields []string `json:"fields"`
	// Masks lists every mask that holds at or below the allowed paths: the
	// strongest mask on the way down from a named path.
	Masks map[string]catalog.Mask `json:"masks,omitempty"`
	// Grant is true when a grant allowed the paths.
	Grant bool `json:"grant,omitempty"`
	// Reason explains an answer that allows nothing, narrows, or relies on
	// default sharing.
	Reason *Reason `json:"reason,omitempty"`
}

// Snapshot is everything one policy revision decides with: the data, the base
// policy modules and the providers' own modules. BuildData makes one from the
// catalog; LoadBundle makes one from a verified bundle. Treat it as immutable
// once loaded.
type Snapshot struct {
	// Revision names this snapshot; Engine.Load requires it. BuildBundle and
	// LoadBundle carry it in the bundle manifest.
	Revision string
	// IssuedAt is when the control plane built the data; gateways judge the
	// policy's staleness by it.
	IssuedAt time.Time
	Data     *PolicyData
	// Base holds the base policy modules by file name (BaseModules()).
	Base map[string][]byte
	// Agency holds the providers' own modules by provider system id.
	Agency map[string][]byte
}

// BuildData turns catalog records into a Snapshot (without a revision; set
// Snapshot.Revision before loading it). Systems give the consumers' assessed
// level and expiry; for datasets with several versions the highest wins;
// revoked grants are left out, so a revocation stops allowing at the next
// revision; agencyModules maps a provider system id to its own Rego module,
// each checked with CompileAgencyModule. Inconsistent input (an unknown mask,
// mode or classification, a duplicate grant id, two providers with the same
// agency key) is an error naming the record, never a silently looser policy.
func BuildData(systems []catalog.System, datasets []catalog.Dataset, grants []catalog.Grant, agencyModules map[string][]byte) (*Snapshot, error) {
	pd := &PolicyData{
		Systems:  make(map[string]SystemData, len(systems)),
		Datasets: make(map[string]DatasetData, len(datasets)),
		Grants:   map[string]map[string]map[string]GrantData{},
		Agencies: map[string]string{},
		Views:    map[string]FieldView{},
	}
	views := viewInterner{views: pd.Views, keys: map[string]string{}}
	for _, s := range systems {
		if s.ID == "" {
			return nil, errors.New("build policy data: a system has no id")
		}
		sd := SystemData{Member: s.Member, Revoked: s.RevokedAt != nil}
		if sd.Member == "" {
			if id, err := catalog.ParseSystemID(s.ID); err == nil {
				sd.Member = id.Member
			}
		}
		if a := s.Assessment; a != nil && !a.ValidUntil.IsZero() {
			sd.Level = a.Level
			sd.AssessmentValidUntil = a.ValidUntil.UnixNano()
		}
		pd.Systems[s.ID] = sd
	}

	for provider, src := range agencyModules {
		if err := CompileAgencyModule(provider, src); err != nil {
			return nil, fmt.Errorf("build policy data: agency module of %s: %w", provider, err)
		}
		key := AgencyKey(provider)
		if other, dup := pd.Agencies[key]; dup {
			return nil, fmt.Errorf("build policy data: providers %s and %s map to the same agency package %s", other, provider, AgencyPackage(provider))
		}
		pd.Agencies[key] = provider
	}

	versions := map[string]int{}
	for i := range datasets {
		d := &datasets[i]
		ref := d.Ref()
		if v, seen := versions[ref]; seen && v >= d.Version {
			continue
		}
		dd, err := datasetData(d, &views)
		if err != nil {
			return nil, fmt.Errorf("build policy data: dataset %s: %w", ref, err)
		}
		if _, ok := agencyModules[d.System]; ok {
			dd.Agency = AgencyKey(d.System)
		}
		versions[ref] = d.Version
		pd.Datasets[ref] = dd
	}

	for i := range grants {
		g := &grants[i]
		if g.State == catalog.GrantRevoked {
			continue
		}
		if g.State != catalog.GrantActive {
			return nil, fmt.Errorf("build policy data: grant %s has unknown state %q", g.ID, g.State)
		}
		var ds *DatasetData
		if dd, ok := pd.Datasets[g.Provider+"/"+g.Dataset]; ok {
			ds = &dd
		}
		gd, err := grantData(g, ds, &views)
		if err != nil {
			return nil, fmt.Errorf("build policy data: grant %s: %w", g.ID, err)
		}
		ref := g.Provider + "/" + g.Dataset
		byRef := pd.Grants[g.Consumer]
		if byRef == nil {
			byRef = map[string]map[string]GrantData{}
			pd.Grants[g.Consumer] = byRef
		}
		byID := byRef[ref]
		if byID == nil {
			byID = map[string]GrantData{}
			byRef[ref] = byID
		}
		if _, dup := byID[g.ID]; dup {
			return nil, fmt.Errorf("build policy data: grant id %s appears twice for %s on %s", g.ID, g.Consumer, ref)
		}
		byID[g.ID] = gd
	}

	return &Snapshot{
		IssuedAt: time.Now().UTC(),
		Data:     pd,
		Base:     BaseModules(),
		Agency:   maps.Clone(agencyModules),
	}, nil
}

// lineage lists every dotted prefix of path, path last.
func lineage(path string) []string {
	out := []string{}
	for i := 0; i < len(path); i++ {
		if path[i] == '.' {
			out = append(out, path[:i])
		}
	}
	return append(out, path)
}

func datasetData(d *catalog.Dataset, views *viewInterner) (DatasetData, error) {
	dd := DatasetData{MinLevel: max(d.MinConsumerLevel, catalog.MinSecurityLevel), Fields: make(map[string]FieldData, len(d.Fields))}
	marked := map[string]bool{}
	for _, f := range d.Fields {
		if f.Path == "" || strings.HasPrefix(f.Path, ".") || strings.HasSuffix(f.Path, ".") || strings.Contains(f.Path, "..") {
			return dd, fmt.Errorf("field path %q is not a dotted path", f.Path)
		}
		if !f.Classification.Valid() {
			return dd, fmt.Errorf("field %s has unknown classification %q", f.Path, f.Classification)
		}
		if _, dup := dd.Fields[f.Path]; dup {
			return dd, fmt.Errorf("field %s appears twice", f.Path)
		}
		dd.Fields[f.Path] = FieldData{Classification: f.Classification, Lineage: lineage(f.Path)}
		marked[f.Path] = f.DefaultShared
	}
	// Sensitivity flows up: an object holding a sensitive part is sensitive.
	for _, fd := range dd.Fields {
		if fd.Classification != catalog.Sensitive {
			continue
		}
		for _, a := range fd.Lineage {
			if af, ok := dd.Fields[a]; ok {
				af.Sensitive = true
				dd.Fields[a] = af
			}
		}
	}
	// Default sharing flows down, and stops at anything sensitive.
	for p, fd := range dd.Fields {
		shared := false
		for _, a := range fd.Lineage {
			shared = shared || marked[a]
		}
		fd.DefaultShared = shared && !fd.Sensitive
		dd.Fields[p] = fd
	}
	for p, fd := range dd.Fields {
		if !fd.DefaultShared {
			continue
		}
		top := true
		for _, a := range fd.Lineage[:len(fd.Lineage)-1] {
			if dd.Fields[a].DefaultShared {
				top = false
			}
		}
		if top {
			dd.DefaultShared = append(dd.DefaultShared, p)
		}
	}
	sort.Strings(dd.DefaultShared)
	if dd.DefaultShared == nil {
		dd.DefaultShared = []string{}
	}
	dd.Fallback = map[string]map[string]string{"query": {}, "other": {}}
	for p, fd := range dd.Fields {
		notGranted := views.id(FieldView{Fields: []string{}, Reason: &Reason{Code: "field_not_granted", Field: p, Message: "field " + p + " is not covered by a usable grant"}})
		dd.Fallback["other"][p] = notGranted
		if fd.DefaultShared {
			dd.Fallback["query"][p] = views.id(FieldView{Fields: []string{p}, Reason: &Reason{Code: "default_shared", Field: p, Message: "field " + p + " is default-shared master data"}})
		} else {
			dd.Fallback["query"][p] = notGranted
		}
	}
	return dd, nil
}

// maskRank orders masks from weakest to strongest: a partial value reveals
// characters, a keyed hash only equality, null nothing.
var maskRank = map[catalog.Mask]int{catalog.MaskNone: 0, catalog.MaskPartial: 1, catalog.MaskHash: 2, catalog.MaskNullify: 3}

// strongerMask returns the stronger of two masks; an unknown mask counts as
// the strongest.
func strongerMask(a, b catalog.Mask) catalog.Mask {
	ra, ok := maskRank[a]
	if !ok {
		ra = 4
	}
	rb, ok := maskRank[b]
	if !ok {
		rb = 4
	}
	if rb > ra {
		return b
	}
	return a
}

// grantData shapes one grant; ds is its dataset (nil if unknown, in which
// case the grant covers nothing: every decision on an unknown dataset denies).
func grantData(g *catalog.Grant, ds *DatasetData, views *viewInterner) (GrantData, error) {
	if g.ID == "" || g.Consumer == "" || g.Provider == "" || g.Dataset == "" {
		return GrantData{}, errors.New("id, consumer, provider and dataset are all required")
	}
	gd := GrantData{
		ID:         g.ID,
		Fields:     []string{},
		View:       map[string]string{},
		Purposes:   map[string]bool{},
		Modes:      map[string]bool{},
		LegalBasis: strings.TrimSpace(g.LegalBasis.Reference),
		ValidFrom:  unixNano(g.ValidFrom),
		ValidUntil: unixNano(g.ValidUntil),
		State:      string(catalog.GrantActive),
	}
	if g.RowScope != nil {
		rs := *g.RowScope
		rs.Values = slices.Clone(rs.Values)
		if rs.Values == nil {
			rs.Values = []string{}
		}
		gd.RowScope = &rs
	}
	named := make(map[string]catalog.Mask, len(g.Fields))
	for _, f := range g.Fields {
		if !f.Mask.Valid() {
			return gd, fmt.Errorf("field %s has unknown mask %q", f.Path, f.Mask)
		}
		if f.Path == "" {
			return gd, errors.New("a granted field has an empty path")
		}
		named[f.Path] = strongerMask(named[f.Path], f.Mask)
	}
	gd.Fields = slices.Sorted(maps.Keys(named))
	if ds != nil {
		for p, v := range grantView(g.ID, named, gd.LegalBasis != "", ds) {
			gd.View[p] = views.id(v)
		}
	}
	gd.Reason = Reason{Code: "granted", Message: "grant " + g.ID + " allows the exchange"}
	if gd.LegalBasis != "" {
		gd.Reason.Message += " under " + gd.LegalBasis
	}
	for _, p := range g.Purposes {
		if code := strings.TrimSpace(p.Code); code != "" {
			gd.Purposes[code] = true
		}
	}
	for _, m := range g.Modes {
		if !m.Valid() {
			return gd, fmt.Errorf("unknown mode %q", m)
		}
		gd.Modes[string(m)] = true
	}
	return gd, nil
}

// grantView works out, for every path of ds, what a grant naming the given
// paths (with their masks) means: covered and allowed with its masks,
// covered but sensitive without a legal basis, or narrowed to named parts.
func grantView(id string, named map[string]catalog.Mask, hasLegalBasis bool, ds *DatasetData) map[string]FieldView {
	// effective is the strongest mask on p or a named ancestor; covered
	// reports whether p is named or lies below a named path.
	effective := func(p string) (m catalog.Mask, covered bool) {
		for _, a := range ds.Fields[p].Lineage {
			if am, ok := named[a]; ok {
				m, covered = strongerMask(m, am), true
			}
		}
		return m, covered
	}
	legal := func(p string) bool { return hasLegalBasis || !ds.Fields[p].Sensitive }
	// masksWithin collects the masks at or below each of paths: the path's
	// own effective mask and those of named paths under it.
	masksWithin := func(paths ...string) map[string]catalog.Mask {
		out := map[string]catalog.Mask{}
		for _, p := range paths {
			if m, _ := effective(p); m != catalog.MaskNone {
				out[p] = m
			}
			for q := range named {
				if _, known := ds.Fields[q]; known && within(q, p) {
					if m, _ := effective(q); m != catalog.MaskNone {
						out[q] = m
					}
				}
			}
		}
		if len(out) == 0 {
			return nil
		}
		return out
	}
	view := map[string]FieldView{}
	for p := range ds.Fields {
		_, covered := effective(p)
		switch {
		case covered && !legal(p):
			view[p] = FieldView{Fields: []string{}, Reason: &Reason{Code: "sensitive_without_legal_basis", Field: p,
				Message: "field " + p + " is or holds sensitive data and grant " + id + " names no legal basis"}}
		case covered:
			view[p] = FieldView{Fields: []string{p}, Masks: masksWithin(p), Grant: true}
		default:
			var parts []string
			for q := range named {
				if _, known := ds.Fields[q]; known && within(q, p) && legal(q) {
					parts = append(parts, q)
				}
			}
			if len(parts) > 0 {
				sort.Strings(parts)
				view[p] = FieldView{Fields: parts, Masks: masksWithin(parts...), Grant: true, Reason: &Reason{Code: "field_narrowed", Field: p,
					Message: "field " + p + " is not granted as a whole; only its granted parts are allowed: " + strings.Join(parts, ", ")}}
			}
		}
	}
	return view
}

// viewInterner gives each distinct FieldView one id in PolicyData.Views. The
// id is derived from the answer's content, so the same catalog gives the same
// data (and bundle) whatever the order of the work.
type viewInterner struct {
	views map[string]FieldView
	keys  map[string]string // content key to id
	sb    strings.Builder
}

func (vi *viewInterner) id(v FieldView) string {
	key := viewKey(&vi.sb, v)
	if id, ok := vi.keys[key]; ok {
		return id
	}
	sum := sha256.Sum256([]byte(key))
	enc := base64.RawURLEncoding.EncodeToString(sum[:])
	// 10 characters (60 bits) suffice; a clash takes more of the digest.
	id := enc[:10]
	for n := 11; ; n++ {
		if _, taken := vi.views[id]; !taken || n > len(enc) {
			break
		}
		id = enc[:n]
	}
	vi.keys[key] = id
	vi.views[id] = v
	return id
}

// viewKey identifies a FieldView's content.
func viewKey(k *strings.Builder, v FieldView) string {
	k.Reset()
	for _, f := range v.Fields {
		k.WriteString(f)
		k.WriteByte(0)
	}
	k.WriteByte(1)
	for _, p := range slices.Sorted(maps.Keys(v.Masks)) {
		k.WriteString(p)
		k.WriteByte(0)
		k.WriteString(string(v.Masks[p]))
		k.WriteByte(0)
	}
	k.WriteByte(1)
	if v.Grant {
		k.WriteByte('g')
	}
	if r := v.Reason; r != nil {
		k.WriteByte(1)
		k.WriteString(r.Code)
		k.WriteByte(0)
		k.WriteString(r.Field)
		k.WriteByte(0)
		k.WriteString(r.Message)
	}
	return k.String()
}

// unixNano maps the zero time to 0 rather than to an overflowed value.
func unixNano(t time.Time) int64 {
	if t.IsZero() {
		return 0
	}
	return t.UnixNano()
}
