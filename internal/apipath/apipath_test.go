package apipath

import (
	"testing"

	"github.com/stretchr/testify/assert"
)

func TestParse(t *testing.T) {
	for target, want := range map[string]Path{
		"/api/v1/namespaces/default/pods":                       {Namespace: "default", Resource: "pods"},
		"/api/v1/namespaces/default/pods/web-1/binding":         {Namespace: "default", Resource: "pods", Name: "web-1", Subresource: "binding"},
		"/apis/apps/v1/namespaces/x/deployments/y/status?dry=1": {Group: "apps", Namespace: "x", Resource: "deployments", Name: "y", Subresource: "status"},
		"/api/v1/nodes/node-1/status":                           {Resource: "nodes", Name: "node-1", Subresource: "status"},
		"/api/v1/namespaces/team-a":                             {Resource: "namespaces", Name: "team-a"},
		"/api/v1/namespaces/":                                   {Resource: "namespaces"},
	} {
		got, ok := Parse(target)
		assert.True(t, ok, target)
		assert.Equal(t, want, got, target)
	}
	for _, target := range []string{"", "/", "/api/v1", "/apis/apps/v1", "/healthz", "/openapi/v2", "/namespaces/x/pods"} {
		_, ok := Parse(target)
		assert.False(t, ok, target)
	}
}

func BenchmarkParse(b *testing.B) {
	b.ReportAllocs()
	for range b.N {
		Parse("/apis/apps/v1/namespaces/default/deployments/web/status?fieldManager=x")
	}
}
