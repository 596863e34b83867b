package k8sstitchprocessor

import (
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"go.opentelemetry.io/collector/pdata/pcommon"
	"go.opentelemetry.io/collector/pdata/ptrace"

	"github.com/kubestitch/kubestitch/internal/fragment"
)

// retrigger makes the last span fragmentSpan added for service a span of
// the object's operation of trigger instead of gen:1.
func retrigger(m *spanMaker, service, uid, kind, trigger string) {
	spans := m.rss[service]
	s := spans.At(spans.Len() - 1)
	level, _ := s.Attributes().Get(fragment.KeyLevel)
	s.SetTraceID(fragment.TraceID(uid, trigger))
	switch level.Str() {
	case fragment.LevelObject:
		s.SetSpanID(fragment.ObjectSpanID(uid, kind, trigger))
	case fragment.LevelTrigger:
		s.SetSpanID(fragment.TriggerSpanID(uid, trigger))
		s.SetParentSpanID(fragment.ObjectSpanID(uid, kind, trigger))
	}
	s.Attributes().PutStr(fragment.KeyTrigger, trigger)
}

// scaleSteps is a rollout whose ReplicaSet's first scale step (gen:1) was
// triggered, and the next (gen:2) triggered 2 s later with no end of the
// first in between: the Lease holder that had the first died, and the new
// holder's first list saw the ReplicaSet at gen:2 already.
func scaleSteps(t0 time.Time) (first, next ptrace.Traces) {
	m := newSpanMaker()
	fragmentSpan(m, "user", "Deployment", "dep-1", "web", "", fragment.PhaseTrigger, fragment.LevelTrigger, t0, t0, 0)
	fragmentSpan(m, "kube-controller-manager", "ReplicaSet", "rs-1", "web-1", "dep-1", fragment.PhaseTrigger, fragment.LevelTrigger, t0, t0, 0)
	n := newSpanMaker()
	at := t0.Add(2 * time.Second)
	fragmentSpan(n, "kube-controller-manager", "ReplicaSet", "rs-1", "web-1", "dep-1", fragment.PhaseTrigger, fragment.LevelTrigger, at, at, 0)
	retrigger(n, "kube-controller-manager", "rs-1", "ReplicaSet", "gen:2")
	// Found at the new holder's first list: timed by the object.
	forEachSpan(n.td, func(_ pcommon.Map, s ptrace.Span) {
		s.Attributes().PutStr(fragment.KeyTimeSource, fragment.TimeSourceObject)
	})
	return m.td, n.td
}

func objectSpansOf(td ptrace.Traces, uid string) map[string]ptrace.Span {
	out := map[string]ptrace.Span{}
	forEachSpan(td, func(_ pcommon.Map, s ptrace.Span) {
		u, _ := s.Attributes().Get(fragment.KeyUID)
		l, _ := s.Attributes().Get(fragment.KeyLevel)
		tr, _ := s.Attributes().Get(fragment.KeyTrigger)
		if u.Str() == uid && l.Str() == fragment.LevelObject {
			out[tr.Str()] = s
		}
	})
	return out
}

// The first step's trigger went to the backend with the dead holder's
// gateway; without its object span it and everything under it would be
// orphans. The gateway that has the operation ends it in its place.
func TestAnOperationSupersededOutOfSightGetsItsEnd(t *testing.T) {
	t0 := time.Date(2026, 12, 8, 10, 0, 0, 0, time.UTC)
	first, next := scaleSteps(t0)
	h := newHarness(t, nil)
	h.feed(t, first)
	h.feed(t, next)
	h.clock = h.clock.Add(h.p.cfg.Wait)
	h.flush()

	ends := objectSpansOf(h.output(), "rs-1")
	require.Contains(t, ends, "gen:1", "the first step's end, sent in its place")
	s := ends["gen:1"]
	assert.Equal(t, fragment.ObjectSpanID("rs-1", "ReplicaSet", "gen:1"), s.SpanID(), "the ID the genuine end has: a late genuine end is a repeat")
	assert.Equal(t, fragment.TraceID("dep-1", "gen:1"), s.TraceID(), "in the rollout's trace")
	assert.Equal(t, fragment.ObjectSpanID("dep-1", "Deployment", "gen:1"), s.ParentSpanID())
	assert.Equal(t, t0.Add(2*time.Second), s.EndTimestamp().AsTime(), "it ends when the next step began")
	assert.Equal(t, ptrace.StatusCodeError, s.Status().Code())
	reason, _ := s.Attributes().Get(fragment.KeyReason)
	assert.Equal(t, "superseded", reason.Str())
	assert.NotContains(t, ends, "gen:2", "the open step is not ended")
}

