package k8sstitchprocessor

import (
	"strings"
	"time"

	"go.opentelemetry.io/collector/pdata/pcommon"

	"github.com/kubestitch/kubestitch/internal/apipath"
)

// resourceKind maps an API resource to the kind the graph knows it by: a
// switch, not a map, as it runs for every apiserver write.
func resourceKind(resource string) (string, bool) {
	switch resource {
	case "pods":
		return "Pod", true
	case "replicasets":
		return "ReplicaSet", true
	case "deployments":
		return "Deployment", true
	case "statefulsets":
		return "StatefulSet", true
	case "daemonsets":
		return "DaemonSet", true
	case "jobs":
		return "Job", true
	case "cronjobs":
		return "CronJob", true
	case "nodes":
		return "Node", true
	}
	return "", false
}

// kindGroups are the API groups of the kinds resourceKind knows: a request
// to any other group (a lease renewal, the bulk of an idle cluster's
// writes; a custom resource that happens to be called "pods") names none.
func kindGroup(group, kind string) bool {
	switch kind {
	case "Pod", "Node":
		return group == ""
	case "Job", "CronJob":
		return group == "batch"
	}
	return group == "apps"
}

// knownGroupPath says whether target may name an object of a known kind:
// under /api/ (core) or /apis/apps/ or /apis/batch/. It runs before the
// path is parsed.
func knownGroupPath(target string) bool {
	rest, ok := strings.CutPrefix(target, "/apis/")
	if !ok {
		return true
	}
	return strings.HasPrefix(rest, "apps/") || strings.HasPrefix(rest, "batch/")
}

// parseRequest reads an apiserver RequestURI: only writes that name an
// object of a kind the graph knows are hints; reads, lists and watches
// belong to no operation.
func parseRequest(method, target string) (joinHint, bool) {
	switch method {
	case "POST", "PUT", "PATCH", "DELETE":
	default:
		return joinHint{}, false
	}
	if !knownGroupPath(target) {
		return joinHint{}, false
	}
	path, ok := apipath.Parse(target)
	if !ok {
		return joinHint{}, false
	}
	kind, ok := resourceKind(path.Resource)
	if !ok || !kindGroup(path.Group, kind) {
		return joinHint{}, false
	}
	h := joinHint{kind: hintPath, objKind: kind, namespace: path.Namespace, name: path.Name}
	sub := path.Subresource
	switch {
	case method == "POST" && h.name == "":
		// A create posts to the collection: the name is in the etcd key.
		return joinHint{}, false
	case h.name == "":
		return joinHint{}, false
	case method == "POST" && sub == "binding":
		h.verb = verbBinding
	case (method == "PUT" || method == "PATCH") && sub == "status":
		h.verb = verbStatus
	case (method == "PUT" || method == "PATCH") && sub == "":
		h.verb = verbUpdate
	case method == "DELETE" && sub == "":
		h.verb = verbDelete
	case method == "POST" || method == "PUT" || method == "PATCH":
		h.verb = verbOther
	default:
		return joinHint{}, false
	}
	return h, true
}

// parseEtcdKey reads "/pods/NS/NAME" (or "/registry/pods/NS/NAME") of a
// Create etcd3 span.
func parseEtcdKey(key string) (joinHint, bool) {
	parts := strings.Split(strings.Trim(key, "/"), "/")
	if len(parts) > 0 && parts[0] == "registry" {
		parts = parts[1:]
	}
	// deployments and friends live under their group: /deployments/NS/NAME
	// in the default storage layout, as do pods.
	if len(parts) < 2 {
		return joinHint{}, false
	}
	kind, ok := resourceKind(parts[0])
	if !ok {
		return joinHint{}, false
	}
	h := joinHint{kind: hintCreateKey, objKind: kind, verb: verbCreate}
	if kind == "Node" {
		h.name = parts[1]
	} else if len(parts) >= 3 {
		h.namespace, h.name = parts[1], parts[2]
	} else {
		return joinHint{}, false
	}
	return h, true
}

// fragmentKey is the object key of a fragment.
type fragmentKey struct {
	level, uid, kind, namespace, name, owner, trigger, traceparent string
	triggerTime                                                    time.Time
	// resumed: an object span sent for an operation that converged out of
	// a watcher's sight (fragment.KeyResumed).
	resumed bool
	// reannounced: a trigger sent again while its operation is open
	// (fragment.KeyReannounced).
	reannounced bool
	// listed: a trigger a watcher found at its first list, timed by the
	// object (fragment.TimeSourceObject), not seen happen.
	listed bool
}

// valid says whether a fragment carries what a join needs.
func (k fragmentKey) valid() bool { return k.uid != "" && k.trigger != "" && k.kind != "" }

// parseTraceparent reads a W3C traceparent "00-<trace>-<span>-<flags>".
func parseTraceparent(tp string) (pcommon.TraceID, pcommon.SpanID, bool) {
	var tid pcommon.TraceID
	var sid pcommon.SpanID
	parts := strings.Split(strings.TrimSpace(tp), "-")
	if len(parts) != 4 || len(parts[1]) != 32 || len(parts[2]) != 16 {
		return tid, sid, false
	}
	if !decodeHex(tid[:], parts[1]) || !decodeHex(sid[:], parts[2]) || tid.IsEmpty() || sid.IsEmpty() {
		return tid, sid, false
	}
	return tid, sid, true
}

func decodeHex(dst []byte, s string) bool {
	for i := range dst {
		hi, ok1 := unhex(s[2*i])
		lo, ok2 := unhex(s[2*i+1])
		if !ok1 || !ok2 {
			return false
		}
		dst[i] = hi<<4 | lo
	}
	return true
}

func unhex(c byte) (byte, bool) {
	switch {
	case '0' <= c && c <= '9':
		return c - '0', true
	case 'a' <= c && c <= 'f':
		return c - 'a' + 10, true
	case 'A' <= c && c <= 'F':
		return c - 'A' + 10, true
	}
	return 0, false
}
