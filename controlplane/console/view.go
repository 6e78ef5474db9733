package console

import (
	"bytes"
	"encoding/json"
	"fmt"
	"html/template"
	"io/fs"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"strings"
	"time"

	"github.com/lienthong/lienthong/catalog"
	"github.com/lienthong/lienthong/controlplane/api"
	"github.com/lienthong/lienthong/controlplane/auth"
	"github.com/lienthong/lienthong/controlplane/service"
	"github.com/lienthong/lienthong/internal/problem"
)

// view is what every page template gets: who is signed in, the language,
// the CSRF token for its forms, the warnings that must not be missed, and
// the page's own data.
type view struct {
	Lang      string
	Principal *auth.Principal
	Citizen   bool
	CSRF      string
	Path      string
	Warnings  []warning
	Data      any
}

// T translates a label key into the view's language.
func (v *view) T(key string) string { return translate(v.Lang, key) }

// Can reports whether the signed-in principal holds one of roles (the
// platform operator can everything). Templates use it to show only the
// actions the service would allow; the service checks again.
func (v *view) Can(roles ...string) bool {
	if v.Principal == nil {
		return false
	}
	if v.Principal.IsPlatformAdmin() {
		return true
	}
	for _, r := range roles {
		if string(v.Principal.Role) == r {
			return true
		}
	}
	return false
}

// warning is a banner line: a lapsing assessment or an expiring certificate.
type warning struct {
	Text  string
	Level string // "warn" or "bad"
}

// errorPage is the data of the error page.
type errorPage struct {
	Message string
	Problem *problem.Problem
}

func (c *Console) newView(r *http.Request, s *session) *view {
	v := &view{Lang: langOf(r), CSRF: s.csrf, Path: r.URL.Path, Citizen: s.personalID != ""}
	p, err := c.principal(r.Context(), s)
	if err != nil {
		c.log.Error("console: principal", "error", err.Error())
	}
	v.Principal = p
	if p != nil {
		v.Warnings = c.warnings(r, v)
	}
	return v
}

var templateFuncs = template.FuncMap{
	"date": func(t time.Time) string {
		if t.IsZero() {
			return "—"
		}
		return t.UTC().Format("2006-01-02 15:04 UTC")
	},
	"day":  func(t time.Time) string { return t.UTC().Format("2006-01-02") },
	"join": func(xs []string) string { return strings.Join(xs, ", ") },
	"member": func(system string) string {
		id, err := catalog.ParseSystemID(system)
		if err != nil {
			return system
		}
		return id.Member
	},
	"json": func(v any) (string, error) {
		b, err := json.Marshal(v)
		return string(b), err
	},
	"errOf": func(f *formErrors, name string) fieldError { return fieldError{Name: name, Msg: f.Field(name)} },
	"modes": func() []string {
		return []string{string(catalog.ModeQuery), string(catalog.ModeVerify), string(catalog.ModeFeed)}
	},
	"masks": func() []catalog.Mask { return masks },
	"revokeOf": func(v *view, g service.GrantView, d *accessData) revokeForm {
		f := revokeForm{V: v, G: g}
		if d.GrantID == g.ID {
			f.Msg = d.Errors.Field("reason")
		}
		return f
	},
	"has": func(xs []string, x string) bool {
		for _, y := range xs {
			if y == x {
				return true
			}
		}
		return false
	},
}

// parsePages parses each page template together with the layout.
func parsePages() (map[string]*template.Template, error) {
	names, err := fs.Glob(templateFS, "templates/*.html")
	if err != nil {
		return nil, err
	}
	out := map[string]*template.Template{}
	for _, n := range names {
		base := strings.TrimSuffix(strings.TrimPrefix(n, "templates/"), ".html")
		if base == "layout" {
			continue
		}
		t, err := template.New("layout.html").Funcs(templateFuncs).ParseFS(templateFS, "templates/layout.html", n)
		if err != nil {
			return nil, fmt.Errorf("console template %s: %w", n, err)
		}
		out[base] = t
	}
	return out, nil
}

