package k8sstitchprocessor

import (
	"context"
	"slices"
	"time"

	"go.uber.org/zap"

	"github.com/kubestitch/kubestitch/internal/fragment"
)

// retire drops the deleted objects whose deletion closed keepJoinedFor
// waits ago and which have no open operation: without it, ordinary churn
// (Jobs, pods) would fill the graph to max_objects and evict live objects.
func (p *stitchProcessor) retire(now time.Time) {
	grace := keepJoinedFor * p.cfg.Wait
	n := 0
	for _, r := range p.retiring {
		if now.Sub(r.closed) < grace {
			break
		}
		n++
		o := p.graph.get(r.uid)
		if o == nil || slices.ContainsFunc(o.Ops, func(op *opRecord) bool { return !op.Closed }) {
			continue
		}
		p.markDirty(o) // the flush finds it gone and deletes its record
		p.graph.drop(o)
		p.tombstones.put(r.uid, struct{}{}, now)
	}
	p.retiring = append(p.retiring[:0], p.retiring[n:]...)
	p.tombstones.expire(now)
}

// retired says whether uid is of an object retired not long ago.
func (p *stitchProcessor) retired(uid string) bool {
	_, ok := p.tombstones.get(uid)
	return ok
}

// retryWaiting re-tries what waits, after a batch taught something new.
func (p *stitchProcessor) retryWaiting(out *spanOut) {
	for _, w := range p.pendingRelease {
		p.releaseExpired(w, out)
	}
	p.pendingRelease = p.pendingRelease[:0]
	for _, w := range p.waiting.fragments() {
		if p.placeFragment(w.span(), p.objectOf(w.frag), *w.frag, false) {
			p.waiting.remove(w)
			out.emit(w)
			p.tel.K8sstitchSpansJoined.Add(context.Background(), 1)
		}
	}
	for orig := range p.waiting.traces() {
		if ts := p.traces.decideWaiting(orig, p.tryDecide); ts.decided {
			p.releaseTrace(ts, out)
		}
	}
}

// objectOf is the object of a fragment, learned again if it was shed
// since (while the fragment waited, or between the two passes).
func (p *stitchProcessor) objectOf(fk *fragmentKey) *object {
	if o := p.graph.get(fk.uid); o != nil {
		return o
	}
	return p.learnObject(fk.uid, fk.kind, fk.namespace, fk.name, fk.owner)
}

// releaseExpired lets a span that waited out its time go: a fragment opens
// its own operation, an app trace passes through as it is.
func (p *stitchProcessor) releaseExpired(w *waitingSpan, out *spanOut) {
	if w.frag != nil {
		if w.elem != nil {
			p.waiting.remove(w)
		}
		p.placeFragment(w.span(), p.objectOf(w.frag), *w.frag, true)
		out.emit(w)
		return
	}
	ts := p.traces.decideWaiting(w.orig, func(ts *traceState) {
		ts.decided = true // waited out: it passes as it is
		p.tel.K8sstitchSpansPassedThrough.Add(context.Background(), 1)
	})
	p.releaseTrace(ts, out)
	// An evicted span was already taken out of the buffer.
	if !w.gone {
		if ts.join && !rewriteApp(w.span(), ts) {
			p.badSpan("claims its operation's object span ID")
		}
		out.emit(w)
	}
}

func (p *stitchProcessor) releaseTrace(ts *traceState, out *spanOut) {
	for _, w := range p.waiting.takeTrace(ts.id) {
		if ts.join {
			if rewriteApp(w.span(), ts) {
				p.tel.K8sstitchSpansJoined.Add(context.Background(), 1)
			} else {
				p.badSpan("claims its operation's object span ID")
			}
		}
		out.emit(w)
	}
}

// timeouts closes root operations open longer than operation_timeout and
// emits their object span with status Error, so the trace has its root even
// when the object never converges. If the object converges later, its own
// object span has the same ID and is dropped as a duplicate.
func (p *stitchProcessor) timeouts(now time.Time, out *spanOut) {
	for k := range p.openRoots {
		o := p.graph.get(k.uid)
		var r *opRecord
		if o != nil {
			r = o.op(k.trigger)
		}
		if r == nil || r.Closed {
			delete(p.openRoots, k) // shed, or its record dropped for newer triggers
			continue
		}
		if now.Sub(r.timeoutFrom()) < p.cfg.OperationTimeout {
			continue
		}
		delete(p.openRoots, k)
		r.Closed, r.End, r.TimedOut = true, now, true
		p.markDirty(o)
		if !o.markSeen(o.objectSpanID(r)) {
			continue
		}
		s := appendObjectSpan(out, o, r, now, "operation_timeout: the object did not converge in time")
		s.Attributes().PutStr(fragment.KeyReason, "operation_timeout")
		p.tel.K8sstitchOperationsTimedOut.Add(context.Background(), 1)
		p.set.Logger.Info("operation timed out", zap.String("kind", o.Kind), zap.String("name", o.Name), zap.String("trigger", r.Trigger))
	}
}
