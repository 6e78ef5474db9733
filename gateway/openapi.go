package gateway

import (
	"context"
	_ "embed"
	"encoding/json"
	"net/http"

	"github.com/getkin/kin-openapi/openapi3"
)

//go:embed openapi.yaml
var openAPIYAML []byte

// openAPIDocument is openapi.yaml as JSON, checked once at start.
var openAPIDocument = func() []byte {
	doc, err := openapi3.NewLoader().LoadFromData(openAPIYAML)
	if err == nil {
		err = doc.Validate(context.Background())
	}
	if err != nil {
		panic("gateway OpenAPI document: " + err.Error())
	}
	out, err := json.Marshal(doc)
	if err != nil {
		panic("gateway OpenAPI document: " + err.Error())
	}
	return out
}()

// OpenAPIDocument returns the outbound API's OpenAPI description as JSON.
func OpenAPIDocument() []byte { return openAPIDocument }

func serveOpenAPI(w http.ResponseWriter, _ *http.Request) {
	w.Header().Set("Content-Type", "application/json")
	_, _ = w.Write(openAPIDocument)
}
