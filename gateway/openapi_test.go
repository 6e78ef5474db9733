package gateway_test

import (
	"context"
	"encoding/json"
	"net/http"
	"testing"

	"github.com/getkin/kin-openapi/openapi3"

	"github.com/lienthong/lienthong/gateway"
)

// TestAnswersMatchTheOpenAPIDocument checks real answers of the outbound
// listener, success and each kind of refusal, against the served document.
func TestAnswersMatchTheOpenAPIDocument(t *testing.T) {
	f := newFederation(t)
	c := f.systemClient(insurance)
	served := f.get(c, "/openapi.json", nil)
	if served.status != http.StatusOK {
		t.Fatalf("openapi.json: %d", served.status)
	}
	doc, err := openapi3.NewLoader().LoadFromData([]byte(served.raw))
	if err != nil || doc.Validate(context.Background()) != nil {
		t.Fatalf("served document invalid: %v", err)
	}
	query := doc.Paths.Find("/r/{provider}/{dataset}/{path}").Get
	verify := doc.Paths.Find("/v/{provider}/{dataset}/{record}").Post
	check := func(op *openapi3.Operation, a answer) {
		t.Helper()
		resp := op.Responses.Status(a.status)
		if resp == nil {
			t.Errorf("status %d is not documented", a.status)
			return
		}
		ct := a.header.Get("Content-Type")
		media := resp.Value.Content.Get(ct)
		if media == nil {
			t.Errorf("status %d: content type %q is not documented", a.status, ct)
			return
		}
		var v any
		if err := json.Unmarshal([]byte(a.raw), &v); err != nil {
			t.Errorf("status %d: body is not JSON", a.status)
			return
		}
		if media.Schema != nil && media.Schema.Value != nil {
			if err := media.Schema.Value.VisitJSON(v); err != nil {
				t.Errorf("status %d: body does not match the document: %v", a.status, err)
			}
		}
	}
	check(query, f.get(c, recordPath+citizenID, purposeHeader()))
	check(query, f.get(c, recordPath+citizenID, nil))
	check(query, f.get(c, recordPath+citizenID+"?fields=religion", purposeHeader()))
	check(query, f.get(c, recordPath+"001099999999", purposeHeader()))
	check(query, f.get(c, recordPath+"001090000003", purposeHeader()))
	a, err := f.call(c, http.MethodPost, "/v/"+population+"/population/"+citizenID,
		map[string]string{gateway.HeaderPurpose: purpose, "Content-Type": "application/json"}, `{"attributes":{"sex":"male"}}`)
	if err != nil {
		t.Fatal(err)
	}
	check(verify, a)
}
