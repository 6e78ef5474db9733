package console

import (
	"errors"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"time"

	"github.com/lienthong/lienthong/catalog"
	"github.com/lienthong/lienthong/controlplane/service"
)

// requestFields places the service's complaints about an access request on
// the form's fields.
var requestFields = map[string]string{
	"/consumer": "consumer", "/fields": "fields", "/purpose": "purpose_code",
	"/legalBasis": "legal_reference", "/validUntil": "valid_until", "/validFrom": "valid_until",
	"/modes": "modes", "/rowScope/field": "row_field", "/rowScope/values": "row_values", "/rowScope": "row_field",
}

// requestAccess files an access request from the dataset page's form, or
// shows that page again with the service's problem at each field.
func (c *Console) requestAccess(w http.ResponseWriter, r *http.Request, v *view) error {
	f := r.PostForm
	form := requestForm{
		Consumer: f.Get("consumer"), PurposeCode: strings.TrimSpace(f.Get("purpose_code")), PurposeText: strings.TrimSpace(f.Get("purpose_text")),
		LegalRef: strings.TrimSpace(f.Get("legal_reference")), LegalText: strings.TrimSpace(f.Get("legal_text")),
		ValidUntil: f.Get("valid_until"), RowField: strings.TrimSpace(f.Get("row_field")), RowValues: f.Get("row_values"),
		Fields: f["fields"], Modes: f["modes"],
	}
	in := service.AccessRequestInput{
		Consumer: form.Consumer, Provider: f.Get("provider"), Dataset: f.Get("dataset"), Fields: form.Fields,
		Purpose:    catalog.Purpose{Code: form.PurposeCode, Text: form.PurposeText},
		LegalBasis: catalog.LegalBasis{Reference: form.LegalRef, Text: form.LegalText},
	}
	for _, m := range form.Modes {
		in.Modes = append(in.Modes, catalog.Mode(m))
	}
	local := &formErrors{Fields: map[string]string{}}
	if form.ValidUntil != "" {
		t, err := time.Parse("2006-01-02", form.ValidUntil)
		if err != nil {
			local.Fields["valid_until"] = v.T("form.date")
		}
		in.ValidUntil = t.Add(24*time.Hour - time.Second)
	}
	if form.RowField != "" || strings.TrimSpace(form.RowValues) != "" {
		rs := &catalog.RowScope{Field: form.RowField}
		for _, x := range strings.Split(form.RowValues, ",") {
			if x = strings.TrimSpace(x); x != "" {
				rs.Values = append(rs.Values, x)
			}
		}
		in.RowScope = rs
	}
	cx, cancel := ctx(r)
	defer cancel()
	var err error
	var created *catalog.AccessRequest
	if len(local.Fields) == 0 {
		created, err = c.svc.RequestAccess(cx, *v.Principal, in)
	}
	if err == nil && len(local.Fields) == 0 {
		http.Redirect(w, r, Prefix+"/catalog/dataset?system="+url.QueryEscape(in.Provider)+"&code="+url.QueryEscape(in.Dataset)+
			"&created="+url.QueryEscape(created.ID), http.StatusSeeOther)
		return nil
	}
	status := http.StatusBadRequest
	errs := local
	if err != nil {
		p := problemOf(c.log, r, err)
		if p.Status == http.StatusNotFound {
			return err
		}
		status, errs = p.Status, toFormErrors(p, requestFields)
	}
	d, lerr := c.loadDataset(r, v, in.Provider, in.Dataset, 0)
	if lerr != nil {
		return lerr
	}
	d.Form, d.Errors = form, errs
	c.render(w, r, v, status, "dataset", d)
	return nil
}

// accessData lists the requests and grants the signed-in member is a party
// to (all of them for the platform operator), pending requests first.
// GrantID and Errors carry a refused revocation's problem to that grant's
// reason field.
type accessData struct {
	Pending []catalog.AccessRequest
	Closed  []catalog.AccessRequest
	Grants  []service.GrantView
	Done    string
	GrantID string
	Errors  *formErrors
}

func (c *Console) loadAccess(r *http.Request, v *view) (*accessData, error) {
	cx, cancel := ctx(r)
	defer cancel()
	reqs, err := c.svc.AccessRequests(cx, *v.Principal, catalog.AccessRequestFilter{})
	if err != nil {
		return nil, err
	}
	out := &accessData{}
	for _, q := range reqs {
		if q.State == catalog.RequestPending {
			out.Pending = append(out.Pending, q)
		} else {
			out.Closed = append(out.Closed, q)
		}
	}
	grants, err := c.svc.Grants(cx, *v.Principal, catalog.GrantFilter{})
	if err != nil {
		return nil, err
	}
	for _, g := range grants {
		out.Grants = append(out.Grants, c.svc.View(g))
	}
	return out, nil
}

func (c *Console) accessPage(w http.ResponseWriter, r *http.Request, v *view) error {
	d, err := c.loadAccess(r, v)
	if err != nil {
		return err
	}
	d.Done = r.URL.Query().Get("done")
	c.render(w, r, v, http.StatusOK, "access", d)
	return nil
}

// reviewData is one request with the approval form: each requested field
// with its classification and a mask choice.
type reviewData struct {
	Request   *catalog.AccessRequest
	Fields    []reviewField
	MayDecide bool
	Errors    *formErrors
	Reason    string
}

type reviewField struct {
	catalog.Field
	Checked bool
	Mask    string
}