// A next step seen happen (timed by the watch) does not end the first: its
// end may only be late (a refused batch sent again), and comes.
func TestATriggerSeenHappenLeavesTheEndToTheWatcher(t *testing.T) {
	t0 := time.Date(2026, 12, 8, 10, 0, 0, 0, time.UTC)
	first, next := scaleSteps(t0)
	forEachSpan(next, func(_ pcommon.Map, s ptrace.Span) {
		s.Attributes().PutStr(fragment.KeyTimeSource, fragment.TimeSourceWatch)
	})
	h := newHarness(t, nil)
	h.feed(t, first)
	h.feed(t, next)
	h.clock = h.clock.Add(h.p.cfg.Wait)
	h.flush()
	assert.NotContains(t, objectSpansOf(h.output(), "rs-1"), "gen:1")
}

// The usual order: the watcher ends the first step before it triggers the
// next. Only the genuine end goes, once.
func TestTheGenuineEndOfASupersededOperationGoesAlone(t *testing.T) {
	t0 := time.Date(2026, 12, 8, 10, 0, 0, 0, time.UTC)
	first, next := scaleSteps(t0)
	m := newSpanMaker()
	at := t0.Add(2 * time.Second)
	fragmentSpan(m, "kube-controller-manager", "ReplicaSet", "rs-1", "web-1", "dep-1", fragment.PhaseReplicaSetScale, fragment.LevelObject, t0, t0, at.Sub(t0))
	next.ResourceSpans().MoveAndAppendTo(m.td.ResourceSpans())
	h := newHarness(t, nil)
	h.feed(t, first)
	h.feed(t, m.td)
	h.clock = h.clock.Add(h.p.cfg.Wait)
	h.flush()

	n := 0
	forEachSpan(h.output(), func(_ pcommon.Map, s ptrace.Span) {
		if s.SpanID() == fragment.ObjectSpanID("rs-1", "ReplicaSet", "gen:1") {
			n++
			assert.Equal(t, ptrace.StatusCodeUnset, s.Status().Code(), "the genuine one")
		}
	})
	assert.Equal(t, 1, n)
}

// The same, when the new holder's first list saw the next step already
// converged: its resumed object span ends the step the dead holder left
// open, and the step's own end is sent in its place.
func TestAResumedEndEndsTheStepLeftOpen(t *testing.T) {
	t0 := time.Date(2026, 12, 8, 10, 0, 0, 0, time.UTC)
	first, _ := scaleSteps(t0)
	m := newSpanMaker()
	at := t0.Add(2 * time.Second)
	fragmentSpan(m, "kube-controller-manager", "ReplicaSet", "rs-1", "web-1", "dep-1", fragment.PhaseReplicaSetScale, fragment.LevelObject, at, at, time.Second)
	retrigger(m, "kube-controller-manager", "rs-1", "ReplicaSet", "gen:2")
	forEachSpan(m.td, func(_ pcommon.Map, s ptrace.Span) { s.Attributes().PutBool(fragment.KeyResumed, true) })
	h := newHarness(t, nil)
	h.feed(t, first)
	h.feed(t, m.td)
	h.clock = h.clock.Add(h.p.cfg.Wait)
	h.flush()

	ends := objectSpansOf(h.output(), "rs-1")
	require.Contains(t, ends, "gen:1")
	reason, _ := ends["gen:1"].Attributes().Get(fragment.KeyReason)
	assert.Equal(t, "superseded", reason.Str())
	assert.Equal(t, at, ends["gen:1"].EndTimestamp().AsTime())
	assert.Contains(t, ends, "gen:2", "the resumed end goes on: the operation was open here")
}
