package web

import (
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"maps"
	"regexp"
	"slices"
	"strings"
	"testing"

	"github.com/turbina-dialer/turbina/storage"
)

// publicOperations are served without a token and are not in the route table.
var publicOperations = []string{"GET /healthz", "GET /readyz", "GET /metrics"}

// requiredSchemas are the component schemas the API promises to describe.
var requiredSchemas = []string{
	"Campaign", "Rung", "Pacing", "Schedule", "Window", "Contact", "Rejection", "ImportReport",
	"Import", "DNCEntry", "User", "Token", "AuditEntry", "CampaignStats", "Error",
}

// openAPIDoc is the part of an OpenAPI document the checks read.
type openAPIDoc struct {
	OpenAPI    string                                `json:"openapi"`
	Security   []map[string][]string                 `json:"security"`
	Paths      map[string]map[string]json.RawMessage `json:"paths"`
	Components struct {
		Schemas         map[string]json.RawMessage `json:"schemas"`
		Parameters      map[string]openAPIParam    `json:"parameters"`
		Responses       map[string]json.RawMessage `json:"responses"`
		SecuritySchemes map[string]struct {
			Type   string `json:"type"`
			Scheme string `json:"scheme"`
		} `json:"securitySchemes"`
	} `json:"components"`
}

type openAPIParam struct {
	Ref  string `json:"$ref"`
	Name string `json:"name"`
	In   string `json:"in"`
}

type openAPIOperation struct {
	OperationID string                     `json:"operationId"`
	Summary     string                     `json:"summary"`
	Parameters  []openAPIParam             `json:"parameters"`
	Responses   map[string]json.RawMessage `json:"responses"`
	Security    *[]map[string][]string     `json:"security"`
	Roles       []string                   `json:"x-roles"`
	RoleRules   map[string]string          `json:"x-role-rules"`
}

var httpMethods = []string{"get", "put", "post", "delete", "options", "head", "patch", "trace"}

