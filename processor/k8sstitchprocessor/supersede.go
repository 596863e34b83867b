package k8sstitchprocessor

import (
	"context"
	"time"

	"go.opentelemetry.io/collector/pdata/pcommon"
	"go.opentelemetry.io/collector/pdata/ptrace"
	"go.uber.org/zap"

	"github.com/kubestitch/kubestitch/internal/fragment"
	"github.com/kubestitch/kubestitch/processor/k8sstitchprocessor/internal/metadata"
)

// unended is an operation closed by a newer trigger of its object before
// its own object span came, and when that happened.
type unended struct {
	op     opKey
	closed time.Time
}

// closeUnended closes the operations of o older than fk's trigger that
// are still open, for a newer trigger found at a watcher's first list or a
// resumed object span. A watcher closes an operation ("superseded by
// ...") before it sends the next trigger it sees happen, in the same
// batch, so an open one here, when a watcher that just started names a
// newer one, means the watcher that had it is gone: the k8s_watch Lease holder died between two of a
// ReplicaSet's scale steps, and the new holder's first list saw only the
// newer one (open: its trigger; converged: its resumed object span). Left
// open, a ReplicaSet's step of the last rollout would also take in the
// next rollout's pods. Nothing would ever end
// the older operation, and its trigger and everything placed under it
// would be orphans at the backend; after wait, endSuperseded sends its
// object span in the genuine one's place.
func (p *stitchProcessor) closeUnended(o *object, fk fragmentKey) {
	for _, r := range o.Ops {
		if r.Closed || r.Trigger == fk.trigger || r.Start.After(fk.triggerTime) {
			continue
		}
		r.Closed, r.End, r.endGuessed = true, fk.triggerTime, true
		if r.Root {
			delete(p.openRoots, opKey{o.UID, r.Trigger})
			p.tel.K8sstitchOperationsClosed.Add(context.Background(), 1)
		}
		p.unended = append(p.unended, unended{opKey{o.UID, r.Trigger}, p.now()})
		p.markDirty(o)
	}
}

// endSuperseded sends, wait after closeUnended closed them, the object
// spans of the operations that never got theirs: status Error, reason
// superseded, ending at the newer trigger. If the genuine one came in the
// meantime (a batch out of order) it went on and this one is not sent;
// if it comes later, it is dropped as a repeat (the same span ID).
func (p *stitchProcessor) endSuperseded(now time.Time, out *spanOut) {
	n := 0
	for _, u := range p.unended {
		if now.Sub(u.closed) < p.cfg.Wait {
			break
		}
		n++
		o := p.graph.get(u.op.uid)
		if o == nil {
			continue
		}
		r := o.op(u.op.trigger)
		if r == nil || !r.Placed || !o.markSeen(o.objectSpanID(r)) {
			continue
		}
		s := appendObjectSpan(out, o, r, r.End, "superseded: a newer trigger came, and this operation's end never did (the watcher that had it is gone)")
		s.Attributes().PutStr(fragment.KeyReason, "superseded")
		p.set.Logger.Info("operation ended by its object's newer trigger; its own end was never seen", zap.String("kind", o.Kind), zap.String("name", o.Name), zap.String("trigger", r.Trigger))
	}
	p.unended = append(p.unended[:0], p.unended[n:]...)
}

// appendObjectSpan adds to out the object span this processor sends for
// an operation whose own never came (operation_timeout, superseded):
// status Error with message, ending at end.
func appendObjectSpan(out *spanOut, o *object, r *opRecord, end time.Time, message string) ptrace.Span {
	rs := out.td.ResourceSpans().AppendEmpty()
	rs.Resource().Attributes().PutStr(fragment.KeyServiceName, "kubestitch")
	if o.Namespace != "" {
		rs.Resource().Attributes().PutStr(fragment.KeyNamespace, o.Namespace)
	}
	ss := rs.ScopeSpans().AppendEmpty()
	ss.Scope().SetName(metadata.ScopeName)
	s := ss.Spans().AppendEmpty()
	s.SetTraceID(r.TraceID)
	s.SetSpanID(o.objectSpanID(r))
	s.SetParentSpanID(r.Parent)
	s.SetName(fragment.ObjectPhase(o.Kind, r.Trigger))
	s.SetStartTimestamp(pcommon.NewTimestampFromTime(r.Start))
	s.SetEndTimestamp(pcommon.NewTimestampFromTime(end))
	s.Status().SetCode(ptrace.StatusCodeError)
	s.Status().SetMessage(message)
	a := s.Attributes()
	a.PutStr(fragment.KeyLevel, fragment.LevelObject)
	a.PutStr(fragment.KeyKind, o.Kind)
	a.PutStr(fragment.KeyUID, o.UID)
	a.PutStr(fragment.KeyName, o.Name)
	a.PutStr(fragment.KeyTrigger, r.Trigger)
	a.PutBool(fragment.KeyConverged, false)
	return s
}
