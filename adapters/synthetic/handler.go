package synthetic

import (
	"encoding/json"
	"net/http"
	"slices"
	"sort"
	"strconv"
	"strings"
)

// List page sizes of Handler.
const (
	defaultListLimit = 100
	maxListLimit     = 1000
)

// Handler serves citizens as the population database's REST backend:
//
//	GET /citizens/{personalId}       one record, or 404
//	GET /citizens?limit=N&after=ID   records in personal id order, N from 1
//	                                 to 1000 (default 100), after the given id
//
// Bodies are the records' JSON (application/json); errors are RFC 9457
// problem details. Records are encoded once, up front, so the handler
// costs a benchmark little more than the network does. citizens must not be
// modified afterwards.
func Handler(citizens []Citizen) http.Handler {
	h := &handler{byID: make(map[string]int, len(citizens))}
	order := make([]int, len(citizens))
	for i := range citizens {
		order[i] = i
	}
	sort.SliceStable(order, func(a, b int) bool { return citizens[order[a]].PersonalID < citizens[order[b]].PersonalID })
	for _, i := range order {
		body, err := json.Marshal(&citizens[i])
		if err != nil {
			panic("synthetic: encoding a citizen: " + err.Error()) // plain structs of strings: cannot fail
		}
		if _, dup := h.byID[citizens[i].PersonalID]; dup {
			continue // the first record with an id wins, as a primary key would have it
		}
		h.byID[citizens[i].PersonalID] = len(h.ids)
		h.ids = append(h.ids, citizens[i].PersonalID)
		h.bodies = append(h.bodies, body)
	}
	mux := http.NewServeMux()
	mux.HandleFunc("GET /citizens/{personalId}", h.get)
	mux.HandleFunc("GET /citizens", h.list)
	mux.HandleFunc("/", unknownResource)
	return mux
}

type handler struct {
	ids    []string // sorted
	bodies [][]byte // JSON, parallel to ids
	byID   map[string]int
}

func (h *handler) get(w http.ResponseWriter, r *http.Request) {
	i, ok := h.byID[r.PathValue("personalId")]
	if !ok {
		problem(w, http.StatusNotFound, "no citizen has this personal identification number")
		return
	}
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set("Content-Length", strconv.Itoa(len(h.bodies[i])))
	w.Write(h.bodies[i])
}

func (h *handler) list(w http.ResponseWriter, r *http.Request) {
	q := r.URL.Query()
	limit := defaultListLimit
	if v, ok := q["limit"]; ok {
		n, err := strconv.Atoi(strings.Join(v, ","))
		if err != nil || n < 1 || n > maxListLimit {
			problem(w, http.StatusBadRequest, "limit must be one whole number from 1 to 1000")
			return
		}
		limit = n
	}
	start := 0
	if v, ok := q["after"]; ok {
		if len(v) != 1 {
			problem(w, http.StatusBadRequest, "after must be given once")
			return
		}
		start, _ = slices.BinarySearch(h.ids, v[0])
		if start < len(h.ids) && h.ids[start] == v[0] {
			start++
		}
	}
	end := min(start+limit, len(h.ids))
	w.Header().Set("Content-Type", "application/json")
	size := 2
	for _, b := range h.bodies[start:end] {
		size += len(b) + 1
	}
	buf := make([]byte, 0, size)
	buf = append(buf, '[')
	for i, b := range h.bodies[start:end] {
		if i > 0 {
			buf = append(buf, ',')
		}
		buf = append(buf, b...)
	}
	buf = append(buf, ']')
	w.Write(buf)
}

// problem writes an RFC 9457 problem document.
func problem(w http.ResponseWriter, status int, detail string) {
	body, _ := json.Marshal(map[string]any{
		"type":   "about:blank",
		"title":  http.StatusText(status),
		"status": status,
		"detail": detail,
	})
	w.Header().Set("Content-Type", "application/problem+json")
	w.WriteHeader(status)
	w.Write(body)
}

// unknownResource answers what neither route serves: 405 for a method other
// than GET, else 404 naming the routes there are.
func unknownResource(w http.ResponseWriter, r *http.Request) {
	if r.Method != http.MethodGet && r.Method != http.MethodHead {
		w.Header().Set("Allow", "GET, HEAD")
		problem(w, http.StatusMethodNotAllowed, "only GET is served")
		return
	}
	problem(w, http.StatusNotFound, "no such resource; try /citizens or /citizens/{personalId}")
}
