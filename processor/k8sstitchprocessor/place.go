package k8sstitchprocessor

import (
	"time"

	"context"

	"go.opentelemetry.io/collector/pdata/pcommon"
	"go.opentelemetry.io/collector/pdata/ptrace"
	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/metric"
	"go.uber.org/zap"

	"github.com/kubestitch/kubestitch/internal/fragment"
)

// placeFragment rewrites a fragment into its operation, if the operation
// can be placed. waitedOut forces a decision: an object whose owner never
// showed up opens its own operation.
func (p *stitchProcessor) placeFragment(s ptrace.Span, o *object, fk fragmentKey, waitedOut bool) bool {
	r := o.addOp(fk.trigger, fk.triggerTime)
	if !p.place(o, r, waitedOut, 0) {
		return false
	}
	// A fragment's own trace ID is derived from its object and trigger
	// (fragment.TraceID), so it needs no attribute to be recovered.
	s.SetTraceID(r.TraceID)
	if fk.level == fragment.LevelObject && !r.Parent.IsEmpty() {
		s.SetParentSpanID(r.Parent)
	}
	return true
}

// place decides the operation an object's trigger belongs to: the operation
// of the nearest ancestor that was open when the trigger happened, else its
// own. It returns false while an ancestor needed for the answer is unknown.
func (p *stitchProcessor) place(o *object, r *opRecord, waitedOut bool, depth int) bool {
	if r.Placed {
		return true
	}
	if depth > maxOwnerDepth {
		p.tel.K8sstitchOwnerCycles.Add(context.Background(), 1)
		p.set.Logger.Warn("owner chain too deep or cyclic; the object opens its own operation", zap.String("uid", o.UID), zap.String("kind", o.Kind))
		p.placeRoot(o, r)
		return true
	}
	if o.OwnerUID == "" || o.OwnerUID == o.UID {
		p.placeRoot(o, r)
		return true
	}
	owner := p.graph.get(o.OwnerUID)
	if owner != nil && owner.Namespace != "" && owner.Namespace != o.Namespace {
		// Kubernetes has no owner in another namespace (its garbage
		// collector ignores such a reference): a tenant naming another
		// namespace's object as its pod's controller would otherwise
		// write into that namespace's operation (trust finding 4).
		p.tel.K8sstitchBadSpans.Add(context.Background(), 1, metric.WithAttributes(attribute.String("reason", "owner in another namespace")))
		p.set.Logger.Warn("owner reference into another namespace ignored; the object opens its own operation",
			zap.String("uid", o.UID), zap.String("namespace", o.Namespace), zap.String("owner_namespace", owner.Namespace))
		p.placeRoot(o, r)
		return true
	}
	var oop *opRecord
	if owner != nil {
		afterEnd := time.Duration(0)
		if waitedOut {
			afterEnd = p.cfg.ClockTolerance
		}
		oop = owner.opAt(r.Start, p.cfg.ClockTolerance, afterEnd)
		if oop != nil && !waitedOut && mayFollow(owner, oop, r.Start) {
			return false
		}
	}
	if oop == nil {
		// The owner is unknown, or no operation of it covers the trigger
		// yet: its trigger may still be on its way, so wait for it.
		if waitedOut {
			p.placeRoot(o, r)
			return true
		}
		return false
	}
	if !p.place(owner, oop, waitedOut, depth+1) {
		return false
	}
	r.Placed, r.TraceID, r.Parent = true, oop.TraceID, owner.objectSpanID(oop)
	p.markDirty(o)
	return true
}

// mayFollow says whether a child whose trigger time is t may belong to the
// owner's next operation rather than oop, so it must wait for it. A time
// in whole seconds is an object's own timestamp (a pod an agent first saw
// bound has only its creationTimestamp), and the child was made at some
// moment of that second: if oop ended within it and nothing newer of the
// owner is known, the next operation may still be on its way (a Deployment
// scaled from 0 just after it converged). A watch time has nanoseconds.
func mayFollow(owner *object, oop *opRecord, t time.Time) bool {
	if !oop.Closed || t.Nanosecond() != 0 || !oop.End.Before(t.Add(time.Second)) {
		return false
	}
	for _, r := range owner.Ops {
		if r.Start.After(oop.Start) {
			return false
		}
	}
	return true
}

