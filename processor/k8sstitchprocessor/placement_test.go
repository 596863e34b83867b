package k8sstitchprocessor

import (
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"go.opentelemetry.io/collector/pdata/pcommon"
	"go.opentelemetry.io/collector/pdata/ptrace"

	"github.com/kubestitch/kubestitch/internal/fragment"
)

// opFragment adds one fragment of kind/uid's operation for trigger: its
// trigger marker, its object span, or a step (phase).
func opFragment(m *spanMaker, kind, uid, owner, trigger, level, phase string, trig, start, end time.Time) {
	id, parent := fragment.ObjectSpanID(uid, kind, trigger), pcommon.SpanID{}
	name := fragment.ObjectPhase(kind, trigger)
	switch level {
	case fragment.LevelTrigger:
		id, parent, name = fragment.TriggerSpanID(uid, trigger), fragment.ObjectSpanID(uid, kind, trigger), fragment.PhaseTrigger
	case fragment.LevelStep:
		id, parent, name = fragment.SpanID(uid, phase, trigger), fragment.ObjectSpanID(uid, kind, trigger), phase
	}
	s := m.span("k8swatch", fragment.TraceID(uid, trigger), parent, name, start, end.Sub(start))
	s.SetSpanID(id)
	a := s.Attributes()
	a.PutStr(fragment.KeyLevel, level)
	a.PutStr(fragment.KeyKind, kind)
	a.PutStr(fragment.KeyUID, uid)
	a.PutStr(fragment.KeyName, uid)
	a.PutStr(fragment.KeyNamespace, "default")
	if owner != "" {
		a.PutStr(fragment.KeyOwnerKind, "ReplicaSet")
		a.PutStr(fragment.KeyOwnerUID, owner)
	}
	a.PutStr(fragment.KeyTrigger, trigger)
	a.PutInt(fragment.KeyTriggerTime, trig.UnixNano())
	if level == fragment.LevelObject {
		a.PutBool(fragment.KeyConverged, true)
	}
}

// rollingUpdateStep adds the fragments of the failed run's ReplicaSet
// step, gen:4, converged at 02.795.
func rollingUpdateStep(m *spanMaker, at func(ms int) time.Time) {
	opFragment(m, "ReplicaSet", "rs-1", "", "gen:4", fragment.LevelTrigger, "", at(2649), at(2649), at(2649))
	opFragment(m, "ReplicaSet", "rs-1", "", "gen:4", fragment.LevelObject, "", at(2649), at(2649), at(2795))
}

// shakeClock is the failed run's time line, in milliseconds after 08:48.
func shakeClock(ms int) time.Time {
	return time.Date(2026, 12, 2, 8, 48, 0, 0, time.UTC).Add(time.Duration(ms) * time.Millisecond)
}

// TestChildAfterItsOwnersOperationEndedWaitsForTheNext replays the order
// of a failed shake run (3_scale_5_to_8 on a loaded machine): a
// ReplicaSet's rolling-update step (gen:4) converged at 02.795; the
// Deployment was scaled at 03.6, and the scale-up pod, which the agent
// first saw already bound, carries its creation time truncated to the
// second, 03.000; it reached k8sstitch before the gateway's ReplicaSet
// watch delivered gen:5 (trigger 03.602). gen:4 covered 03.000 within the
// 1 s tolerance, so the pod went into the finished operation's trace. A
// child's time is never after the end of the operation that made it: the
// pod must wait for the owner's next operation, and join it.
func TestChildAfterItsOwnersOperationEndedWaitsForTheNext(t *testing.T) {
	h := newHarness(t, nil)
	at := shakeClock

	m := newSpanMaker()
	rollingUpdateStep(m, at)
	h.feed(t, m.td)

	m = newSpanMaker()
	opFragment(m, "Pod", "pod-new", "rs-1", "gen:1", fragment.LevelTrigger, "", at(3000), at(3000), at(3000))
	opFragment(m, "Pod", "pod-new", "rs-1", "gen:1", fragment.LevelStep, fragment.PhasePodSchedule, at(3000), at(3000), at(3650))
	h.feed(t, m.td)

	m = newSpanMaker()
	opFragment(m, "ReplicaSet", "rs-1", "", "gen:5", fragment.LevelTrigger, "", at(3602), at(3602), at(3602))
	h.clock = at(5000) // the ReplicaSet watch delivered it 1.4 s late, within wait
	require.NoError(t, h.p.ConsumeTraces(t.Context(), m.td))
	h.drain()

	placed := map[string]pcommon.TraceID{}
	forEachSpan(h.output(), func(_ pcommon.Map, s ptrace.Span) {
		if uid, _ := s.Attributes().Get(fragment.KeyUID); uid.Str() == "pod-new" {
			placed[s.Name()] = s.TraceID()
		}
	})
	require.Len(t, placed, 2)
	for name, tid := range placed {
		assert.Equal(t, fragment.TraceID("rs-1", "gen:5"), tid, "%s joins the scale that made the pod, not the step that ended before it", name)
	}
}

