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

// The five transitions of clusterloader2, from four phases each taken at
// its most precise: the watch's delivery of the new pod (not its
// creationTimestamp, to the second), the Scheduled Event (microseconds),
// the delivery of its containers started (not their startedAt, to the
// second; here the same update as Running, so run_to_watch is 0) and the
// delivery of Running.
func TestSLITransitionsTheClusterloader2Way(t *testing.T) {
	created := t0.Add(10 * time.Millisecond)
	sched := t0.Add(300 * time.Millisecond)
	run := t0.Add(time.Second) // startedAt: whole seconds
	watch := t0.Add(1200 * time.Millisecond)
	want := map[string]time.Duration{
		fragment.SLICreateToSchedule: 290 * time.Millisecond,
		fragment.SLIScheduleToRun:    900 * time.Millisecond,
		fragment.SLIRunToWatch:       0,
		fragment.SLIScheduleToWatch:  900 * time.Millisecond,
		fragment.SLIPodStartup:       1190 * time.Millisecond,
	}
	p := testPod("pod-1")

	t.Run("event before the pod runs", func(t *testing.T) {
		tr := newTracker()
		tr.observe(viewPod(p, nil), created, false)
		tr.observe(viewPod(scheduled(p, t0), nil), sched.Add(5*time.Millisecond), false)
		assert.Empty(t, sliDurations(tr.event(scheduledEvent("pod-1", sched))))
		out := tr.observe(viewPod(running(scheduled(p, t0), run), nil), watch, false)
		assert.Equal(t, want, sliDurations(out))
		assert.Empty(t, sliDurations(tr.observe(viewPod(running(scheduled(p, t0), run), nil), watch.Add(time.Second), false)), "once per pod start")
	})
	t.Run("event after the pod runs", func(t *testing.T) {
		tr := newTracker()
		tr.observe(viewPod(p, nil), created, false)
		assert.Empty(t, sliDurations(tr.observe(viewPod(running(scheduled(p, t0), run), nil), watch, false)), "bound and running in one update: waits for the Event")
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
	tr.event(eventView{uid: "pull-1", objectUID: "pod-1", reason: "Pulled", source: "kubelet", at: t0.Add(2 * time.Second), duration: 1500 * time.Millisecond, timeSource: fragment.TimeSourceEvent})
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

// TestSLIPhasesOnlyFromTheirReporters (trust finding 5): a Scheduled
// Event not written by the pod's scheduler, and a Pulled Event not written
// by the kubelet (anyone who may create Events in the pod's namespace can
// write them), do not move the SLI's phases: the pod's startup is measured
// as if they were not there.
func TestSLIPhasesOnlyFromTheirReporters(t *testing.T) {
	tr := newTracker()
	p := testPod("pod-1")
	tr.observe(viewPod(p, nil), t0, false)
	forgedSchedule := scheduledEvent("pod-1", t0.Add(-time.Hour))
	forgedSchedule.source = "attacker"
	tr.event(forgedSchedule)
	tr.event(scheduledEvent("pod-1", t0.Add(100*time.Millisecond)))
	tr.event(eventView{uid: "pull-x", objectUID: "pod-1", reason: "Pulled", source: "attacker", at: t0.Add(2 * time.Second), duration: 1500 * time.Millisecond, timeSource: fragment.TimeSourceEvent})
	out := tr.observe(viewPod(running(scheduled(p, t0), t0.Add(2*time.Second)), nil), t0.Add(2500*time.Millisecond), false)
	d := sliDurations(out)
	assert.Equal(t, 2500*time.Millisecond, d[fragment.SLIPodStartup], "no pull taken off")
	assert.Equal(t, 100*time.Millisecond, d[fragment.SLICreateToSchedule], "the scheduler's own Scheduled")
}

func TestSLIWithoutScheduledEventTakesTheCondition(t *testing.T) {
	tr := newTracker()
	p := testPod("pod-1")
	tr.observe(viewPod(p, nil), t0, false)
	tr.observe(viewPod(running(scheduled(p, t0.Add(time.Second)), t0.Add(2*time.Second)), nil), t0.Add(2200*time.Millisecond), false)

	assert.Empty(t, sliDurations(tr.quiet(t0.Add(4*time.Second), time.Hour, 0)), "waits for the Event a while")
	out := tr.quiet(t0.Add(8*time.Second), time.Hour, 0)
	d := sliDurations(out)
	require.Len(t, d, 5)
	assert.Equal(t, time.Second, d[fragment.SLICreateToSchedule], "PodScheduled's lastTransitionTime")
	assert.Equal(t, "condition", sliOf(out[0].part).scheduleSource)
	assert.Empty(t, tr.quiet(t0.Add(20*time.Second), time.Hour, 0), "sent once")
}

func TestSLIOnlyForPodStartsTheWatchSaw(t *testing.T) {
	t.Run("running at the initial list", func(t *testing.T) {
		tr := newTracker()
		p := running(scheduled(testPod("pod-1"), t0), t0.Add(time.Second))
		tr.observe(viewPod(p, nil), t0.Add(time.Minute), true)
		assert.Empty(t, sliDurations(tr.event(scheduledEvent("pod-1", t0))))
		assert.Empty(t, sliDurations(tr.quiet(t0.Add(time.Hour), time.Hour, 0)))
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
		assert.Empty(t, sliDurations(tr.quiet(t0.Add(time.Hour), time.Hour, 0)))
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

	tr.quiet(t0.Add(time.Minute), time.Hour, 0)
	assert.Empty(t, tr.earlyScheduled, "another node's pod's Event leaves after its TTL")
	for i := range maxEarlyScheduled + 10 {
		tr.event(scheduledEvent("p"+strconv.Itoa(i), t0.Add(time.Minute)))
	}
	assert.LessOrEqual(t, len(tr.earlyScheduled), maxEarlyScheduled)
}

// TestSLIPhasesAreTheWatchersOwnMoments: three pods created within one
// second (one creationTimestamp, to the second) at different sub-second
// offsets. Each phase boundary is the moment the watch delivered it:
// create when the new pod came, schedule when it came bound (no
// Scheduled Event), run when it came with its containers started; none
// is a second-precision field, and none is marked as one.
func TestSLIPhasesAreTheWatchersOwnMoments(t *testing.T) {
	tr := newTracker()
	type times struct{ create, bound, started time.Time }
	pods := map[string]times{}
	for i, off := range []time.Duration{120, 450, 870} {
		uid := "pod-" + strconv.Itoa(i)
		c := t0.Add(off * time.Millisecond) // the create request
		pods[uid] = times{create: c.Add(3 * time.Millisecond), bound: c.Add(40 * time.Millisecond), started: c.Add(1300 * time.Millisecond)}
	}
	var out []fragmentSpan
	for uid, at := range pods {
		p := testPod(uid)
		tr.observe(viewPod(p, nil), at.create, false)
		tr.observe(viewPod(scheduled(p, t0), nil), at.bound, false)
		// The kubelet's status report: containers started (startedAt to
		// the second), phase still Pending in this update.
		started := scheduled(p, t0)
		started.Status.ContainerStatuses = []corev1.ContainerStatus{{Name: "app", Image: "web:1", State: corev1.ContainerState{Running: &corev1.ContainerStateRunning{StartedAt: metav1.NewTime(at.started.Truncate(time.Second))}}}}
		tr.observe(viewPod(started, nil), at.started, false)
		out = append(out, tr.observe(viewPod(running(scheduled(p, t0), at.started.Truncate(time.Second)), nil), at.started.Add(5*time.Millisecond), false)...)
	}
	// Whatever waits for a Scheduled Event goes by now.
	out = append(out, tr.quiet(t0.Add(10*time.Second), time.Hour, 0)...)
	got := map[string]map[string]fragmentSpan{}
	for _, f := range out {
		if f.level != fragment.LevelSLI {
			continue
		}
		uid := f.obj.uid
		if got[uid] == nil {
			got[uid] = map[string]fragmentSpan{}
		}
		got[uid][f.name] = f
	}
	require.Len(t, got, 3)
	for uid, at := range pods {
		sli := got[uid]
		require.Len(t, sli, 5, uid)
		assert.Equal(t, at.create, sli[fragment.SLICreateToSchedule].start, "%s: create is the watch's delivery of the new pod", uid)
		assert.Equal(t, at.create, sli[fragment.SLIPodStartup].start, uid)
		assert.Equal(t, at.bound, sli[fragment.SLICreateToSchedule].end, "%s: schedule is the watch's delivery of the pod bound", uid)
		assert.Equal(t, at.started, sli[fragment.SLIScheduleToRun].end, "%s: run is the watch's delivery of the containers started", uid)
		assert.Equal(t, at.started.Add(5*time.Millisecond), sli[fragment.SLIPodStartup].end, uid)
		for name, f := range sli {
			p := sliOf(f.part)
			assert.False(t, p.secondPrecision, "%s %s marked second-precision", uid, name)
			assert.Equal(t, "watch", p.createSource, uid)
			assert.Equal(t, "watch", p.scheduleSource, uid)
		}
	}
}

// TestSLIMarksSecondPrecisionBoundaries: a pod first seen bound (an
// agent's view) has only its creationTimestamp for create, and with no
// Scheduled Event and no bound delivery before Running, only the
// PodScheduled condition for schedule: the spans with those boundaries
// say so.
func TestSLIMarksSecondPrecisionBoundaries(t *testing.T) {
	tr := newTracker()
	p := testPod("pod-1")
	// First seen bound and not running: create is out of sight.
	tr.observe(viewPod(scheduled(p, t0), nil), t0.Add(40*time.Millisecond), false)
	out := tr.observe(viewPod(running(scheduled(p, t0), t0.Add(time.Second)), nil), t0.Add(1300*time.Millisecond), false)
	sli := map[string]*sliPart{}
	for _, f := range out {
		if f.level == fragment.LevelSLI {
			sli[f.name] = sliOf(f.part)
		}
	}
	require.Len(t, sli, 5)
	assert.Equal(t, "creation_timestamp", sli[fragment.SLIPodStartup].createSource)
	assert.True(t, sli[fragment.SLIPodStartup].secondPrecision, "pod_startup starts at creationTimestamp")
	assert.True(t, sli[fragment.SLICreateToSchedule].secondPrecision)
	assert.False(t, sli[fragment.SLIScheduleToWatch].secondPrecision, "schedule is the bound delivery: precise")
	assert.False(t, sli[fragment.SLIRunToWatch].secondPrecision)
}

// TestSLIDeliveriesThatLagAreNotMoments: a delivery can lag the truth,
// never lead it. A pod delivered new 5 s after its creation second (a
// relist after a watch gap) takes creationTimestamp, marked; a Scheduled
// Event without eventTime (whole seconds) is no precise schedule; a pod
// delivered at a list gives no bound moment.
func TestSLIDeliveriesThatLagAreNotMoments(t *testing.T) {
	t.Run("relisted new pod", func(t *testing.T) {
		tr := newTracker()
		p := testPod("pod-1")
		tr.observe(viewPod(p, nil), t0.Add(5*time.Second), false)
		tr.observe(viewPod(scheduled(p, t0.Add(5*time.Second)), nil), t0.Add(5100*time.Millisecond), false)
		out := tr.observe(viewPod(running(scheduled(p, t0.Add(5*time.Second)), t0.Add(6*time.Second)), nil), t0.Add(6200*time.Millisecond), false)
		for _, f := range out {
			if f.name == fragment.SLIPodStartup {
				assert.Equal(t, t0, f.start, "creationTimestamp, not the late delivery")
				assert.True(t, sliOf(f.part).secondPrecision)
				assert.Equal(t, "creation_timestamp", sliOf(f.part).createSource)
			}
		}
		require.Len(t, sliDurations(out), 5)
	})
	t.Run("event without eventTime", func(t *testing.T) {
		tr := newTracker()
		p := testPod("pod-1")
		tr.observe(viewPod(p, nil), t0.Add(10*time.Millisecond), false)
		tr.event(eventView{uid: "s", objectUID: "pod-1", reason: "Scheduled", at: t0, timeSource: fragment.TimeSourceObject})
		out := tr.observe(viewPod(running(scheduled(p, t0), t0), nil), t0.Add(900*time.Millisecond), false)
		assert.Empty(t, sliDurations(out), "no precise schedule yet: waits")
		out = tr.quiet(t0.Add(10*time.Second), time.Hour, 0)
		require.Len(t, sliDurations(out), 5)
		assert.Equal(t, "condition", sliOf(out[0].part).scheduleSource)
		assert.True(t, sliOf(out[0].part).secondPrecision)
	})
	t.Run("bound at a list", func(t *testing.T) {
		tr := newTracker()
		p := testPod("pod-1")
		tr.observe(viewPod(scheduled(p, t0), nil), t0.Add(30*time.Second), true)
		out := tr.observe(viewPod(running(scheduled(p, t0), t0.Add(31*time.Second)), nil), t0.Add(31*time.Second), false)
		assert.Empty(t, sliDurations(out), "the list's time is no moment of binding: waits for the Event")
	})
}

// TestSLICreateNearTheSecondsEnd: a pod created at x.990 s is delivered
// after x+1 s; that delivery is still its moment, not the creation second.
func TestSLICreateNearTheSecondsEnd(t *testing.T) {
	tr := newTracker()
	p := testPod("pod-1")
	tr.observe(viewPod(p, nil), t0.Add(1020*time.Millisecond), false)
	tr.observe(viewPod(scheduled(p, t0.Add(time.Second)), nil), t0.Add(1060*time.Millisecond), false)
	out := tr.observe(viewPod(running(scheduled(p, t0.Add(time.Second)), t0.Add(2*time.Second)), nil), t0.Add(2100*time.Millisecond), false)
	require.Len(t, sliDurations(out), 5)
	for _, f := range out {
		if f.name == fragment.SLIPodStartup {
			assert.Equal(t, t0.Add(1020*time.Millisecond), f.start)
			assert.False(t, sliOf(f.part).secondPrecision)
		}
	}
}
