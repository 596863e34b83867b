package k8swatchreceiver

import (
	"strconv"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	corev1 "k8s.io/api/core/v1"
	eventsv1 "k8s.io/api/events/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"

	"github.com/kubestitch/kubestitch/internal/fragment"
)

func scheduledEvent(pod string, at time.Time) eventView {
	return viewEventsV1(&eventsv1.Event{
		ObjectMeta: metav1.ObjectMeta{UID: types.UID("sched-" + pod)},
		EventTime:  metav1.NewMicroTime(at), Reason: "Scheduled", Type: corev1.EventTypeNormal,
		ReportingController: "default-scheduler", Regarding: corev1.ObjectReference{Kind: "Pod", UID: types.UID(pod)},
	})
}

func sliDurations(fs []fragmentSpan) map[string]time.Duration {
	out := map[string]time.Duration{}
	for _, f := range fs {
		if f.level == fragment.LevelSLI {
			out[f.name] = f.end.Sub(f.start)
		}
	}
	return out
}

// The five transitions of clusterloader2, from the same four phases it
// takes: creation timestamp, Scheduled Event, last container start, and
// the moment the watch delivered the pod Running.
func TestSLITransitionsTheClusterloader2Way(t *testing.T) {
	created := t0
	sched := t0.Add(300 * time.Millisecond)
	run := t0.Add(time.Second) // startedAt: whole seconds
	watch := t0.Add(1200 * time.Millisecond)
	want := map[string]time.Duration{
		fragment.SLICreateToSchedule: 300 * time.Millisecond,
		fragment.SLIScheduleToRun:    700 * time.Millisecond,
		fragment.SLIRunToWatch:       200 * time.Millisecond,
		fragment.SLIScheduleToWatch:  900 * time.Millisecond,
		fragment.SLIPodStartup:       1200 * time.Millisecond,
	}
	p := testPod("pod-1")

	t.Run("event before the pod runs", func(t *testing.T) {
		tr := newTracker()
		tr.observe(viewPod(p, nil), created.Add(10*time.Millisecond), false)
		tr.observe(viewPod(scheduled(p, t0), nil), sched.Add(5*time.Millisecond), false)
		assert.Empty(t, sliDurations(tr.event(scheduledEvent("pod-1", sched))))
		out := tr.observe(viewPod(running(scheduled(p, t0), run), nil), watch, false)
		assert.Equal(t, want, sliDurations(out))
		assert.Empty(t, sliDurations(tr.observe(viewPod(running(scheduled(p, t0), run), nil), watch.Add(time.Second), false)), "once per pod start")
	})
	t.Run("event after the pod runs", func(t *testing.T) {
		tr := newTracker()
		tr.observe(viewPod(p, nil), created.Add(10*time.Millisecond), false)
		assert.Empty(t, sliDurations(tr.observe(viewPod(running(scheduled(p, t0), run), nil), watch, false)))
		out := tr.event(scheduledEvent("pod-1", sched))
		assert.Equal(t, want, sliDurations(out))
		for _, f := range out {
			assert.Equal(t, fragment.ObjectSpanID("pod-1", "Pod", "gen:1"), f.parentID, "under the pod's object span, in its trace")
			assert.Equal(t, fragment.TraceID("pod-1", "gen:1"), f.traceID)
			assert.Equal(t, "event", sliOf(f.part).scheduleSource)
		}
	})
}

func TestSLILeavesOutImagePulls(t *testing.T) {
	tr := newTracker()
	p := testPod("pod-1")
	tr.observe(viewPod(p, nil), t0, false)
	tr.event(scheduledEvent("pod-1", t0.Add(100*time.Millisecond)))
	tr.event(eventView{uid: "pull-1", objectUID: "pod-1", reason: "Pulled", at: t0.Add(2 * time.Second), duration: 1500 * time.Millisecond, timeSource: fragment.TimeSourceEvent})
	out := tr.observe(viewPod(running(scheduled(p, t0), t0.Add(2*time.Second)), nil), t0.Add(2500*time.Millisecond), false)

	d := sliDurations(out)
	assert.Equal(t, time.Second, d[fragment.SLIPodStartup], "2.5 s from creation to watch, less the 1.5 s pull")
	assert.Equal(t, 2400*time.Millisecond, d[fragment.SLIScheduleToWatch], "the other transitions keep the pull")
	for _, f := range out {
		if f.name == fragment.SLIPodStartup {
			assert.Equal(t, 1500*time.Millisecond, sliOf(f.part).excluded)
		}
	}
}