// TestChildAfterItsOwnersOperationEndedJoinsItWhenNoNextComes: with no
// newer operation of the owner, the child that waited out joins the
// closed one within the clock tolerance, as before.
func TestChildAfterItsOwnersOperationEndedJoinsItWhenNoNextComes(t *testing.T) {
	h := newHarness(t, nil)
	at := shakeClock
	m := newSpanMaker()
	rollingUpdateStep(m, at)
	opFragment(m, "Pod", "pod-late", "rs-1", "gen:1", fragment.LevelTrigger, "", at(3000), at(3000), at(3000))
	h.feed(t, m.td)
	h.drain()
	var got pcommon.TraceID
	forEachSpan(h.output(), func(_ pcommon.Map, s ptrace.Span) {
		if uid, _ := s.Attributes().Get(fragment.KeyUID); uid.Str() == "pod-late" {
			got = s.TraceID()
		}
	})
	assert.Equal(t, fragment.TraceID("rs-1", "gen:4"), got)
}

// TestResumedObjectSpanClosesWhatADeadWatcherLeftOpen replays a failed
// install run: the k8swatch Lease holder died 500 ms into a rollout
// (gen:3), which converged before another gateway took the Lease, so no
// watcher sent its object span and the gateway held it open. The next
// rollout's ReplicaSet reached the gateway before the Deployment's gen:4
// trigger and went into gen:3's trace. The new holder's first list sends
// gen:3's object span marked resumed: it closes gen:3, and the ReplicaSet
// waits for gen:4.
func TestResumedObjectSpanClosesWhatADeadWatcherLeftOpen(t *testing.T) {
	at := shakeClock
	placedIn := func(resume bool) pcommon.TraceID {
		h := newHarness(t, nil)
		m := newSpanMaker()
		opFragment(m, "Deployment", "dep-1", "", "gen:3", fragment.LevelTrigger, "", at(0), at(0), at(0))
		opFragment(m, "ReplicaSet", "rs-3", "dep-1", "gen:1", fragment.LevelTrigger, "", at(200), at(200), at(200))
		h.feed(t, m.td)
		if resume {
			m = newSpanMaker()
			opFragment(m, "Deployment", "dep-1", "", "gen:3", fragment.LevelObject, "", at(0), at(0), at(9000))
			lastSpan(m).Attributes().PutBool(fragment.KeyResumed, true)
			h.clock = at(30000)
			h.feed(t, m.td)
		}
		m = newSpanMaker()
		opFragment(m, "ReplicaSet", "rs-2", "dep-1", "gen:5", fragment.LevelTrigger, "", at(40100), at(40100), at(40100))
		h.clock = at(40200)
		require.NoError(t, h.p.ConsumeTraces(t.Context(), m.td))
		m = newSpanMaker()
		opFragment(m, "Deployment", "dep-1", "", "gen:4", fragment.LevelTrigger, "", at(40000), at(40000), at(40000))
		h.clock = at(41000)
		require.NoError(t, h.p.ConsumeTraces(t.Context(), m.td))
		h.drain()
		var got pcommon.TraceID
		forEachSpan(h.output(), func(_ pcommon.Map, s ptrace.Span) {
			if uid, _ := s.Attributes().Get(fragment.KeyUID); uid.Str() == "rs-2" {
				got = s.TraceID()
			}
		})
		return got
	}
	assert.Equal(t, fragment.TraceID("dep-1", "gen:3"), placedIn(false), "the failure: the open gen:3 took gen:4's ReplicaSet")
	assert.Equal(t, fragment.TraceID("dep-1", "gen:4"), placedIn(true))
}

