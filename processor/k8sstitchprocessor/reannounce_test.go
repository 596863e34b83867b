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

// reannounce marks the spans of td as k8s_watch sends them again: the
// triggers of open operations, and the triggers and object spans of
// operations that ended a moment ago.
func reannounce(td ptrace.Traces) ptrace.Traces {
	forEachSpan(td, func(_ pcommon.Map, s ptrace.Span) {
		s.Attributes().PutBool(fragment.KeyReannounced, true)
	})
	return td
}

// rolloutStart is what the gateway owning the namespace got of a rollout
// before it died: the Deployment's and ReplicaSet's triggers and the first
// pod's.
func rolloutStart(t0 time.Time) ptrace.Traces {
	m := newSpanMaker()
	fragmentSpan(m, "user", "Deployment", "dep-1", "web", "", fragment.PhaseTrigger, fragment.LevelTrigger, t0, t0, 0)
	fragmentSpan(m, "kube-controller-manager", "ReplicaSet", "rs-1", "web-1", "dep-1", fragment.PhaseTrigger, fragment.LevelTrigger, t0.Add(time.Millisecond), t0.Add(time.Millisecond), 0)
	fragmentSpan(m, "kube-controller-manager", "Pod", "pod-1", "web-1-a", "rs-1", fragment.PhaseTrigger, fragment.LevelTrigger, t0.Add(2*time.Millisecond), t0.Add(2*time.Millisecond), time.Millisecond)
	return m.td
}

// secondPod is the start of the rollout's second pod, 5 s in.
func secondPod(t0 time.Time) ptrace.Traces {
	m := newSpanMaker()
	at := t0.Add(5 * time.Second)
	fragmentSpan(m, "kube-controller-manager", "Pod", "pod-2", "web-1-b", "rs-1", fragment.PhaseTrigger, fragment.LevelTrigger, at, at, time.Millisecond)
	fragmentSpan(m, "kubelet", "Pod", "pod-2", "web-1-b", "rs-1", fragment.PhasePodStartup, fragment.LevelObject, at, at, time.Second)
	return m.td
}

// rolloutEnd is the ReplicaSet's and the Deployment's object spans, when
// the rollout converges 20 s in.
func rolloutEnd(t0 time.Time) ptrace.Traces {
	m := newSpanMaker()
	fragmentSpan(m, "kube-controller-manager", "ReplicaSet", "rs-1", "web-1", "dep-1", fragment.PhaseReplicaSetScale, fragment.LevelObject, t0, t0, 20*time.Second)
	fragmentSpan(m, "kube-controller-manager", "Deployment", "dep-1", "web", "", fragment.PhaseDeploymentRollout, fragment.LevelObject, t0, t0, 20*time.Second)
	return m.td
}

// rolloutRest feeds what comes after the start, as it comes: the second
// pod, which waits out its wait for its owner's operation, then the end.
func rolloutRest(t *testing.T, h *stitchHarness, t0 time.Time) {
	h.feed(t, secondPod(t0))
	h.clock = h.clock.Add(h.p.cfg.Wait + time.Second)
	h.flush()
	h.feed(t, rolloutEnd(t0))
	h.drain()
}

// A gateway that takes a namespace over from one that died mid-rollout
// learns the open rollout from the reannounced triggers, and the rest of
// the rollout joins it there, in the trace the dead gateway had started:
// the backend gets one trace. The reannounced spans themselves are not
// sent on: the dead gateway sent them, or they are lost with it, but
// never twice.
func TestNewOwnerContinuesTheOperationFromReannouncedTriggers(t *testing.T) {
	t0 := time.Date(2026, 12, 8, 10, 0, 0, 0, time.UTC)
	rollout := fragment.TraceID("dep-1", "gen:1")

	newOwner := newHarness(t, nil)
	newOwner.feed(t, reannounce(rolloutStart(t0)))
	rolloutRest(t, newOwner, t0)

	traces := map[string]pcommon.TraceID{}
	forEachSpan(newOwner.output(), func(_ pcommon.Map, s ptrace.Span) {
		uid, _ := s.Attributes().Get(fragment.KeyUID)
		traces[uid.Str()+" "+s.Name()] = s.TraceID()
	})
	for _, span := range []string{"pod-2 " + fragment.PhaseTrigger, "pod-2 " + fragment.PhasePodStartup, "rs-1 " + fragment.PhaseReplicaSetScale, "dep-1 " + fragment.PhaseDeploymentRollout} {
		require.Contains(t, traces, span)
		assert.Equal(t, rollout, traces[span], "%s in the rollout's trace", span)
	}
	assert.NotContains(t, traces, "dep-1 "+fragment.PhaseTrigger, "a reannounced span is learnt from, not sent on")
	assert.NotContains(t, traces, "pod-1 "+fragment.PhaseTrigger)
}

