package k8swatchreceiver

import (
	"encoding/json"
	"strconv"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"go.opentelemetry.io/collector/pdata/ptrace"
	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/utils/ptr"

	"github.com/kubestitch/kubestitch/internal/fragment"
)

var t0 = time.Date(2026, 11, 25, 10, 0, 0, 0, time.UTC)

func testPod(uid string) *corev1.Pod {
	return &corev1.Pod{
		ObjectMeta: metav1.ObjectMeta{
			Name: "web-abc", Namespace: "default", UID: types.UID(uid), ResourceVersion: "1",
			CreationTimestamp: metav1.NewTime(t0),
			OwnerReferences: []metav1.OwnerReference{{
				APIVersion: "apps/v1", Kind: "ReplicaSet", Name: "web-1", UID: "rs-1", Controller: ptr.To(true),
			}},
			ManagedFields: []metav1.ManagedFieldsEntry{{Manager: "kube-controller-manager", Time: ptr.To(metav1.NewTime(t0))}},
		},
		Spec: corev1.PodSpec{Containers: []corev1.Container{{Name: "app", Image: "web:1"}}},
	}
}

func scheduled(p *corev1.Pod, at time.Time) *corev1.Pod {
	p = p.DeepCopy()
	p.ResourceVersion = "2"
	p.Spec.NodeName = "node-1"
	p.Status.Conditions = append(p.Status.Conditions, corev1.PodCondition{Type: corev1.PodScheduled, Status: corev1.ConditionTrue, LastTransitionTime: metav1.NewTime(at)})
	return p
}

func running(p *corev1.Pod, at time.Time) *corev1.Pod {
	p = p.DeepCopy()
	p.ResourceVersion = "3"
	p.ManagedFields = append(p.ManagedFields, metav1.ManagedFieldsEntry{Manager: "kubelet", Subresource: "status", Time: ptr.To(metav1.NewTime(at))})
	p.Status.Phase = corev1.PodRunning
	p.Status.Conditions = append(p.Status.Conditions, corev1.PodCondition{Type: corev1.PodReady, Status: corev1.ConditionTrue, LastTransitionTime: metav1.NewTime(at)})
	p.Status.ContainerStatuses = []corev1.ContainerStatus{{Name: "app", Image: "web:1", State: corev1.ContainerState{Running: &corev1.ContainerStateRunning{StartedAt: metav1.NewTime(at)}}}}
	return p
}

func names(fs []fragmentSpan) []string {
	out := make([]string, len(fs))
	for i, f := range fs {
		out[i] = f.name
	}
	return out
}

func TestPodStartupLiveYieldsEachStepOnce(t *testing.T) {
	tr := newTracker()
	p := testPod("pod-1")
	allow := map[string]bool{}

	created := tr.observe(viewPod(p, allow), t0.Add(10*time.Millisecond), false)
	sched := tr.observe(viewPod(scheduled(p, t0), allow), t0.Add(50*time.Millisecond), false)
	ready := tr.observe(viewPod(running(scheduled(p, t0), t0.Add(time.Second)), allow), t0.Add(900*time.Millisecond), false)
	again := tr.observe(viewPod(running(scheduled(p, t0), t0.Add(time.Second)), allow), t0.Add(2*time.Second), false)

	assert.Equal(t, []string{fragment.PhaseTrigger}, names(created))
	assert.Equal(t, []string{fragment.PhasePodSchedule}, names(sched))
	var steps, sli []fragmentSpan
	for _, f := range ready {
		if f.level == fragment.LevelSLI {
			sli = append(sli, f)
		} else {
			steps = append(steps, f)
		}
	}
	assert.Equal(t, []string{fragment.PhaseContainerStart, fragment.PhasePodReady, fragment.PhasePodStartup}, names(steps))
	assert.Len(t, sli, 5, "the SLI spans too: the delivery of the pod bound gave their schedule")
	assert.Empty(t, again, "an update that changes no step emits nothing")

	objectSpan := fragment.ObjectSpanID("pod-1", "Pod", "gen:1")
	trace := fragment.TraceID("pod-1", "gen:1")
	all := append(append(append([]fragmentSpan{}, created...), sched...), ready...)
	for _, f := range all {
		assert.Equal(t, trace, f.traceID, f.name)
		assert.Equal(t, fragment.TimeSourceWatch, f.timeSource, "seen live: watch arrival times")
		if f.level != fragment.LevelObject {
			assert.Equal(t, objectSpan, f.parentID, "%s hangs under pod.startup", f.name)
		}
		assert.False(t, f.end.Before(f.start), f.name)
	}
	startup := steps[2]
	assert.Equal(t, objectSpan, startup.spanID)
	assert.Equal(t, t0.Add(10*time.Millisecond), startup.start, "starts at the trigger as observed")
	assert.Equal(t, t0.Add(900*time.Millisecond), startup.end)
	assert.Equal(t, "kube-scheduler", sched[0].service)
	assert.Equal(t, "kubelet", ready[0].service)
	assert.Equal(t, "rs-1", startup.obj.ownerUID)
}