// render writes a page. A template error becomes a plain 500; the half
// page is never sent because it renders into a buffer first.
func (c *Console) render(w http.ResponseWriter, r *http.Request, v *view, status int, name string, data any) {
	v.Data = data
	t, ok := c.pages[name]
	if !ok {
		c.log.Error("console: no template", "name", name)
		http.Error(w, "internal error", http.StatusInternalServerError)
		return
	}
	var buf bytes.Buffer
	if err := t.ExecuteTemplate(&buf, "layout.html", v); err != nil {
		c.log.Error("console: render", "page", name, "error", err.Error())
		http.Error(w, "internal error", http.StatusInternalServerError)
		return
	}
	w.Header().Set("Content-Type", "text/html; charset=utf-8")
	w.WriteHeader(status)
	_, _ = w.Write(buf.Bytes())
}

// problemOf turns a service error into the very problem the management API
// answers for it, by letting the API's own error writer write it: the
// console and the API can never word the same refusal differently.
func problemOf(log *slog.Logger, r *http.Request, err error) *problem.Problem {
	rec := httptest.NewRecorder()
	api.WriteErrorWith(log, rec, r, err)
	if rec.Code == http.StatusOK {
		return problem.New(http.StatusInternalServerError, "internal", "internal error")
	}
	var p problem.Problem
	if jerr := json.Unmarshal(rec.Body.Bytes(), &p); jerr != nil || p.Status == 0 {
		return problem.New(rec.Code, "internal", http.StatusText(rec.Code))
	}
	return &p
}

// revokeForm is one grant's revoke form, with its problem if it was refused.
type revokeForm struct {
	V   *view
	G   service.GrantView
	Msg string
}

// fieldError is one field's message, for the "err" template.
type fieldError struct{ Name, Msg string }

// formErrors are a form's problems by field name, plus what belongs to no
// field; the page shows each next to its field.
type formErrors struct {
	Fields  map[string]string
	General string
}

// Field returns the message for one form field.
func (f *formErrors) Field(name string) string {
	if f == nil {
		return ""
	}
	return f.Fields[name]
}

// Any reports whether there is anything to show.
func (f *formErrors) Any() bool { return f != nil && (len(f.Fields) > 0 || f.General != "") }

// toFormErrors places a problem's located complaints on the form fields
// named by fields (JSON pointer prefix → form field name); what fits no
// field goes to General.
func toFormErrors(p *problem.Problem, fields map[string]string) *formErrors {
	out := &formErrors{Fields: map[string]string{}}
	for _, e := range p.Errors {
		name, best := "", -1
		for ptr, f := range fields {
			if (e.Pointer == ptr || strings.HasPrefix(e.Pointer, ptr+"/")) && len(ptr) > best {
				name, best = f, len(ptr)
			}
		}
		if name == "" {
			out.General = joinMsg(out.General, e.Message)
			continue
		}
		out.Fields[name] = joinMsg(out.Fields[name], e.Message)
	}
	if len(p.Errors) == 0 {
		out.General = p.Detail
	}
	return out
}

func joinMsg(a, b string) string {
	if a == "" {
		return b
	}
	return a + "; " + b
}

func writeProblem(w http.ResponseWriter, r *http.Request, status int, kind, detail string) {
	problem.Write(w, r, problem.New(status, kind, detail))
}

// writeError answers a script's request with the API's problem for err.
func (c *Console) writeError(w http.ResponseWriter, r *http.Request, err error) {
	api.WriteErrorWith(c.log, w, r, err)
}

// home is the landing page: a citizen goes to their page, a visitor to the
// sign-in, and staff see what they may open.
func (c *Console) home(w http.ResponseWriter, r *http.Request, v *view) error {
	switch {
	case v.Citizen:
		http.Redirect(w, r, Prefix+"/citizen", http.StatusSeeOther)
	case v.Principal == nil:
		http.Redirect(w, r, Prefix+"/login", http.StatusSeeOther)
	default:
		c.render(w, r, v, http.StatusOK, "home", nil)
	}
	return nil
}