// checkOpenAPI compares an OpenAPI document with the route table and returns every
// disagreement; an empty result means the document describes exactly the API served.
func checkOpenAPI(raw []byte, routes []route) []string {
	var problems []string
	bad := func(format string, args ...any) { problems = append(problems, fmt.Sprintf(format, args...)) }

	var doc openAPIDoc
	if err := json.Unmarshal(raw, &doc); err != nil {
		return []string{"document is not valid JSON: " + err.Error()}
	}
	if !strings.HasPrefix(doc.OpenAPI, "3.") {
		bad("openapi version is %q, want 3.x", doc.OpenAPI)
	}
	if s, ok := doc.Components.SecuritySchemes["bearerAuth"]; !ok || s.Type != "http" || s.Scheme != "bearer" {
		bad("components.securitySchemes.bearerAuth must be an http bearer scheme")
	}
	if len(doc.Security) != 1 || doc.Security[0]["bearerAuth"] == nil {
		bad("bearerAuth must be the global security requirement, got %v", doc.Security)
	}
	for _, name := range requiredSchemas {
		if _, ok := doc.Components.Schemas[name]; !ok {
			bad("components.schemas.%s is missing", name)
		}
	}

	documented := map[string]openAPIOperation{}
	opIDs := map[string]string{}
	for path, item := range doc.Paths {
		// Path-level parameters apply to every operation of the path.
		var common []openAPIParam
		if p, ok := item["parameters"]; ok {
			if err := json.Unmarshal(p, &common); err != nil {
				bad("%s: parameters: %v", path, err)
			}
		}
		for key, body := range item {
			if !slices.Contains(httpMethods, key) {
				continue
			}
			key := strings.ToUpper(key) + " " + path
			var op openAPIOperation
			if err := json.Unmarshal(body, &op); err != nil {
				bad("%s: %v", key, err)
				continue
			}
			op.Parameters = append(op.Parameters, common...)
			documented[key] = op
			if op.OperationID == "" || op.Summary == "" {
				bad("%s: needs an operationId and a summary", key)
			}
			if other, dup := opIDs[op.OperationID]; dup {
				bad("%s: operationId %q is also used by %s", key, op.OperationID, other)
			}
			opIDs[op.OperationID] = key
			checkPathParams(key, path, op, doc, bad)
			checkRefs(key, body, doc, bad)
		}
	}

	served := map[string]route{}
	for _, rt := range routes {
		key := rt.method + " " + rt.path
		served[key] = rt
		op, ok := documented[key]
		if !ok {
			bad("%s is served but not documented", key)
			continue
		}
		want := roleNames(rt.roles)
		got := slices.Sorted(slices.Values(op.Roles))
		if !slices.Equal(got, want) {
			bad("%s: x-roles %v, but the route table allows %v", key, got, want)
		}
		wantRules := map[string]string(nil)
		if slices.Contains(campaignEditOperations, key) {
			wantRules = roleRules()
		}
		if !maps.Equal(op.RoleRules, wantRules) {
			bad("%s: x-role-rules %v, but the role table says %v", key, op.RoleRules, wantRules)
		}
		if op.Security != nil && len(*op.Security) == 0 {
			bad("%s: needs a token but is documented as public", key)
		}
		if !slices.ContainsFunc([]string{"101", "200", "201", "204"}, func(code string) bool { return op.Responses[code] != nil }) {
			bad("%s: documents no success response", key)
		}
		if _, ok := op.Responses["401"]; !ok {
			bad("%s: does not document 401", key)
		}
		if len(want) < 4 {
			if _, ok := op.Responses["403"]; !ok {
				bad("%s: is closed to some roles but does not document 403", key)
			}
		}
	}
	for key, op := range documented {
		if _, ok := served[key]; ok {
			continue
		}
		if !slices.Contains(publicOperations, key) {
			bad("%s is documented but not served", key)
			continue
		}
		if op.Security == nil || len(*op.Security) != 0 {
			bad("%s is public: it must say security: []", key)
		}
		if op.Roles != nil {
			bad("%s is public: it must not list x-roles", key)
		}
	}
	for _, key := range publicOperations {
		if _, ok := documented[key]; !ok {
			bad("%s is not documented", key)
		}
	}
	slices.Sort(problems)
	return problems
}

func roleNames(roles []storage.Role) []string {
	out := make([]string, len(roles))
	for i, r := range roles {
		out[i] = string(r)
	}
	slices.Sort(out)
	return out
}

var pathParamPattern = regexp.MustCompile(`\{([^}]+)\}`)

// checkPathParams makes sure each {name} in the path is declared as a path parameter
// and nothing else is.
func checkPathParams(key, path string, op openAPIOperation, doc openAPIDoc, bad func(string, ...any)) {
	declared := map[string]bool{}
	for _, p := range op.Parameters {
		if p.Ref != "" {
			name, ok := strings.CutPrefix(p.Ref, "#/components/parameters/")
			if !ok {
				bad("%s: parameter $ref %q does not point into components.parameters", key, p.Ref)
				continue
			}
			p = doc.Components.Parameters[name]
		}
		if p.In == "path" {
			declared[p.Name] = true
		}
	}
	inPath := map[string]bool{}
	for _, m := range pathParamPattern.FindAllStringSubmatch(path, -1) {
		inPath[m[1]] = true
		if !declared[m[1]] {
			bad("%s: path parameter {%s} is not declared", key, m[1])
		}
	}
	for name := range declared {
		if !inPath[name] {
			bad("%s: declares path parameter %q that is not in the path", key, name)
		}
	}
}

var refPattern = regexp.MustCompile(`"\$ref":\s*"#/components/(schemas|parameters|responses)/([^"]+)"`)

// checkRefs makes sure every local $ref in an operation resolves.
func checkRefs(key string, body json.RawMessage, doc openAPIDoc, bad func(string, ...any)) {
	for _, m := range refPattern.FindAllStringSubmatch(string(body), -1) {
		var ok bool
		switch m[1] {
		case "schemas":
			_, ok = doc.Components.Schemas[m[2]]
		case "parameters":
			_, ok = doc.Components.Parameters[m[2]]
		case "responses":
			_, ok = doc.Components.Responses[m[2]]
		}
		if !ok {
			bad("%s: $ref #/components/%s/%s does not resolve", key, m[1], m[2])
		}
	}
}