func TestRelistAndRestartYieldNoDuplicate(t *testing.T) {
	// prepare: a pod observed up to scheduled, its state persisted.
	tr := newTracker()
	tr.trackChanges()
	var saved []byte
	p := scheduled(testPod("pod-1"), t0)
	first := tr.observe(viewPod(p, nil), t0.Add(time.Second), false)
	require.Equal(t, []string{fragment.PhaseTrigger, fragment.PhasePodSchedule}, names(first))
	tr.takeChanges(func(_ string, st *objectState) {
		var err error
		saved, err = json.Marshal(st)
		require.NoError(t, err)
	})
	require.NotNil(t, saved, "the change is there to persist")

	// test: a relist in the same process, and a restart that restores state.
	relist := tr.observe(viewPod(p, nil), t0.Add(5*time.Second), false)
	restarted := newTracker()
	st := &objectState{}
	require.NoError(t, json.Unmarshal(saved, st))
	restarted.restore("pod-1", st)
	afterRestart := restarted.observe(viewPod(running(p, t0.Add(2*time.Second)), nil), t0.Add(10*time.Second), true)

	// verify
	assert.Empty(t, relist)
	assert.Equal(t, []string{fragment.PhaseContainerStart, fragment.PhasePodReady, fragment.PhasePodStartup}, names(afterRestart),
		"after a restart only the steps not yet emitted")
	assert.Equal(t, t0.Add(2*time.Second), afterRestart[1].end, "seen at relist: the object's own timestamp")
	assert.Equal(t, fragment.TimeSourceObject, afterRestart[1].timeSource)
	assert.Equal(t, first[0].triggerTime, afterRestart[2].start, "the restored trigger time")
}

func TestHistoryUsesObjectTimestampsAndSkipsFinishedOperations(t *testing.T) {
	tr := newTracker()
	mid := tr.observe(viewPod(scheduled(testPod("pod-1"), t0.Add(time.Second)), nil), t0.Add(time.Minute), true)
	done := tr.observe(viewPod(running(scheduled(testPod("pod-2"), t0), t0), nil), t0.Add(time.Hour), true)

	require.Equal(t, []string{fragment.PhaseTrigger, fragment.PhasePodSchedule}, names(mid))
	assert.Equal(t, t0, mid[0].start, "trigger at creationTimestamp")
	assert.Equal(t, t0.Add(time.Second), mid[1].end)
	assert.Equal(t, fragment.TimeSourceObject, mid[1].timeSource)
	assert.Empty(t, done, "an operation finished before we watched has nothing truthful to emit")
}

