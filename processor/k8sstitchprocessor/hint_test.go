package k8sstitchprocessor

import (
	"testing"

	"github.com/stretchr/testify/assert"
)

func TestParseRequest(t *testing.T) {
	for _, tc := range []struct {
		method, target string
		want           joinHint
		ok             bool
	}{
		{"POST", "/api/v1/namespaces/default/pods/web-1/binding", joinHint{kind: hintPath, objKind: "Pod", namespace: "default", name: "web-1", verb: verbBinding}, true},
		{"PATCH", "/api/v1/namespaces/default/pods/web-1/status", joinHint{kind: hintPath, objKind: "Pod", namespace: "default", name: "web-1", verb: verbStatus}, true},
		{"PUT", "/apis/apps/v1/namespaces/x/deployments/web/status", joinHint{kind: hintPath, objKind: "Deployment", namespace: "x", name: "web", verb: verbStatus}, true},
		{"DELETE", "/apis/batch/v1/namespaces/x/jobs/nightly", joinHint{kind: hintPath, objKind: "Job", namespace: "x", name: "nightly", verb: verbDelete}, true},
		{"PUT", "/api/v1/nodes/node-1/status", joinHint{kind: hintPath, objKind: "Node", name: "node-1", verb: verbStatus}, true},
		// Creates post to the collection: the etcd key names the object.
		{"POST", "/api/v1/namespaces/default/pods", joinHint{}, false},
		// Reads belong to no operation.
		{"GET", "/api/v1/namespaces/default/pods/web-1", joinHint{}, false},
		// Lease renewals: the idle cluster's writes.
		{"PUT", "/apis/coordination.k8s.io/v1/namespaces/kube-node-lease/leases/node-1", joinHint{}, false},
		// A custom resource that happens to be called pods, or apps in the
		// wrong group.
		{"PATCH", "/apis/example.com/v1/namespaces/x/pods/a", joinHint{}, false},
		{"PATCH", "/api/v1/namespaces/x/deployments/a", joinHint{}, false},
		{"PUT", "/healthz", joinHint{}, false},
	} {
		got, ok := parseRequest(tc.method, tc.target)
		assert.Equal(t, tc.ok, ok, "%s %s", tc.method, tc.target)
		assert.Equal(t, tc.want, got, "%s %s", tc.method, tc.target)
	}
}