// TestResumedObjectSpanClosesTheStepsBeforeIt: the rollout that the dead
// holder left open had scaled the old ReplicaSet down in steps; one step
// (gen:6) was open when it died, the last (gen:7) came and went while no
// watcher saw it. The new holder lists the ReplicaSet at gen:7, which the
// gateway never heard of: the resumed gen:7 closes gen:6 too, so the next
// rollout's pod, arriving before the ReplicaSet's gen:8, waits for it
// instead of joining the finished rollout.
func TestResumedObjectSpanClosesTheStepsBeforeIt(t *testing.T) {
	at := shakeClock
	h := newHarness(t, nil)
	m := newSpanMaker()
	opFragment(m, "Deployment", "dep-1", "", "gen:3", fragment.LevelTrigger, "", at(0), at(0), at(0))
	opFragment(m, "ReplicaSet", "rs-2", "dep-1", "gen:6", fragment.LevelTrigger, "", at(300), at(300), at(300))
	h.feed(t, m.td)

	m = newSpanMaker()
	opFragment(m, "Deployment", "dep-1", "", "gen:3", fragment.LevelObject, "", at(0), at(0), at(9000))
	lastSpan(m).Attributes().PutBool(fragment.KeyResumed, true)
	opFragment(m, "ReplicaSet", "rs-2", "dep-1", "gen:7", fragment.LevelObject, "", at(5000), at(5000), at(8000))
	lastSpan(m).Attributes().PutBool(fragment.KeyResumed, true)
	h.clock = at(30000)
	h.feed(t, m.td)

	for _, f := range []struct {
		kind, uid, owner, trigger string
		ms                        int
	}{
		{"Pod", "pod-new", "rs-2", "gen:1", 40300},
		{"ReplicaSet", "rs-2", "dep-1", "gen:8", 40100},
		{"Deployment", "dep-1", "", "gen:4", 40000},
	} {
		m = newSpanMaker()
		opFragment(m, f.kind, f.uid, f.owner, f.trigger, fragment.LevelTrigger, "", at(f.ms), at(f.ms), at(f.ms))
		h.clock = h.clock.Add(200 * time.Millisecond)
		require.NoError(t, h.p.ConsumeTraces(t.Context(), m.td))
	}
	h.drain()
	got := map[string]pcommon.TraceID{}
	forEachSpan(h.output(), func(_ pcommon.Map, s ptrace.Span) {
		uid, _ := s.Attributes().Get(fragment.KeyUID)
		trig, _ := s.Attributes().Get(fragment.KeyTrigger)
		got[uid.Str()+" "+trig.Str()] = s.TraceID()
	})
	assert.Equal(t, fragment.TraceID("dep-1", "gen:4"), got["pod-new gen:1"])
	assert.Equal(t, fragment.TraceID("dep-1", "gen:3"), got["rs-2 gen:7"], "the step it did not see, in the rollout it belonged to")
}

// TestResumedObjectSpanIsDroppedWhereNothingIsOpen: a new Lease holder
// sends a resumed object span for every operation of the last minutes; a
// gateway that does not hold the operation open (it never saw it, or saw
// it end) drops it, rather than open a trace of one span for each.
func TestResumedObjectSpanIsDroppedWhereNothingIsOpen(t *testing.T) {
	at := shakeClock
	h := newHarness(t, nil)
	m := newSpanMaker()
	opFragment(m, "Deployment", "dep-done", "", "gen:2", fragment.LevelTrigger, "", at(0), at(0), at(0))
	opFragment(m, "Deployment", "dep-done", "", "gen:2", fragment.LevelObject, "", at(0), at(0), at(5000))
	h.feed(t, m.td)
	before := h.sink.SpanCount()

	m = newSpanMaker()
	opFragment(m, "Deployment", "dep-unknown", "", "gen:7", fragment.LevelObject, "", at(0), at(0), at(9000))
	lastSpan(m).Attributes().PutBool(fragment.KeyResumed, true)
	opFragment(m, "Deployment", "dep-done", "", "gen:2", fragment.LevelObject, "", at(0), at(0), at(5000))
	lastSpan(m).Attributes().PutBool(fragment.KeyResumed, true)
	h.feed(t, m.td)
	h.drain()
	assert.Equal(t, before, h.sink.SpanCount(), "neither resumed span goes on")
	assert.Nil(t, h.p.graph.get("dep-unknown"), "nor is its object learnt")
}