// A new k8swatch Lease holder lists a Deployment whose rollout converged
// while no watcher saw it: the dead holder left that rollout open at the
// gateway, where it would take in the next rollout's ReplicaSet. The first
// list sends its object span, marked resumed, so the gateway can close it.
func TestFirstListClosesARecentOperationItDidNotSee(t *testing.T) {
	d := convergedDeployment(testDeployment(3, 2))
	d.ManagedFields = []metav1.ManagedFieldsEntry{{Manager: "kubectl", Operation: metav1.ManagedFieldsOperationUpdate, Time: ptr.To(metav1.NewTime(t0))}}
	d.Status.Conditions = []appsv1.DeploymentCondition{{
		Type: appsv1.DeploymentProgressing, Status: corev1.ConditionTrue, Reason: "NewReplicaSetAvailable",
		LastUpdateTime: metav1.NewTime(t0.Add(20 * time.Second)),
	}}

	got := newTracker().observe(viewDeployment(d, nil), t0.Add(30*time.Second), true)
	require.Equal(t, []string{fragment.PhaseDeploymentRollout}, names(got))
	f := got[0]
	assert.True(t, objectOf(f.part).resumed)
	assert.True(t, objectOf(f.part).converged)
	assert.Equal(t, fragment.ObjectSpanID("dep-1", "Deployment", "gen:3"), f.spanID, "the span the dead holder would have sent: a repeat where it did")
	assert.Equal(t, t0, f.start, "from the last spec change")
	assert.Equal(t, t0.Add(20*time.Second), f.end, "to when the object says it converged")
	assert.Equal(t, fragment.TimeSourceObject, f.timeSource)

	td := toTraces(got, "test")
	v, ok := td.ResourceSpans().At(0).ScopeSpans().At(0).Spans().At(0).Attributes().Get(fragment.KeyResumed)
	require.True(t, ok, "the gateway tells it from an operation's own end")
	assert.True(t, v.Bool())

	assert.Empty(t, newTracker().observe(viewDeployment(d, nil), t0.Add(time.Hour), true),
		"older than any operation a gateway still holds open")
	tr := newTracker()
	tr.observe(viewDeployment(d, nil), t0.Add(30*time.Second), true)
	assert.Empty(t, tr.observe(viewDeployment(d, nil), t0.Add(40*time.Second), true), "once per operation")
}

func testDeployment(gen int64, replicas int32) *appsv1.Deployment {
	return &appsv1.Deployment{
		ObjectMeta: metav1.ObjectMeta{Name: "web", Namespace: "default", UID: "dep-1", Generation: gen, ResourceVersion: "1", CreationTimestamp: metav1.NewTime(t0)},
		Spec:       appsv1.DeploymentSpec{Replicas: ptr.To(replicas)},
	}
}

func convergedDeployment(d *appsv1.Deployment) *appsv1.Deployment {
	d = d.DeepCopy()
	d.ResourceVersion += "x"
	r := *d.Spec.Replicas
	d.Status = appsv1.DeploymentStatus{ObservedGeneration: d.Generation, Replicas: r, UpdatedReplicas: r, AvailableReplicas: r, ReadyReplicas: r}
	return d
}

func TestDeploymentGenerationsAreSeparateOperations(t *testing.T) {
	tr := newTracker()
	open1 := tr.observe(viewDeployment(testDeployment(1, 3), nil), t0, false)
	done1 := tr.observe(viewDeployment(convergedDeployment(testDeployment(1, 3)), nil), t0.Add(2*time.Second), false)
	open2 := tr.observe(viewDeployment(testDeployment(2, 5), nil), t0.Add(time.Minute), false)
	open3 := tr.observe(viewDeployment(testDeployment(3, 8), nil), t0.Add(61*time.Second), false)

	assert.Equal(t, []string{fragment.PhaseTrigger}, names(open1))
	require.Equal(t, []string{fragment.PhaseDeploymentRollout}, names(done1))
	assert.True(t, objectOf(done1[0].part).converged)
	assert.Equal(t, []string{fragment.PhaseTrigger}, names(open2))
	assert.NotEqual(t, open1[0].traceID, open2[0].traceID, "a generation bump is a new operation")
	require.Equal(t, []string{fragment.PhaseDeploymentRollout, fragment.PhaseTrigger}, names(open3),
		"a spec change before convergence closes the old rollout as not converged")
	assert.False(t, objectOf(open3[0].part).converged)
	assert.Equal(t, "superseded by gen:3", objectOf(open3[0].part).reason)
	assert.Equal(t, fragment.ObjectSpanID("dep-1", "Deployment", "gen:2"), open3[0].spanID)
}

