package k8sstitchprocessor

import (
	"strings"
	"time"

	"go.opentelemetry.io/collector/pdata/pcommon"
	"go.opentelemetry.io/collector/pdata/ptrace"

	"github.com/kubestitch/kubestitch/internal/apipath"
	"github.com/kubestitch/kubestitch/internal/fragment"
)

// hintKind orders the ways an app span can name its object, worst first.
type hintKind uint8

const (
	hintNone hintKind = iota
	// hintCreateKey: an etcd span's key names the object a create stored.
	hintCreateKey
	// hintPath: an apiserver request path names the object.
	hintPath
	// hintUID: the span carries the object's UID (kubelet, admission, any
	// workload with k8s.*.uid).
	hintUID
)

// requestVerb is what an apiserver request did to the object a hint names.
type requestVerb uint8

const (
	verbNone requestVerb = iota
	verbCreate
	verbUpdate
	verbStatus
	verbBinding
	verbDelete
	verbOther
)

// joinHint is what an app span says about the object it worked on. Small
// fields first: it is part of every trace's state.
type joinHint struct {
	kind      hintKind
	verb      requestVerb
	uid       string
	objKind   string
	namespace string
	name      string
	at        time.Time
}

// uidKeyRank ranks the span attributes that carry an object UID, best
// (lowest) first; ok is false for any other key. A switch, not a map: it
// runs for every attribute of every span.
func uidKeyRank(k string) (rank int, ok bool) {
	switch k {
	case fragment.KeyUID:
		return 0, true
	case fragment.KeyPodUID:
		return 1, true
	case "k8s.replicaset.uid":
		return 2, true
	case "k8s.deployment.uid":
		return 3, true
	case "k8s.statefulset.uid":
		return 4, true
	case "k8s.daemonset.uid":
		return 5, true
	case "k8s.job.uid":
		return 6, true
	case "k8s.cronjob.uid":
		return 7, true
	}
	return 0, false
}

// noUID is the rank of "no UID seen".
const noUID = 8

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

// spanAttrs is what the processor reads of one span, in one pass over its
// attributes (this runs for every span): a fragment's key, or what an app
// span says about its object.
type spanAttrs struct {
	fk     fragmentKey
	isFrag bool
	// uid is the best object UID seen (uidRank its rank, uidKeyRank).
	uid                                           string
	uidRank                                       int
	target, method, key, admissionOp, subresource string
	dryRun                                        bool
}

// scan fills a from one span, reusing it from span to span.
func (a *spanAttrs) scan(s ptrace.Span) {
	*a = spanAttrs{uidRank: noUID}
	s.Attributes().Range(func(k string, v pcommon.Value) bool {
		switch k {
		case fragment.KeyLevel:
			a.fk.level, a.isFrag = v.Str(), true
		case fragment.KeyUID:
			a.fk.uid = v.Str()
			if a.fk.uid != "" {
				a.uid, a.uidRank = a.fk.uid, 0
			}
		case fragment.KeyKind:
			a.fk.kind = v.Str()
		case fragment.KeyNamespace:
			a.fk.namespace = v.Str()
		case fragment.KeyName:
			a.fk.name = v.Str()
		case fragment.KeyOwnerUID:
			a.fk.owner = v.Str()
		case fragment.KeyTrigger:
			a.fk.trigger = v.Str()
		case fragment.KeyTraceparent:
			a.fk.traceparent = v.Str()
		case fragment.KeyTriggerTime:
			a.fk.triggerTime = time.Unix(0, v.Int())
		case "http.target":
			a.target = v.Str()
		case "http.request.method", "http.method":
			a.method = v.Str()
		case "key":
			a.key = v.Str()
		case fragment.KeyAdmissionOperation:
			a.admissionOp = v.Str()
		case fragment.KeyAdmissionSubresource:
			a.subresource = v.Str()
		case fragment.KeyAdmissionDryRun:
			a.dryRun = v.Bool()
		default:
			if i, ok := uidKeyRank(k); ok && i < a.uidRank && v.Str() != "" {
				a.uid, a.uidRank = v.Str(), i
			}
		}
		return true
	})
}

// hint is the best join hint of an app span scanned into a; resUID is
// the pod UID of the span's resource, if any.
func (a *spanAttrs) hint(s ptrace.Span, resUID string) joinHint {
	if a.uid == "" && resUID == "" && a.target == "" && a.key == "" {
		return joinHint{}
	}
	if a.dryRun {
		// A dry run stores nothing: its object never appears, so its
		// request belongs to no operation.
		return joinHint{}
	}
	at := s.StartTimestamp().AsTime()
	uid := a.uid
	if a.admissionOp != "" && uid != "" {
		// The k8sadmission receiver's span: the object's UID, and what
		// the request did to it, inside the request's own trace.
		return joinHint{kind: hintUID, uid: uid, verb: admissionVerb(a.admissionOp, a.subresource), at: at}
	}
	if uid == "" {
		uid = resUID
	}
	if uid != "" {
		return joinHint{kind: hintUID, uid: uid, at: at}
	}
	if a.target != "" {
		if h, ok := parseRequest(a.method, a.target); ok {
			h.at = at
			return h
		}
		return joinHint{}
	}
	if a.key != "" && strings.HasPrefix(s.Name(), "Create etcd3") {
		if h, ok := parseEtcdKey(a.key); ok {
			h.at = at
			return h
		}
	}
	return joinHint{}
}

// admissionVerb maps an admission review's operation and subresource to
// the verbs of path hints.
func admissionVerb(op, subresource string) requestVerb {
	switch {
	case op == "CREATE" && subresource == "":
		return verbCreate
	case op == "CREATE" && subresource == "binding":
		return verbBinding
	case op == "UPDATE" && subresource == "status":
		return verbStatus
	case op == "UPDATE" && subresource == "":
		return verbUpdate
	case op == "DELETE" && subresource == "":
		return verbDelete
	}
	return verbOther
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
}

// readFragment reads a span's fragment key; isFrag is false for an app
// span.
func readFragment(s ptrace.Span) (k fragmentKey, isFrag bool) {
	var a spanAttrs
	a.scan(s)
	return a.fk, a.isFrag
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