// A pod's deletion outlasts its ReplicaSet's scale-down: the scale-down
// has ended when the pod's end reaches a gateway that took the namespace
// over. The ended operation, reannounced for a while after its end, lets
// that gateway place the deletion in the rollout's trace.
func TestNewOwnerPlacesAChildAfterItsOwnersOperationEnded(t *testing.T) {
	t0 := time.Date(2026, 12, 8, 10, 0, 0, 0, time.UTC)
	m := newSpanMaker()
	fragmentSpan(m, "user", "Deployment", "dep-1", "web", "", fragment.PhaseTrigger, fragment.LevelTrigger, t0, t0, 0)
	fragmentSpan(m, "kube-controller-manager", "ReplicaSet", "rs-1", "web-1", "dep-1", fragment.PhaseTrigger, fragment.LevelTrigger, t0, t0, 0)
	fragmentSpan(m, "kube-controller-manager", "ReplicaSet", "rs-1", "web-1", "dep-1", fragment.PhaseReplicaSetScale, fragment.LevelObject, t0, t0, 2*time.Second)
	fragmentSpan(m, "kube-controller-manager", "Deployment", "dep-1", "web", "", fragment.PhaseDeploymentRollout, fragment.LevelObject, t0, t0, 2*time.Second)
	// A pod operation that began at 1 s, under the scale-down, and ends at
	// 20 s (a deletion, typically; a start here, as the helper makes).
	pod := newSpanMaker()
	fragmentSpan(pod, "kubelet", "Pod", "pod-1", "web-1-a", "rs-1", fragment.PhasePodStartup, fragment.LevelObject, t0.Add(time.Second), t0.Add(time.Second), 19*time.Second)

	newOwner := newHarness(t, nil)
	newOwner.feed(t, reannounce(m.td))
	newOwner.feed(t, pod.td)
	newOwner.drain()
	var got pcommon.TraceID
	forEachSpan(newOwner.output(), func(_ pcommon.Map, s ptrace.Span) {
		if s.Name() == fragment.PhasePodStartup {
			got = s.TraceID()
		}
	})
	assert.Equal(t, fragment.TraceID("dep-1", "gen:1"), got, "the pod's end in the rollout's trace")
	assert.Equal(t, 1, newOwner.output().SpanCount(), "only the pod's span goes on")
}

// The gateway that has the operation drops the reannounced trigger, even
// once its span ID has left the object's last 32: the backend gets the
// trigger once.
func TestOwnerDropsReannouncedTriggersOfItsOperations(t *testing.T) {
	t0 := time.Date(2026, 12, 8, 10, 0, 0, 0, time.UTC)
	owner := newHarness(t, nil)
	owner.feed(t, rolloutStart(t0))
	owner.p.graph.get("dep-1").Seen = nil // as if 32 later fragments of it had gone by
	owner.feed(t, reannounce(rolloutStart(t0)))
	rolloutRest(t, owner, t0)

	n := 0
	forEachSpan(owner.output(), func(_ pcommon.Map, s ptrace.Span) {
		if s.SpanID() == fragment.TriggerSpanID("dep-1", "gen:1") {
			n++
		}
	})
	assert.Equal(t, 1, n, "the Deployment's trigger once")
}

// A gateway that learnt an open operation from its reannounced trigger
// learns its end from the reannounced end: it does not hold it open, where
// it would take in the next rollout's pods and end in a second, timed-out
// copy of an end the dead gateway sent.
func TestReannouncedEndClosesTheOperationANewOwnerLearnt(t *testing.T) {
	t0 := time.Date(2026, 12, 8, 10, 0, 0, 0, time.UTC)
	h := newHarness(t, nil)
	h.feed(t, reannounce(rolloutStart(t0)))
	h.feed(t, reannounce(rolloutEnd(t0)))
	for _, uid := range []string{"dep-1", "rs-1"} {
		r := h.p.graph.get(uid).op("gen:1")
		require.NotNil(t, r, uid)
		assert.True(t, r.Closed, "%s: closed by its reannounced end", uid)
	}
	h.clock = h.clock.Add(h.p.cfg.OperationTimeout + time.Minute)
	h.flush()
	assert.Zero(t, h.output().SpanCount(), "no end of its own: the dead gateway sent it")
}