func TestDeletionIsAnOperation(t *testing.T) {
	tr := newTracker()
	p := running(scheduled(testPod("pod-1"), t0), t0)
	tr.observe(viewPod(p, nil), t0, true)
	deleting := p.DeepCopy()
	deleting.DeletionTimestamp = ptr.To(metav1.NewTime(t0.Add(time.Minute + 30*time.Second)))
	deleting.DeletionGracePeriodSeconds = ptr.To(int64(30))

	start := tr.observe(viewPod(deleting, nil), t0.Add(time.Minute), false)
	gone := tr.gone(viewPod(deleting, nil), t0.Add(time.Minute+2*time.Second))

	require.Equal(t, []string{fragment.PhaseTrigger}, names(start))
	assert.Equal(t, "delete", start[0].trigger)
	require.Equal(t, []string{fragment.PhaseDelete}, names(gone))
	assert.Equal(t, 2*time.Second, gone[0].end.Sub(gone[0].start))
	assert.Equal(t, 0, tr.tracked(), "state of a deleted object is dropped")
}

func TestPulledEventBecomesImagePullSpan(t *testing.T) {
	tr := newTracker()
	tr.observe(viewPod(scheduled(testPod("pod-1"), t0), nil), t0, false)
	ev := viewCoreEvent(&corev1.Event{
		ObjectMeta:     metav1.ObjectMeta{UID: "ev-1"},
		InvolvedObject: corev1.ObjectReference{UID: "pod-1", FieldPath: "spec.containers{app}"},
		Reason:         "Pulled", Message: `Successfully pulled image "web:1" in 1.5s (1.5s including waiting). Image size: 1 bytes.`,
		Source: corev1.EventSource{Component: "kubelet"}, LastTimestamp: metav1.NewTime(t0.Add(3 * time.Second)),
	})
	pulls := tr.event(ev)
	dup := tr.event(ev)
	other := tr.event(eventView{uid: "ev-2", objectUID: "pod-1", reason: "Started", at: t0})

	require.Equal(t, []string{fragment.PhaseImagePull}, names(pulls))
	assert.Equal(t, 1500*time.Millisecond, pulls[0].end.Sub(pulls[0].start))
	assert.Equal(t, "app", stepOf(pulls[0].part).container)
	assert.Empty(t, dup, "the same Event seen again is the same span, emitted once")
	assert.Empty(t, other, "an Event without duration waits to be a span event")

	done := tr.observe(viewPod(running(scheduled(testPod("pod-1"), t0), t0), nil), t0.Add(4*time.Second), false)
	require.Equal(t, fragment.PhasePodStartup, done[len(done)-1].name)
	require.Len(t, objectOf(done[len(done)-1].part).events, 1)
	assert.Equal(t, "Started", objectOf(done[len(done)-1].part).events[0].name)
}

func TestSecondTimestampsSharpenedByDelivery(t *testing.T) {
	second := eventView{at: t0, timeSource: fragment.TimeSourceObject}
	got := seenAt(second, t0.Add(730*time.Millisecond))
	assert.Equal(t, t0.Add(730*time.Millisecond), got.at, "delivered within the second: the delivery time")
	assert.Equal(t, fragment.TimeSourceWatch, got.timeSource)

	late := seenAt(second, t0.Add(5*time.Second))
	assert.Equal(t, t0, late.at, "a relisted Event keeps its own second")
	assert.Equal(t, fragment.TimeSourceObject, late.timeSource)

	precise := eventView{at: t0, timeSource: fragment.TimeSourceEvent}
	assert.Equal(t, t0, seenAt(precise, t0.Add(200*time.Millisecond)).at, "a microsecond eventTime is kept")

	skewed := seenAt(second, t0.Add(-time.Second))
	assert.Equal(t, t0, skewed.at, "an Event from the future (clock skew) keeps its time")
}

func TestSpanIDsAreStableAcrossTrackers(t *testing.T) {
	run := func() []fragmentSpan {
		tr := newTracker()
		p := testPod("pod-1")
		out := tr.observe(viewPod(p, nil), t0, false)
		out = append(out, tr.observe(viewPod(running(scheduled(p, t0), t0), nil), t0.Add(time.Second), false)...)
		return out
	}
	a, b := run(), run()
	require.Equal(t, len(a), len(b))
	for i := range a {
		assert.Equal(t, a[i].spanID, b[i].spanID, a[i].name)
	}
	seen := map[string]bool{}
	for _, f := range a {
		assert.False(t, seen[f.spanID.String()], "distinct span ID per step")
		seen[f.spanID.String()] = true
	}
}

