package k8sstitchprocessor

import (
	"strings"
	"time"

	"go.opentelemetry.io/collector/pdata/pcommon"
	"go.opentelemetry.io/collector/pdata/ptrace"

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
		case fragment.KeyResumed:
			a.fk.resumed = v.Bool()
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