func (p *stitchProcessor) placeRoot(o *object, r *opRecord) {
	r.Placed, r.Root = true, true
	own := fragment.TraceID(o.UID, r.Trigger)
	r.TraceID = own
	if tid, sid, ok := parseTraceparent(r.Traceparent); ok {
		if theirs, known := p.opTraces.get(tid); known && theirs.namespace != o.Namespace {
			// A traceparent naming another namespace's operation: whoever
			// may annotate an object here could otherwise write into it
			// (trust finding 4).
			p.tel.K8sstitchBadSpans.Add(context.Background(), 1, metric.WithAttributes(attribute.String("reason", "traceparent of another namespace's operation")))
			p.set.Logger.Warn("traceparent naming another namespace's operation ignored; the object opens its own trace",
				zap.String("uid", o.UID), zap.String("namespace", o.Namespace), zap.String("operation_namespace", theirs.namespace))
		} else {
			// The user's own tool started this trace: continue it.
			r.TraceID, r.Parent = tid, sid
		}
	}
	p.opTraces.put(r.TraceID, opTrace{namespace: o.Namespace, derived: r.TraceID == own}, p.now())
	if !r.Closed {
		p.openRoots[opKey{o.UID, r.Trigger}] = struct{}{}
	}
	p.markDirty(o)
	p.tel.K8sstitchOperationsOpened.Add(context.Background(), 1, metric.WithAttributes(attribute.String("kind", o.Kind)))
}

// tryDecide places an app trace by its best hint, or lets it pass when its
// root and a child of the root arrived without any hint. Spans are exported
// as they end, children first, so the root closes a process's part of a
// trace; its child is awaited too because a batch split between
// instrumentation scopes can deliver the root (kube-apiserver's
// "authentication") before the request span that names the object.
func (p *stitchProcessor) tryDecide(ts *traceState) {
	if ts.foreign || ts.hint.kind == hintNone && ts.rootSeen && ts.rootHasChild() {
		ts.decided = true
		return
	}
	if p.traces.passedBefore(ts) {
		// Before a trace joins or waits: if its earlier spans passed, so
		// do these (joining them would orphan them in the operation, or
		// take an app's trace apart).
		ts.decided = true
		return
	}
	if ts.hint.kind == hintNone || ts.remoteParent && !ts.rootSeen {
		// Nothing to go by, or a request from another process: its
		// caller's spans (an app's?) say whose trace it is.
		return
	}
	o, r, parent := p.resolveHint(ts.hint)
	if o == nil || !p.place(o, r, false, 0) {
		return
	}
	if parent.IsEmpty() {
		parent = o.objectSpanID(r)
		if ts.hint.verb == verbCreate && !r.Root {
			// A controller created this object: its create request hangs
			// under the controller's work (pod creates under replicaset.scale).
			parent = r.Parent
		}
	}
	ts.decided, ts.join, ts.newTrace, ts.parent = true, true, r.TraceID, parent
}

// resolveHint finds the object and operation an app span names; parent is
// set where the hint names a step rather than the object span.
func (p *stitchProcessor) resolveHint(h joinHint) (*object, *opRecord, pcommon.SpanID) {
	var o *object
	tol := p.cfg.ClockTolerance
	if h.kind == hintUID {
		o = p.graph.get(h.uid)
	} else {
		o = p.graph.byNameAt(h.objKind, h.namespace, h.name, h.at, tol)
	}
	if o == nil {
		return nil, nil, pcommon.SpanID{}
	}
	var r *opRecord
	switch h.verb {
	case verbCreate:
		r = o.op(fragment.TriggerGeneration(1))
	case verbDelete:
		r = o.op(fragment.TriggerDelete)
	default:
		r = o.opAt(h.at, tol, tol)
	}
	if r == nil {
		return nil, nil, pcommon.SpanID{}
	}
	if h.verb == verbBinding {
		return o, r, fragment.SpanID(o.UID, fragment.PhasePodSchedule, r.Trigger)
	}
	return o, r, pcommon.SpanID{}
}

// rewriteApp moves one span of an app trace into its operation. The
// trace's root, the one span whose parent changes, keeps where it came
// from: the original trace ID as an attribute and a link to itself in the
// original trace. Its descendants keep their parents, so the original
// trace is recoverable from the root alone.
func rewriteApp(s ptrace.Span, ts *traceState) bool {
	if s.SpanID() == ts.parent {
		// A span claiming the ID of the object span it would hang under
		// (a public hash of the UID): joined, it would be its own parent
		// beside the genuine object span (trust finding 2).
		quarantine(s)
		return false
	}
	orig := s.TraceID()
	s.SetTraceID(ts.newTrace)
	if s.ParentSpanID().IsEmpty() {
		s.SetParentSpanID(ts.parent)
		a := s.Attributes()
		a.EnsureCapacity(a.Len() + 2)
		a.PutStr(fragment.KeyOriginalTraceID, orig.String())
		a.PutStr(fragment.KeyJoinBy, joinBy[ts.hint.kind])
		l := s.Links().AppendEmpty()
		l.SetTraceID(orig)
		l.SetSpanID(s.SpanID())
	}
	return true
}

// joinBy names each hint kind on the rewritten root (fragment.KeyJoinBy).
var joinBy = [...]string{
	hintNone:      "",
	hintCreateKey: fragment.JoinByCreateKey,
	hintPath:      fragment.JoinByPath,
	hintUID:       fragment.JoinByUID,
}