func lastSpan(m *spanMaker) ptrace.Span {
	for _, ss := range m.rss {
		return ss.At(ss.Len() - 1)
	}
	panic("no span")
}

// TestChildInTheSecondItsOwnersOperationEndedWaitsForTheNext replays a
// failed scale run: a Deployment created with 0 replicas converged at
// 05.250 (gen:1) and was scaled to 100 at 05.6 (gen:2). An agent first saw
// a new pod bound, so its trigger is its creationTimestamp, 05.000: whole
// seconds, so the pod was made at some moment of that second, maybe after
// gen:1 ended. It reached k8sstitch before the ReplicaSet's gen:2 and went
// into gen:1's trace. Such a child waits for its owner's next operation.
func TestChildInTheSecondItsOwnersOperationEndedWaitsForTheNext(t *testing.T) {
	at := shakeClock
	h := newHarness(t, nil)
	m := newSpanMaker()
	opFragment(m, "Deployment", "dep-s", "", "gen:1", fragment.LevelTrigger, "", at(5100), at(5100), at(5100))
	opFragment(m, "Deployment", "dep-s", "", "gen:1", fragment.LevelObject, "", at(5100), at(5100), at(5250))
	opFragment(m, "ReplicaSet", "rs-s", "dep-s", "gen:1", fragment.LevelTrigger, "", at(5150), at(5150), at(5150))
	opFragment(m, "ReplicaSet", "rs-s", "dep-s", "gen:1", fragment.LevelObject, "", at(5150), at(5150), at(5200))
	h.feed(t, m.td)

	for _, f := range []struct {
		kind, uid, owner, trigger string
		ms                        int
	}{
		{"Pod", "pod-s", "rs-s", "gen:1", 5000},
		{"ReplicaSet", "rs-s", "dep-s", "gen:2", 5650},
		{"Deployment", "dep-s", "", "gen:2", 5600},
	} {
		m = newSpanMaker()
		opFragment(m, f.kind, f.uid, f.owner, f.trigger, fragment.LevelTrigger, "", at(f.ms), at(f.ms), at(f.ms))
		h.clock = at(6000).Add(time.Duration(len(h.sink.AllTraces())) * 300 * time.Millisecond)
		require.NoError(t, h.p.ConsumeTraces(t.Context(), m.td))
	}
	h.drain()
	var got pcommon.TraceID
	forEachSpan(h.output(), func(_ pcommon.Map, s ptrace.Span) {
		if uid, _ := s.Attributes().Get(fragment.KeyUID); uid.Str() == "pod-s" {
			got = s.TraceID()
		}
	})
	assert.Equal(t, fragment.TraceID("dep-s", "gen:2"), got)
}

// TestOwnerInAnotherNamespaceIsNotJoined (trust finding 4): a pod in
// namespace attacker whose controller reference names a ReplicaSet of
// namespace victim opens an operation of its own; it never lands in the
// victim's trace.
func TestOwnerInAnotherNamespaceIsNotJoined(t *testing.T) {
	h := newHarness(t, nil)
	at := shakeClock
	m := newSpanMaker()
	opFragment(m, "ReplicaSet", "rs-victim", "", "gen:1", fragment.LevelTrigger, "", at(0), at(0), at(0))
	opFragment(m, "Pod", "pod-same", "rs-victim", "gen:1", fragment.LevelTrigger, "", at(100), at(100), at(100))
	opFragment(m, "Pod", "pod-attacker", "rs-victim", "gen:1", fragment.LevelTrigger, "", at(100), at(100), at(100))
	forEachSpan(m.td, func(_ pcommon.Map, s ptrace.Span) {
		ns := "victim"
		if uid, _ := s.Attributes().Get(fragment.KeyUID); uid.Str() == "pod-attacker" {
			ns = "attacker"
		}
		s.Attributes().PutStr(fragment.KeyNamespace, ns)
	})
	h.feed(t, m.td)
	h.drain()
	placed := traceByUID(h.output())
	require.Contains(t, placed, "pod-attacker")
	assert.Equal(t, fragment.TraceID("rs-victim", "gen:1"), placed["pod-same"], "a pod of the ReplicaSet's own namespace joins it")
	assert.Equal(t, fragment.TraceID("pod-attacker", "gen:1"), placed["pod-attacker"], "the other namespace's pod opens its own operation")
}