// masks offered on the approval form.
var masks = []catalog.Mask{catalog.MaskNone, catalog.MaskHash, catalog.MaskPartial, catalog.MaskNullify}

func (c *Console) reviewPage(w http.ResponseWriter, r *http.Request, v *view) error {
	d, err := c.loadReview(r, v, r.URL.Query().Get("id"))
	if err != nil {
		return err
	}
	c.render(w, r, v, http.StatusOK, "review", d)
	return nil
}

func (c *Console) loadReview(r *http.Request, v *view, id string) (*reviewData, error) {
	cx, cancel := ctx(r)
	defer cancel()
	req, err := c.svc.AccessRequest(cx, *v.Principal, id)
	if err != nil {
		return nil, err
	}
	d := &reviewData{Request: req}
	d.MayDecide = req.State == catalog.RequestPending && v.Principal.RequireRoleOf("decide", memberOfSystem(req.Provider),
		catalog.RoleApprover, catalog.RoleMemberAdmin) == nil
	ds, err := c.svc.Dataset(cx, req.Provider, req.Dataset, 0)
	if err != nil && !errors.Is(err, catalog.ErrNotFound) {
		return nil, err
	}
	for _, path := range req.Fields {
		f := catalog.Field{Path: path}
		if ds != nil {
			if got, ok := ds.Field(path); ok {
				f = got
			}
		}
		d.Fields = append(d.Fields, reviewField{Field: f, Checked: true})
	}
	return d, nil
}

func memberOfSystem(system string) string {
	id, err := catalog.ParseSystemID(system)
	if err != nil {
		return ""
	}
	return id.Member
}

// approve grants the ticked fields with their masks. A problem located at
// /fields/N is shown at the N-th ticked field.
func (c *Console) approve(w http.ResponseWriter, r *http.Request, v *view) error {
	id := r.PostForm.Get("id")
	var a service.Approval
	ticked := r.PostForm["grant"]
	fieldsAt := map[string]string{}
	for i, path := range ticked {
		a.Fields = append(a.Fields, catalog.GrantedField{Path: path, Mask: catalog.Mask(r.PostForm.Get("mask:" + path))})
		fieldsAt["/fields/"+strconv.Itoa(i)] = "field:" + path
	}
	a.Note = strings.TrimSpace(r.PostForm.Get("note"))
	if len(ticked) == 0 {
		d, err := c.loadReview(r, v, id)
		if err != nil {
			return err
		}
		d.Errors = &formErrors{Fields: map[string]string{"grant": v.T("review.none")}}
		c.render(w, r, v, http.StatusBadRequest, "review", d)
		return nil
	}
	cx, cancel := ctx(r)
	defer cancel()
	if _, err := c.svc.Approve(cx, *v.Principal, id, a); err != nil {
		return c.reviewAgain(w, r, v, id, err, fieldsAt, func(d *reviewData) {
			for i := range d.Fields {
				f := &d.Fields[i]
				f.Checked, f.Mask = false, r.PostForm.Get("mask:"+f.Path)
				for _, t := range ticked {
					f.Checked = f.Checked || t == f.Path
				}
			}
		})
	}
	http.Redirect(w, r, Prefix+"/access?done=approved", http.StatusSeeOther)
	return nil
}

func (c *Console) refuse(w http.ResponseWriter, r *http.Request, v *view) error {
	id, reason := r.PostForm.Get("id"), r.PostForm.Get("reason")
	cx, cancel := ctx(r)
	defer cancel()
	if _, err := c.svc.Refuse(cx, *v.Principal, id, reason); err != nil {
		return c.reviewAgain(w, r, v, id, err, map[string]string{"/reason": "reason"}, func(d *reviewData) { d.Reason = reason })
	}
	http.Redirect(w, r, Prefix+"/access?done=refused", http.StatusSeeOther)
	return nil
}

// reviewAgain shows the review page with the service's problem placed on
// its fields; a problem that is not about the input is the error page.
func (c *Console) reviewAgain(w http.ResponseWriter, r *http.Request, v *view, id string, err error, fields map[string]string, keep func(*reviewData)) error {
	p := problemOf(c.log, r, err)
	if p.Status != http.StatusBadRequest && p.Status != http.StatusConflict && p.Status != http.StatusForbidden {
		return err
	}
	d, lerr := c.loadReview(r, v, id)
	if lerr != nil {
		return lerr
	}
	keep(d)
	d.Errors = toFormErrors(p, fields)
	c.render(w, r, v, p.Status, "review", d)
	return nil
}

// revoke ends a grant; without a reason the access page shows the
// service's complaint next to that grant's reason field.
func (c *Console) revoke(w http.ResponseWriter, r *http.Request, v *view) error {
	id, reason := r.PostForm.Get("id"), r.PostForm.Get("reason")
	cx, cancel := ctx(r)
	defer cancel()
	if _, err := c.svc.RevokeGrant(cx, *v.Principal, id, reason); err != nil {
		p := problemOf(c.log, r, err)
		if p.Status != http.StatusBadRequest {
			return err
		}
		d, lerr := c.loadAccess(r, v)
		if lerr != nil {
			return lerr
		}
		d.GrantID, d.Errors = id, toFormErrors(p, map[string]string{"/reason": "reason"})
		c.render(w, r, v, p.Status, "access", d)
		return nil
	}
	http.Redirect(w, r, Prefix+"/access?done=revoked", http.StatusSeeOther)
	return nil
}