func TestPodDeletionIsFinishedByItsNodeAgentWhoeverWroteItsStatusLast(t *testing.T) {
	// A loaded node misses its heartbeats: the node lifecycle controller
	// (kube-controller-manager) marks its pods not ready, after kwok's
	// last status write; then the garbage collector deletes the pod.
	p := running(scheduled(testPod("pod-1"), t0), t0)
	p.ManagedFields[len(p.ManagedFields)-1].Manager = "kwok"
	notReady := p.DeepCopy()
	notReady.ManagedFields = append(notReady.ManagedFields, metav1.ManagedFieldsEntry{Manager: "kube-controller-manager", Subresource: "status", Time: ptr.To(metav1.NewTime(t0.Add(40 * time.Second)))})
	deleting := notReady.DeepCopy()
	deleting.DeletionTimestamp = ptr.To(metav1.NewTime(t0.Add(time.Minute)))
	deleting.DeletionGracePeriodSeconds = ptr.To(int64(0))

	for name, transformed := range map[string]bool{"as watched": false, "after the informer transform": true} {
		t.Run(name, func(t *testing.T) {
			tr := newTracker()
			view := func(p *corev1.Pod) objectView {
				if transformed {
					obj, err := newTransform(nil, "")(p.DeepCopy())
					require.NoError(t, err)
					return *obj.(*cachedObject).take().view
				}
				return viewPod(p, nil)
			}
			tr.observe(view(p), t0, false)
			tr.observe(view(notReady), t0.Add(40*time.Second), false)
			tr.observe(view(deleting), t0.Add(time.Minute), false)
			gone := tr.gone(view(deleting), t0.Add(time.Minute+time.Second))

			require.Equal(t, []string{fragment.PhaseDelete}, names(gone))
			assert.Equal(t, "kwok", gone[0].service, "the node agent finishes the deletion, not the last status writer")
		})
	}
}

func TestTriggerSeenLateStartsNoLaterThanItsObjectSays(t *testing.T) {
	scaled := t0.Add(time.Minute + 200*time.Millisecond)
	d := testDeployment(3, 8)
	d.ManagedFields = []metav1.ManagedFieldsEntry{{Manager: "e2e.test", Operation: metav1.ManagedFieldsOperationUpdate, Time: ptr.To(metav1.NewTime(scaled.Truncate(time.Second)))}}

	onTime := newTracker().observe(viewDeployment(d, nil), scaled.Add(300*time.Millisecond), false)
	late := newTracker().observe(viewDeployment(d, nil), scaled.Add(2500*time.Millisecond), false)
	noTime := d.DeepCopy()
	noTime.ManagedFields = nil
	unknown := newTracker().observe(viewDeployment(noTime, nil), scaled.Add(2500*time.Millisecond), false)

	assert.Equal(t, scaled.Add(300*time.Millisecond), onTime[0].triggerTime, "seen within its second: the watch arrival")
	assert.Equal(t, scaled.Truncate(time.Second).Add(time.Second), late[0].triggerTime,
		"seen 2.5 s late: the latest moment its own whole-second timestamp allows")
	assert.Equal(t, scaled.Add(2500*time.Millisecond), unknown[0].triggerTime, "no own timestamp of the change: the watch arrival")

	scale := d.DeepCopy()
	scale.ManagedFields = append(scale.ManagedFields, metav1.ManagedFieldsEntry{Manager: "kubectl", Subresource: "scale", Time: ptr.To(metav1.NewTime(t0.Add(2 * time.Minute)))})
	v := viewDeployment(scale, nil)
	assert.Equal(t, "kubectl", v.manager, "a change through the scale subresource is a spec change")
	assert.Equal(t, t0.Add(2*time.Minute), v.managedAt)
}

// TestFragmentsOutliveTheirObjectsNextUpdate: informers of different
// kinds call the tracker from their own goroutines, and fragments are
// rendered outside its lock; a fragment must not share the object state
// the next update rewrites. Run with -race (make test does).
func TestFragmentsOutliveTheirObjectsNextUpdate(t *testing.T) {
	tr := newTracker()
	p := scheduled(testPod("pod-1"), t0)
	tr.observe(viewPod(p, nil), t0, false)
	done := make(chan struct{})
	go func() {
		defer close(done)
		for i := range 200 {
			q := running(p, t0.Add(time.Duration(i)*time.Millisecond))
			q.ResourceVersion = strconv.Itoa(10 + i)
			q.Status.ContainerStatuses[0].RestartCount = int32(i)
			toTraces(tr.observe(viewPod(q, nil), t0.Add(time.Second), false), "test")
		}
	}()
	for i := range 200 {
		ev := eventView{uid: "ev-" + strconv.Itoa(i), objectUID: "pod-1", reason: "Pulled", duration: time.Second, at: t0.Add(2 * time.Second), container: "app"}
		toTraces(tr.event(ev), "test")
	}
	<-done
}

