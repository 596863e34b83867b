package k8swatchreceiver

import (
	"strings"
	"time"

	"go.opentelemetry.io/collector/pdata/pcommon"
	"go.opentelemetry.io/collector/pdata/ptrace"

	"github.com/kubestitch/kubestitch/internal/fragment"
)

// maxAttrLen bounds every string attribute taken from an object.
const maxAttrLen = 1024

// reasonSuperseded starts the reason of an object span closed by a newer
// trigger.
const reasonSuperseded = "superseded by "

// fragmentSpan is one span the tracker decided to emit: the head every
// fragment span has, and the part of its level (spans.go, span_step.go,
// span_sli.go). emit.go turns a batch of them into ptrace.Traces.
type fragmentSpan struct {
	spanHead
	part spanPart
}

// spanHead is what every fragment span has: its IDs, name and level, who
// ran it, when, and the object and operation it is about.
type spanHead struct {
	traceID          pcommon.TraceID
	spanID, parentID pcommon.SpanID
	name             string
	level            string
	service          string
	start, end       time.Time
	timeSource       string
	obj              *objectView
	trigger          string
	triggerTime      time.Time
}

// spanPart is what a level adds to the head, in the order of the span's
// attributes: its status and attributes after the head's, its attributes
// after the object's kind keys, and its span events, last.
type spanPart interface {
	putStatus(s ptrace.Span, a pcommon.Map)
	putDetail(a pcommon.Map)
	putEvents(s ptrace.Span)
}

// noPart is a level that adds nothing to the head; the other parts embed
// it for what they do not add.
type noPart struct{}

func (noPart) putStatus(ptrace.Span, pcommon.Map) {}
func (noPart) putDetail(pcommon.Map)              {}
func (noPart) putEvents(ptrace.Span)              {}

// head is the head of a span about st's open operation.
func head(st *objectState, level, name, service string, start, end time.Time, src string) spanHead {
	v := &st.view
	return spanHead{
		traceID:     fragment.TraceID(v.uid, st.Trigger),
		name:        name,
		level:       level,
		service:     service,
		start:       start,
		end:         notBefore(end, start),
		timeSource:  src,
		obj:         snapshot(v),
		trigger:     st.Trigger,
		triggerTime: st.TriggerTime,
	}
}

// underObject is h as a child of the object span of its operation.
func underObject(h spanHead) spanHead {
	h.parentID = fragment.ObjectSpanID(h.obj.uid, h.obj.kind, h.trigger)
	return h
}

// triggerSpan is the span of the trigger of st's operation: who asked for
// it, from the request to its arrival here.
func triggerSpan(st *objectState, at time.Time, history bool) fragmentSpan {
	v := &st.view
	end := at
	if history {
		end = st.TriggerTime
	}
	svc := v.manager
	if svc == "" {
		svc = "kube-apiserver"
	}
	h := underObject(head(st, fragment.LevelTrigger, fragment.PhaseTrigger, svc, st.TriggerTime, end, st.TimeSource))
	h.spanID = fragment.TriggerSpanID(v.uid, st.Trigger)
	return fragmentSpan{spanHead: h, part: noPart{}}
}

// objectHead is the head of the object span of st's operation, ending at
// end.
func objectHead(st *objectState, end time.Time, src string) spanHead {
	v := &st.view
	h := head(st, fragment.LevelObject, fragment.ObjectPhase(v.kind, st.Trigger), objectService(v, st.Trigger), st.TriggerTime, end, src)
	h.spanID = fragment.ObjectSpanID(v.uid, v.kind, st.Trigger)
	return h
}

// reannounced marks a span sent again for a gateway that never saw its
// operation (reannounceOpen).
type reannounced struct{ noPart }

func (reannounced) putDetail(a pcommon.Map) { a.PutBool(fragment.KeyReannounced, true) }

// objectPart is what an object span adds: how its operation ended, the
// Events about it, and the first cause that blocked it.
type objectPart struct {
	converged bool
	reason    string
	// resumed: an object span for an operation that converged out of
	// sight (fragment.KeyResumed).
	resumed     bool
	cause       string
	traceparent string
	events      []spanEvent
}

// objectSpan ends st's open operation: the root of its trace.
func objectSpan(st *objectState, end time.Time, src string, converged bool, reason string) fragmentSpan {
	v := &st.view
	st.Done, st.ended, st.announced = true, end, time.Time{}
	evs := st.pending
	st.pending = nil
	cause := st.Cause
	st.Cause = ""
	if src == fragment.TimeSourceWatch && st.TimeSource == fragment.TimeSourceObject {
		src = fragment.TimeSourceObject
	}
	return fragmentSpan{spanHead: objectHead(st, end, src), part: &objectPart{
		converged: converged, reason: reason, cause: cause, traceparent: v.traceparent, events: evs,
	}}
}

func (p *objectPart) putStatus(s ptrace.Span, a pcommon.Map) {
	a.PutBool(fragment.KeyConverged, p.converged)
	// A step superseded by the next spec change (a rolling update
	// scales a ReplicaSet in several steps) is no error.
	if !p.converged && !strings.HasPrefix(p.reason, reasonSuperseded) {
		s.Status().SetCode(ptrace.StatusCodeError)
		s.Status().SetMessage(p.reason)
	}
	if p.reason != "" {
		a.PutStr(fragment.KeyReason, p.reason)
	}
	if p.resumed {
		a.PutBool(fragment.KeyResumed, true)
	}
	if p.cause != "" {
		// The first Warning that blocked the operation: on an error the
		// status names it too, since that is what a backend shows first.
		a.PutStr(fragment.KeyCause, p.cause)
		if s.Status().Code() == ptrace.StatusCodeError {
			s.Status().SetMessage(p.reason + "; first cause: " + p.cause)
		}
	}
}

func (p *objectPart) putDetail(a pcommon.Map) {
	if p.traceparent != "" {
		a.PutStr(fragment.KeyTraceparent, fragment.TruncateUTF8(p.traceparent, 128))
	}
}

func (p *objectPart) putEvents(s ptrace.Span) {
	for _, e := range p.events {
		se := s.Events().AppendEmpty()
		se.SetName(e.name)
		se.SetTimestamp(pcommon.NewTimestampFromTime(e.at))
		if e.message != "" {
			se.Attributes().PutStr("k8s.event.message", e.message)
		}
		se.Attributes().PutStr("k8s.event.reporting_controller", e.source)
	}
}

func objectService(v *objectView, trigger string) string {
	switch v.kind {
	case "Pod", "Node":
		return nodeAgentOf(v)
	case "Deployment", "ReplicaSet", "StatefulSet", "DaemonSet", "Job", "CronJob":
		return "kube-controller-manager"
	}
	if trigger == fragment.TriggerDelete {
		return "kube-controller-manager"
	}
	if v.manager != "" {
		return v.manager
	}
	return "kube-apiserver"
}

// snapshot copies the object's view for a fragment: fragments are rendered
// outside the tracker's lock, while the object's next update (from another
// informer's goroutine) rewrites the state's view. The view's pod and
// annotations are replaced by an update, never changed in place, so a
// shallow copy is enough.
func snapshot(v *objectView) *objectView {
	c := *v
	return &c
}

// notBefore keeps a span from ending before it starts: object timestamps
// are whole seconds and may precede a watch-arrival start.
func notBefore(t, min time.Time) time.Time {
	if t.Before(min) {
		return min
	}
	return t
}
