package k8sstitchprocessor

import (
	"strings"
	"time"

	"go.opentelemetry.io/collector/pdata/pcommon"
	"go.opentelemetry.io/collector/pdata/ptrace"

	"github.com/kubestitch/kubestitch/internal/fragment"
)

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
		case fragment.KeyReannounced:
			a.fk.reannounced = v.Bool()
		case fragment.KeyTimeSource:
			a.fk.listed = v.Str() == fragment.TimeSourceObject
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

// readFragment reads a span's fragment key; isFrag is false for an app
// span.
func readFragment(s ptrace.Span) (k fragmentKey, isFrag bool) {
	var a spanAttrs
	a.scan(s)
	return a.fk, a.isFrag
}
