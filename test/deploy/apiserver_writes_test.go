package deploy

import (
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/kubestitch/kubestitch/localcluster"
	"github.com/kubestitch/kubestitch/test/promtext"
)

// kube-apiserver's writes during a scale run, by class, from its metrics
// and its request spans.

// writeClasses are the apiserver writes a pod start makes.
var writeClasses = []string{"pod create", "pod binding", "pod status"}

// writeClass classifies a request by verb, resource and subresource.
func writeClass(verb, resource, subresource string) string {
	if resource != "pods" {
		return ""
	}
	switch {
	case verb == "POST" && subresource == "":
		return "pod create"
	case verb == "POST" && subresource == "binding":
		return "pod binding"
	case (verb == "PATCH" || verb == "PUT") && subresource == "status":
		return "pod status"
	}
	return ""
}

// apiserverWrites reads kube-apiserver's apiserver_request_total for the
// write classes.
func apiserverWrites(t *testing.T, cluster *localcluster.Cluster) map[string]float64 {
	body, err := cluster.Client.CoreV1().RESTClient().Get().AbsPath("/metrics").DoRaw(t.Context())
	require.NoError(t, err)
	samples, err := promtext.Parse(string(body))
	require.NoError(t, err)
	out := map[string]float64{}
	for _, s := range samples {
		if s.Name != "apiserver_request_total" {
			continue
		}
		if c := writeClass(s.Labels["verb"], s.Labels["resource"], s.Labels["subresource"]); c != "" {
			out[c] += s.Value
		}
	}
	return out
}

// namespaceOf is the namespace of a namespaced request path.
func namespaceOf(target string) string {
	parts := strings.Split(strings.Trim(target, "/"), "/")
	if len(parts) > 3 && parts[2] == "namespaces" {
		return parts[3]
	}
	return ""
}

// podOf is the pod of a pod request path (api/v1/namespaces/NS/pods/NAME/...).
func podOf(target string) string {
	path, _, _ := strings.Cut(target, "?")
	parts := strings.Split(strings.Trim(path, "/"), "/")
	if len(parts) > 5 && parts[4] == "pods" {
		return parts[5]
	}
	return ""
}

// podOp is one of a pod's operations, by its object span: a request
// outside every operation's trace is told by when it came against them.
type podOp struct {
	trigger    string
	start, end time.Time
}

// whenAgainst says when a request at came against its pod's operations:
// inside one, or how long after the last that ended before it.
func whenAgainst(at time.Time, ops []podOp) string {
	var last string
	var lastEnd time.Time
	for _, op := range ops {
		if !at.Before(op.start) && !at.After(op.end) {
			return "inside its pod's " + op.trigger
		}
		if op.end.Before(at) && op.end.After(lastEnd) {
			last, lastEnd = op.trigger, op.end
		}
	}
	switch gap := at.Sub(lastEnd); {
	case last == "" && len(ops) == 0:
		return "its pod has no operation"
	case last == "":
		return "before its pod's operations"
	case gap < time.Second:
		return "under 1 s after its pod's " + last + " ended"
	case gap < 10*time.Second:
		return "1-10 s after its pod's " + last + " ended"
	default:
		return "over 10 s after its pod's " + last + " ended"
	}
}

// requestClass classifies an apiserver server span by its method and path.
func requestClass(method, target string) string {
	path, _, _ := strings.Cut(target, "?")
	parts := strings.Split(strings.Trim(path, "/"), "/")
	// api/v1/namespaces/NS/pods[/NAME[/SUB]]
	if len(parts) < 5 || parts[0] != "api" || parts[2] != "namespaces" || parts[4] != "pods" {
		return ""
	}
	sub := ""
	if len(parts) == 7 {
		sub = parts[6]
	}
	if len(parts) == 5 || len(parts) == 7 {
		return writeClass(method, "pods", sub)
	}
	return ""
}
