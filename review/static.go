package review

import (
	"embed"
	"io/fs"
	"net/http"
	"strings"
)

// The page and its assets: plain HTML, JavaScript and CSS, no build step.
//
//go:embed static/*.html static/*.js static/*.css
var staticFiles embed.FS

//go:embed openapi.json
var openAPI []byte

func staticHandler() http.Handler {
	sub, err := fs.Sub(staticFiles, "static")
	if err != nil {
		panic(err) // the embedded tree is fixed at build time
	}
	fsrv := http.FileServerFS(sub)
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path == "" || strings.HasSuffix(r.URL.Path, "/") {
			http.NotFound(w, r) // no directory listings
			return
		}
		w.Header().Set("Cache-Control", "no-cache")
		fsrv.ServeHTTP(w, r)
	})
}

func (s *server) handleIndex(w http.ResponseWriter, r *http.Request) {
	b, err := staticFiles.ReadFile("static/index.html")
	if err != nil {
		http.Error(w, "page missing", http.StatusInternalServerError)
		return
	}
	w.Header().Set("Content-Type", "text/html; charset=utf-8")
	w.Header().Set("Cache-Control", "no-cache")
	_, _ = w.Write(b)
}

// OpenAPI returns the OpenAPI 3.1 document of the review API.
func OpenAPI() []byte { return append([]byte(nil), openAPI...) }

func (s *server) handleOpenAPI(w http.ResponseWriter, r *http.Request, c *reqCtx) error {
	w.Header().Set("Content-Type", "application/json; charset=utf-8")
	_, _ = w.Write(openAPI)
	return nil
}
