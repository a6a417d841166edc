package review

import (
	"encoding/json"
	"strings"
	"testing"

	"github.com/stretchr/testify/require"
)

// TestOpenAPIMatchesRoutes checks the served OpenAPI document against the
// route table both ways, and that public routes are the ones it marks as
// needing no session.
func TestOpenAPIMatchesRoutes(t *testing.T) {
	var doc struct {
		OpenAPI string                                `json:"openapi"`
		Paths   map[string]map[string]json.RawMessage `json:"paths"`
	}
	require.NoError(t, json.Unmarshal(openAPI, &doc))
	require.Equal(t, "3.1.0", doc.OpenAPI)
	s := &server{}
	routed := map[string]bool{}
	for _, rt := range s.routeTable() {
		key := strings.ToLower(rt.method) + " " + rt.path
		routed[key] = true
		op, ok := doc.Paths[rt.path][strings.ToLower(rt.method)]
		require.True(t, ok, "route %s is not in openapi.json", key)
		var o struct {
			Security  *[]any                     `json:"security"`
			Responses map[string]json.RawMessage `json:"responses"`
		}
		require.NoError(t, json.Unmarshal(op, &o), key)
		require.Equal(t, rt.access == public, o.Security != nil && len(*o.Security) == 0, "%s: public iff security is empty", key)
		require.NotEmpty(t, o.Responses, key)
		if strings.Contains(rt.path, "{id}") {
			require.Contains(t, o.Responses, "400", "%s documents a bad id", key)
		}
		if rt.access == adminOnly {
			require.Contains(t, o.Responses, "403", key)
		}
	}
	for p, ops := range doc.Paths {
		for m := range ops {
			require.True(t, routed[m+" "+p], "openapi.json documents %s %s, which is not routed", m, p)
		}
	}
}