// TestDefaultEventMessagesLeaveProbeOutputOut (trust finding 12): as
// shipped, an exec probe's output in an Unhealthy Event (a token) never
// reaches a span, while the messages that say why a step failed (the
// scheduler's, a back-off) do.
func TestDefaultEventMessagesLeaveProbeOutputOut(t *testing.T) {
	cfg := createDefaultConfig().(*Config)
	require.NoError(t, cfg.Validate())
	r := &watchReceiver{cfg: cfg}
	probe := eventView{uid: "ev-1", objectUID: "pod-1", reason: "Unhealthy", note: "Liveness probe failed: token=s3cret", at: t0}
	assert.Empty(t, r.redact(probe).note, "the probe's output")
	for _, reason := range []string{"FailedScheduling", "FailedCreate", "BackOff", "Failed"} {
		ev := eventView{uid: "ev-2", objectUID: "pod-1", reason: reason, note: "why it failed", at: t0}
		assert.Equal(t, "why it failed", r.redact(ev).note, reason)
	}
}

func TestEventMessagesSetting(t *testing.T) {
	probe := eventView{uid: "ev-1", objectUID: "pod-1", reason: "Unhealthy", note: "Liveness probe failed: token=s3cret", at: t0}
	backoff := eventView{uid: "ev-2", objectUID: "pod-1", reason: "BackOff", note: "Back-off pulling image", at: t0}
	for _, tt := range []struct {
		setting       string
		reasons       []string
		probe, backof string
	}{
		{EventMessagesAll, nil, probe.note, backoff.note},
		{EventMessagesNone, nil, "", ""},
		{EventMessagesReasons, []string{"BackOff"}, "", backoff.note},
	} {
		t.Run(tt.setting, func(t *testing.T) {
			cfg := createDefaultConfig().(*Config)
			cfg.EventMessages, cfg.EventMessageReasons = tt.setting, tt.reasons
			require.NoError(t, cfg.Validate())
			r := &watchReceiver{cfg: cfg}
			tr := newTracker()
			tr.observe(viewPod(scheduled(testPod("pod-1"), t0), nil), t0, false)
			tr.event(r.redact(probe))
			tr.event(r.redact(backoff))
			done := tr.observe(viewPod(running(scheduled(testPod("pod-1"), t0), t0), nil), t0.Add(time.Second), false)
			td := toTraces(done, "test")
			got := map[string]string{}
			forEachTestSpan(td, func(s ptrace.Span) {
				for i := 0; i < s.Events().Len(); i++ {
					e := s.Events().At(i)
					msg, ok := e.Attributes().Get("k8s.event.message")
					got[e.Name()] = "absent"
					if ok {
						got[e.Name()] = msg.Str()
					}
				}
			})
			want := func(m string) string {
				if m == "" {
					return "absent"
				}
				return m
			}
			assert.Equal(t, map[string]string{"Unhealthy": want(tt.probe), "BackOff": want(tt.backof)}, got, "the reasons always, the messages as set")
		})
	}
	cfg := createDefaultConfig().(*Config)
	cfg.EventMessageReasons = nil
	cfg.EventMessages = EventMessagesReasons
	assert.ErrorContains(t, cfg.Validate(), "event_messages: reasons needs event_message_reasons")
	cfg.EventMessages = "some"
	assert.ErrorContains(t, cfg.Validate(), `event_messages must be one of all, none, reasons; got "some"`)
}

func forEachTestSpan(td ptrace.Traces, f func(ptrace.Span)) {
	for i := 0; i < td.ResourceSpans().Len(); i++ {
		ss := td.ResourceSpans().At(i).ScopeSpans()
		for j := 0; j < ss.Len(); j++ {
			for k := 0; k < ss.At(j).Spans().Len(); k++ {
				f(ss.At(j).Spans().At(k))
			}
		}
	}
}
