package console

import (
	"net/http"
	"sort"
	"strconv"

	"github.com/lienthong/lienthong/catalog"
	"github.com/lienthong/lienthong/controlplane/service"
)

// catalogData is the catalog browser: every published dataset (the
// catalog is public to every member, as in the API) and the grants the
// signed-in member may see, by dataset.
type catalogData struct {
	Datasets []datasetRow
}

type datasetRow struct {
	catalog.Dataset
	Counts map[catalog.Classification]int
	Grants int
}

func (c *Console) catalogPage(w http.ResponseWriter, r *http.Request, v *view) error {
	cx, cancel := ctx(r)
	defer cancel()
	ds, err := c.svc.Datasets(cx, catalog.DatasetFilter{})
	if err != nil {
		return err
	}
	grants, err := c.svc.Grants(cx, *v.Principal, catalog.GrantFilter{})
	if err != nil {
		return err
	}
	held := map[string]int{}
	for _, g := range grants {
		if g.StateAt(c.svc.Now()) == catalog.GrantActive {
			held[g.Provider+"/"+g.Dataset]++
		}
	}
	out := catalogData{}
	for _, d := range ds {
		row := datasetRow{Dataset: d, Counts: map[catalog.Classification]int{}, Grants: held[d.Ref()]}
		for _, f := range d.Fields {
			row.Counts[f.Classification]++
		}
		out.Datasets = append(out.Datasets, row)
	}
	sort.Slice(out.Datasets, func(i, j int) bool { return out.Datasets[i].Ref() < out.Datasets[j].Ref() })
	c.render(w, r, v, http.StatusOK, "catalog", out)
	return nil
}

// datasetData is one dataset: its fields, versions, what changed from the
// version before the one shown, who holds grants on it, and the access
// request form.
type datasetData struct {
	Dataset  *catalog.Dataset
	Versions []catalog.Dataset
	Previous int
	Diff     []catalog.FieldChange
	Grants   []service.GrantView
	// Consumers are the systems the signed-in member may request for.
	Consumers []service.SystemView
	Form      requestForm
	Errors    *formErrors
	Created   string
}

// requestForm is the access request form as submitted, to fill it again
// when the service refuses it.
type requestForm struct {
	Consumer, PurposeCode, PurposeText, LegalRef, LegalText, ValidUntil, RowField, RowValues string
	Fields, Modes                                                                            []string
}

func (c *Console) datasetPage(w http.ResponseWriter, r *http.Request, v *view) error {
	q := r.URL.Query()
	version, _ := strconv.Atoi(q.Get("version"))
	d, err := c.loadDataset(r, v, q.Get("system"), q.Get("code"), version)
	if err != nil {
		return err
	}
	d.Created = q.Get("created")
	d.Form = requestForm{Modes: []string{string(catalog.ModeQuery)}}
	c.render(w, r, v, http.StatusOK, "dataset", d)
	return nil
}

func (c *Console) loadDataset(r *http.Request, v *view, system, code string, version int) (*datasetData, error) {
	cx, cancel := ctx(r)
	defer cancel()
	ds, err := c.svc.Dataset(cx, system, code, version)
	if err != nil {
		return nil, err
	}
	versions, err := c.svc.DatasetVersions(cx, system, code)
	if err != nil {
		return nil, err
	}
	out := &datasetData{Dataset: ds, Versions: versions}
	for i := len(versions) - 1; i >= 0; i-- {
		if versions[i].Version < ds.Version {
			out.Previous = versions[i].Version
			prev, err := c.svc.Dataset(cx, system, code, versions[i].Version)
			if err != nil {
				return nil, err
			}
			out.Diff = catalog.DiffFields(prev.Fields, ds.Fields)
			break
		}
	}
	grants, err := c.svc.Grants(cx, *v.Principal, catalog.GrantFilter{Provider: system, Dataset: code})
	if err != nil {
		return nil, err
	}
	for _, g := range grants {
		out.Grants = append(out.Grants, c.svc.View(g))
	}
	if v.Can(string(catalog.RoleIntegrator), string(catalog.RoleMemberAdmin)) {
		f := catalog.SystemFilter{Member: v.Principal.Member}
		if out.Consumers, err = c.svc.Systems(cx, f); err != nil {
			return nil, err
		}
	}
	return out, nil
}