// TestReplayedTriggersTeachNothing (trust finding 3): old trigger
// fragments of a ReplicaSet, replayed (captured from the agent's
// plaintext traffic), are dropped as repeats before they are learnt: they
// do not push the open operation out of the object's records, and the
// next pod still lands in it.
func TestReplayedTriggersTeachNothing(t *testing.T) {
	h := newHarness(t, nil)
	at := shakeClock
	gen := func(i int) string { return fmt.Sprintf("gen:%d", i) }
	m := newSpanMaker()
	for i := 1; i <= 5; i++ {
		opFragment(m, "ReplicaSet", "rs-1", "", gen(i), fragment.LevelTrigger, "", at(i*1000), at(i*1000), at(i*1000))
		opFragment(m, "ReplicaSet", "rs-1", "", gen(i), fragment.LevelObject, "", at(i*1000), at(i*1000), at(i*1000+500))
	}
	opFragment(m, "ReplicaSet", "rs-1", "", gen(6), fragment.LevelTrigger, "", at(6000), at(6000), at(6000))
	h.feed(t, m.td)
	h.drain()

	replay := newSpanMaker()
	for i := 1; i <= 4; i++ {
		opFragment(replay, "ReplicaSet", "rs-1", "", gen(i), fragment.LevelTrigger, "", at(i*1000), at(i*1000), at(i*1000))
	}
	h.feed(t, replay.td)
	h.drain()

	pod := newSpanMaker()
	opFragment(pod, "Pod", "pod-1", "rs-1", "create", fragment.LevelTrigger, "", at(6100), at(6100), at(6100))
	h.feed(t, pod.td)
	h.drain()
	var got pcommon.TraceID
	replayed := 0
	forEachSpan(h.output(), func(_ pcommon.Map, s ptrace.Span) {
		uid, _ := s.Attributes().Get(fragment.KeyUID)
		if uid.Str() == "pod-1" {
			got = s.TraceID()
		}
		if uid.Str() == "rs-1" && s.Name() == fragment.PhaseTrigger {
			replayed++
		}
	})
	assert.Equal(t, 6, replayed, "each trigger passed on once, no replay")
	assert.Equal(t, fragment.TraceID("rs-1", gen(6)), got, "the pod joins the open operation")
}

// TestAppSpanCannotClaimItsOperationsSpanID (trust finding 2): an app span
// carrying a ReplicaSet's UID and the ID of that ReplicaSet's object span
// (a public hash of the UID) would be joined under itself: it is
// quarantined instead, and no span leaves as its own parent.
func TestAppSpanCannotClaimItsOperationsSpanID(t *testing.T) {
	h := newHarness(t, nil)
	at := shakeClock
	m := newSpanMaker()
	opFragment(m, "ReplicaSet", "rs-1", "", "gen:1", fragment.LevelTrigger, "", at(0), at(0), at(0))
	h.feed(t, m.td)

	objectSpan := fragment.ObjectSpanID("rs-1", "ReplicaSet", "gen:1")
	app := newSpanMaker()
	forged := app.span("kubelet", randomTrace(7), pcommon.SpanID{}, "forged", at(100), time.Millisecond)
	forged.SetSpanID(objectSpan)
	forged.Attributes().PutStr("k8s.replicaset.uid", "rs-1")
	app.span("kubelet", randomTrace(7), objectSpan, "child", at(100), time.Millisecond)
	h.feed(t, app.td)
	h.drain()

	seen := false
	forEachSpan(h.output(), func(_ pcommon.Map, s ptrace.Span) {
		assert.NotEqual(t, s.SpanID(), s.ParentSpanID(), "%s is its own parent", s.Name())
		if s.Name() == "forged" {
			seen = true
			assert.NotEqual(t, fragment.TraceID("rs-1", "gen:1"), s.TraceID(), "not in the operation's trace")
		}
	})
	assert.True(t, seen, "the forged span still leaves (in a trace of its own)")
}