func TestSLIWithoutScheduledEventTakesTheCondition(t *testing.T) {
	tr := newTracker()
	p := testPod("pod-1")
	tr.observe(viewPod(p, nil), t0, false)
	tr.observe(viewPod(running(scheduled(p, t0.Add(time.Second)), t0.Add(2*time.Second)), nil), t0.Add(2200*time.Millisecond), false)

	assert.Empty(t, sliDurations(tr.quiet(t0.Add(4*time.Second), time.Hour)), "waits for the Event a while")
	out := tr.quiet(t0.Add(8*time.Second), time.Hour)
	d := sliDurations(out)
	require.Len(t, d, 5)
	assert.Equal(t, time.Second, d[fragment.SLICreateToSchedule], "PodScheduled's lastTransitionTime")
	assert.Equal(t, "condition", sliOf(out[0].part).scheduleSource)
	assert.Empty(t, tr.quiet(t0.Add(20*time.Second), time.Hour), "sent once")
}

func TestSLIOnlyForPodStartsTheWatchSaw(t *testing.T) {
	t.Run("running at the initial list", func(t *testing.T) {
		tr := newTracker()
		p := running(scheduled(testPod("pod-1"), t0), t0.Add(time.Second))
		tr.observe(viewPod(p, nil), t0.Add(time.Minute), true)
		assert.Empty(t, sliDurations(tr.event(scheduledEvent("pod-1", t0))))
		assert.Empty(t, sliDurations(tr.quiet(t0.Add(time.Hour), time.Hour)))
	})
	t.Run("first seen running, then updated", func(t *testing.T) {
		// A watcher that starts after the pod ran: its next update is no
		// moment of running.
		tr := newTracker()
		p := running(scheduled(testPod("pod-1"), t0), t0.Add(time.Second))
		p.Status.Conditions = p.Status.Conditions[:1] // not Ready yet: the operation stays open
		assert.Empty(t, sliDurations(tr.observe(viewPod(p, nil), t0.Add(time.Minute), false)))
		assert.Empty(t, sliDurations(tr.event(scheduledEvent("pod-1", t0))))
		p = p.DeepCopy()
		p.ResourceVersion = "9"
		assert.Empty(t, sliDurations(tr.observe(viewPod(p, nil), t0.Add(2*time.Minute), false)))
		assert.Empty(t, sliDurations(tr.quiet(t0.Add(time.Hour), time.Hour)))
	})
	t.Run("pending at the initial list, running later", func(t *testing.T) {
		tr := newTracker()
		p := scheduled(testPod("pod-1"), t0)
		tr.observe(viewPod(p, nil), t0.Add(time.Second), true)
		tr.event(scheduledEvent("pod-1", t0.Add(100*time.Millisecond)))
		out := tr.observe(viewPod(running(p, t0.Add(2*time.Second)), nil), t0.Add(2500*time.Millisecond), false)
		assert.Equal(t, 2500*time.Millisecond, sliDurations(out)[fragment.SLIPodStartup], "its running was watched")
	})
	t.Run("a StatefulSet's pod", func(t *testing.T) {
		tr := newTracker()
		p := testPod("pod-1")
		p.OwnerReferences[0].Kind = "StatefulSet"
		tr.observe(viewPod(p, nil), t0, false)
		tr.event(scheduledEvent("pod-1", t0))
		assert.Empty(t, sliDurations(tr.observe(viewPod(running(scheduled(p, t0), t0), nil), t0.Add(time.Second), false)))
	})
}

// A node agent sees its pod only once bound, often after the scheduler's
// Event: the Event waits for the pod a while, bounded.
func TestSLIScheduledEventBeforeThePod(t *testing.T) {
	tr := newTracker()
	tr.event(scheduledEvent("pod-1", t0.Add(300*time.Millisecond)))
	tr.event(scheduledEvent("other-node-pod", t0.Add(300*time.Millisecond)))
	p := testPod("pod-1")
	tr.observe(viewPod(scheduled(p, t0), nil), t0.Add(310*time.Millisecond), false)
	out := tr.observe(viewPod(running(scheduled(p, t0), t0.Add(time.Second)), nil), t0.Add(1200*time.Millisecond), false)
	assert.Equal(t, 300*time.Millisecond, sliDurations(out)[fragment.SLICreateToSchedule])
	for _, f := range out {
		if sliOf(f.part) != nil {
			assert.Equal(t, "event", sliOf(f.part).scheduleSource)
		}
	}

	tr.quiet(t0.Add(time.Minute), time.Hour)
	assert.Empty(t, tr.earlyScheduled, "another node's pod's Event leaves after its TTL")
	for i := range maxEarlyScheduled + 10 {
		tr.event(scheduledEvent("p"+strconv.Itoa(i), t0.Add(time.Minute)))
	}
	assert.LessOrEqual(t, len(tr.earlyScheduled), maxEarlyScheduled)
}