func testServer(t *testing.T) *Server {
	t.Helper()
	// The route table does not touch the store; a nil one is enough to read it.
	return New(nil, slog.New(slog.NewTextHandler(io.Discard, nil)), Config{})
}

// TestOpenAPIMatchesRoutes keeps web/openapi.json true to the route table: the same
// operations, the same roles, declared parameters and resolvable references.
func TestOpenAPIMatchesRoutes(t *testing.T) {
	s := testServer(t)
	if len(s.routes) == 0 {
		t.Fatal("route table is empty")
	}
	for _, p := range checkOpenAPI(openAPIDocument, s.routes) {
		t.Error(p)
	}
}

// TestOpenAPISchemasResolve checks $refs inside component schemas and responses,
// which TestOpenAPIMatchesRoutes does not reach through operations.
func TestOpenAPISchemasResolve(t *testing.T) {
	var doc openAPIDoc
	if err := json.Unmarshal(openAPIDocument, &doc); err != nil {
		t.Fatal(err)
	}
	for _, section := range []map[string]json.RawMessage{doc.Components.Schemas, doc.Components.Responses} {
		for _, name := range slices.Sorted(maps.Keys(section)) {
			checkRefs(name, section[name], doc, func(f string, a ...any) { t.Errorf(f, a...) })
		}
	}
}

// TestOpenAPICheckDetectsDrift proves the check above can fail: a route added,
// removed or given other roles without documenting it is caught.
func TestOpenAPICheckDetectsDrift(t *testing.T) {
	s := testServer(t)
	withExtra := append(slices.Clone(s.routes), route{method: "POST", path: "/api/v1/campaigns/{id}/clone", roles: salesRoles})
	withoutFirst := slices.Clone(s.routes[1:])
	otherRoles := slices.Clone(s.routes)
	for i, rt := range otherRoles {
		if rt.method == "PATCH" && rt.path == "/api/v1/campaigns/{id}/pacing" {
			otherRoles[i].roles = allRoles
		}
	}
	var ruleless map[string]any
	if err := json.Unmarshal(openAPIDocument, &ruleless); err != nil {
		t.Fatal(err)
	}
	patch := ruleless["paths"].(map[string]any)["/api/v1/campaigns/{id}"].(map[string]any)["patch"].(map[string]any)
	delete(patch, "x-role-rules")
	withoutRules, err := json.Marshal(ruleless)
	if err != nil {
		t.Fatal(err)
	}
	var badDoc map[string]any
	if err := json.Unmarshal(openAPIDocument, &badDoc); err != nil {
		t.Fatal(err)
	}
	badDoc["openapi"] = "2.0"
	oldVersion, err := json.Marshal(badDoc)
	if err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name   string
		doc    []byte
		routes []route
		want   string
	}{
		{"undocumented route", openAPIDocument, withExtra, "POST /api/v1/campaigns/{id}/clone is served but not documented"},
		{"unserved operation", openAPIDocument, withoutFirst, s.routes[0].method + " " + s.routes[0].path + " is documented but not served"},
		{"roles changed", openAPIDocument, otherRoles, "PATCH /api/v1/campaigns/{id}/pacing: x-roles"},
		{"field rules missing", withoutRules, s.routes, "PATCH /api/v1/campaigns/{id}: x-role-rules"},
		{"not openapi 3", oldVersion, s.routes, `openapi version is "2.0"`},
		{"not JSON", []byte("{"), s.routes, "document is not valid JSON"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			problems := checkOpenAPI(tt.doc, tt.routes)
			if !slices.ContainsFunc(problems, func(p string) bool { return strings.HasPrefix(p, tt.want) }) {
				t.Errorf("problems = %q, want one starting with %q", problems, tt.want)
			}
		})
	}
}
