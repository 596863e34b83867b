package k8sstitchprocessor

import (
	"time"

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
