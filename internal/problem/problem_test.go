package problem

import (
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"testing"
)

func TestWriteAndRead(t *testing.T) {
	rec := httptest.NewRecorder()
	req := httptest.NewRequest(http.MethodPost, "/v1/members", nil)
	p := New(http.StatusBadRequest, "invalid-input", "invalid member")
	p.Errors = []FieldError{{Pointer: "/code", Message: "bad code"}}
	Write(rec, req, p)

	if rec.Code != http.StatusBadRequest {
		t.Fatalf("status = %d", rec.Code)
	}
	if ct := rec.Header().Get("Content-Type"); ct != ContentType {
		t.Fatalf("content type = %q", ct)
	}
	var raw map[string]any
	if err := json.Unmarshal(rec.Body.Bytes(), &raw); err != nil {
		t.Fatal(err)
	}
	for _, k := range []string{"type", "title", "status", "detail", "instance", "errors"} {
		if _, ok := raw[k]; !ok {
			t.Errorf("member %q missing from %s", k, rec.Body)
		}
	}
	got := Read(rec.Result(), rec.Body.Bytes())
	if got.Type != TypePrefix+"invalid-input" || got.Instance != "/v1/members" || got.Errors[0].Pointer != "/code" {
		t.Fatalf("round trip lost data: %+v", got)
	}
}

func TestReadNonProblemBody(t *testing.T) {
	resp := &http.Response{StatusCode: http.StatusBadGateway}
	got := Read(resp, []byte("<html>oops</html>"))
	if got.Status != http.StatusBadGateway || got.Title != "Bad Gateway" {
		t.Fatalf("got %+v", got)
	}
}