// TestTraceparentIntoAnotherNamespacesOperationIsIgnored (trust finding
// 4): a Deployment in namespace attacker annotated with the traceparent of
// an operation of namespace victim opens a trace of its own; one in the
// victim's own namespace may continue it.
func TestTraceparentIntoAnotherNamespacesOperationIsIgnored(t *testing.T) {
	h := newHarness(t, nil)
	at := shakeClock
	m := newSpanMaker()
	opFragment(m, "ReplicaSet", "rs-victim", "", "gen:1", fragment.LevelTrigger, "", at(0), at(0), at(0))
	victimTrace := fragment.TraceID("rs-victim", "gen:1")
	tp := "00-" + victimTrace.String() + "-00f067aa0ba902b7-01"
	opFragment(m, "Deployment", "dep-attacker", "", "gen:1", fragment.LevelTrigger, "", at(100), at(100), at(100))
	opFragment(m, "Deployment", "dep-neighbour", "", "gen:1", fragment.LevelTrigger, "", at(100), at(100), at(100))
	forEachSpan(m.td, func(_ pcommon.Map, s ptrace.Span) {
		uid, _ := s.Attributes().Get(fragment.KeyUID)
		ns := "victim"
		switch uid.Str() {
		case "dep-attacker":
			ns = "attacker"
			s.Attributes().PutStr(fragment.KeyTraceparent, tp)
		case "dep-neighbour":
			s.Attributes().PutStr(fragment.KeyTraceparent, tp)
		}
		s.Attributes().PutStr(fragment.KeyNamespace, ns)
	})
	h.feed(t, m.td)
	h.drain()
	placed := traceByUID(h.output())
	require.Contains(t, placed, "dep-attacker")
	assert.NotEqual(t, victimTrace, placed["dep-attacker"], "the other namespace's object does not enter the operation's trace")
	assert.Equal(t, victimTrace, placed["dep-neighbour"], "the same namespace's may continue it")
}

// TestAppSpanInAnOperationsTraceIDIsQuarantined (trust finding 2): a plain
// span carrying the trace ID this processor made for an operation (a
// public hash of the object's UID) and a span ID of its own choosing
// leaves in a trace of its own, not beside the operation's spans.
func TestAppSpanInAnOperationsTraceIDIsQuarantined(t *testing.T) {
	h := newHarness(t, nil)
	at := shakeClock
	m := newSpanMaker()
	opFragment(m, "ReplicaSet", "rs-1", "", "gen:1", fragment.LevelTrigger, "", at(0), at(0), at(0))
	h.feed(t, m.td)

	opTrace := fragment.TraceID("rs-1", "gen:1")
	app := newSpanMaker()
	root := app.span("forger", opTrace, pcommon.SpanID{}, "forged-root", at(100), time.Millisecond)
	root.SetSpanID(fragment.ObjectSpanID("rs-1", "ReplicaSet", "gen:1"))
	app.span("forger", opTrace, root.SpanID(), "forged-child", at(100), time.Millisecond)
	h.feed(t, app.td)
	h.drain()
	n := 0
	forEachSpan(h.output(), func(_ pcommon.Map, s ptrace.Span) {
		if strings.HasPrefix(s.Name(), "forged") {
			n++
			assert.NotEqual(t, opTrace, s.TraceID(), "%s is not in the operation's trace", s.Name())
		}
	})
	assert.Equal(t, 2, n, "they still leave")
}

// traceByUID is the trace each object's spans left in (the last one's,
// if they left in several).
func traceByUID(td ptrace.Traces) map[string]pcommon.TraceID {
	placed := map[string]pcommon.TraceID{}
	forEachSpan(td, func(_ pcommon.Map, s ptrace.Span) {
		uid, _ := s.Attributes().Get(fragment.KeyUID)
		placed[uid.Str()] = s.TraceID()
	})
	return placed
}
