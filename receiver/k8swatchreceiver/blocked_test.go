package k8swatchreceiver

import (
	"fmt"
	"strconv"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"go.opentelemetry.io/collector/pdata/ptrace"
	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	eventsv1 "k8s.io/api/events/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/utils/ptr"

	"github.com/kubestitch/kubestitch/internal/fragment"
)

func warning(uid, object, reason, note string, at time.Time) eventView {
	return viewEventsV1(&eventsv1.Event{
		ObjectMeta: metav1.ObjectMeta{UID: typesUID("ev-" + uid)},
		EventTime:  metav1.NewMicroTime(at), Reason: reason, Note: note, Type: corev1.EventTypeWarning,
		ReportingController: "default-scheduler", Regarding: corev1.ObjectReference{UID: typesUID(object)},
	})
}

func blockedSpans(fs []fragmentSpan) []fragmentSpan {
	var out []fragmentSpan
	for _, f := range fs {
		if f.level == fragment.LevelBlocked {
			out = append(out, f)
		}
	}
	return out
}

// A Warning on an open operation is a span at once, on the step it
// blocks, with an error status carrying its reason and message; repeats
// are not sent again; the operation's object span, and its owners', name
// the first cause when they end.
func TestWarningBlocksItsStepAtOnce(t *testing.T) {
	tr := newTracker()
	dep := testDeployment(1, 1)
	tr.observe(viewDeployment(dep, nil), t0, false)
	rs := &appsv1.ReplicaSet{ObjectMeta: metav1.ObjectMeta{Name: "web-1", Namespace: "default", UID: "rs-1", Generation: 1, ResourceVersion: "1", CreationTimestamp: metav1.NewTime(t0),
		OwnerReferences: []metav1.OwnerReference{{APIVersion: "apps/v1", Kind: "Deployment", Name: "web", UID: "dep-1", Controller: ptr.To(true)}}},
		Spec: appsv1.ReplicaSetSpec{Replicas: ptr.To(int32(1))}}
	tr.observe(viewReplicaSet(rs, nil), t0.Add(10*time.Millisecond), false)
	tr.observe(viewPod(testPod("pod-1"), nil), t0.Add(20*time.Millisecond), false)

	msg := "0/3 nodes are available: 3 node(s) didn't match Pod's node affinity/selector."
	first := blockedSpans(tr.event(warning("1", "pod-1", "FailedScheduling", msg, t0.Add(time.Second))))
	repeat := blockedSpans(tr.event(warning("2", "pod-1", "FailedScheduling", msg, t0.Add(5*time.Second))))

	require.Len(t, first, 1)
	b := first[0]
	assert.Equal(t, fragment.Blocked(fragment.PhasePodSchedule), b.name, "named by the step, never counted as it")
	assert.Equal(t, fragment.ObjectSpanID("pod-1", "Pod", "gen:1"), b.parentID)
	assert.Equal(t, t0.Add(time.Second), b.end, "ends at the Warning: it is sent at once")
	assert.Empty(t, repeat, "a repeat of the same Warning is no new span")

	td := toTraces(first, "test")
	s := td.ResourceSpans().At(0).ScopeSpans().At(0).Spans().At(0)
	assert.Equal(t, ptrace.StatusCodeError, s.Status().Code())
	assert.Equal(t, "FailedScheduling: "+msg, s.Status().Message())
	reason, _ := s.Attributes().Get(fragment.KeyEventReason)
	assert.Equal(t, "FailedScheduling", reason.Str())

	// The rollout gives up at its progress deadline: its object span is
	// an error naming the deadline and the first cause.
	d := testDeployment(1, 1)
	d.ResourceVersion = "2"
	d.Status = appsv1.DeploymentStatus{ObservedGeneration: 1, Replicas: 1, UnavailableReplicas: 1, Conditions: []appsv1.DeploymentCondition{{
		Type: appsv1.DeploymentProgressing, Status: corev1.ConditionFalse, Reason: "ProgressDeadlineExceeded", Message: `ReplicaSet "web-1" has timed out progressing.`,
	}}}
	ended := tr.observe(viewDeployment(d, nil), t0.Add(12*time.Second), false)
	// The ReplicaSet's and the pod's operations end with it, or their
	// steps would have no parent in the rollout's trace.
	require.ElementsMatch(t, []string{fragment.PhaseDeploymentRollout, fragment.PhaseReplicaSetScale, fragment.PhasePodStartup}, names(ended))
	for _, f := range ended[1:] {
		assert.False(t, objectOf(f.part).converged)
		assert.Contains(t, objectOf(f.part).reason, "owner gave up: ProgressDeadlineExceeded")
	}
	assert.Empty(t, tr.event(warning("3", "pod-1", "FailedScheduling", msg, t0.Add(13*time.Second))), "nothing more on an operation that ended")
	assert.False(t, objectOf(ended[0].part).converged)
	assert.Equal(t, "FailedScheduling: "+msg, objectOf(ended[0].part).cause)
	td = toTraces(ended, "test")
	s = td.ResourceSpans().At(0).ScopeSpans().At(0).Spans().At(0)
	assert.Equal(t, ptrace.StatusCodeError, s.Status().Code())
	assert.Contains(t, s.Status().Message(), "ProgressDeadlineExceeded")
	assert.Contains(t, s.Status().Message(), "first cause: FailedScheduling")
	cause, _ := s.Attributes().Get(fragment.KeyCause)
	assert.Equal(t, "FailedScheduling: "+msg, cause.Str())
}

func TestBlockedStepOfTheKubeletsBackOff(t *testing.T) {
	pod := func(waiting string) *objectView {
		v := viewPod(testPod("pod-1"), nil)
		v.pod.containers = []containerView{{name: "app", waiting: waiting}}
		return &v
	}
	for _, c := range []struct {
		reason, note, waiting, want string
	}{
		{"BackOff", `Back-off pulling image "nope:1"`, "", fragment.PhaseImagePull},
		{"BackOff", "Back-off restarting failed container app in pod web-abc", "", fragment.PhaseContainerStart},
		{"BackOff", "", "ImagePullBackOff", fragment.PhaseImagePull},
		{"BackOff", "", "CrashLoopBackOff", fragment.PhaseContainerStart},
		{"Failed", `Failed to pull image "nope:1": not found`, "", fragment.PhaseImagePull},
		{"Failed", "Error: ErrImagePull", "", fragment.PhaseImagePull},
		{"ErrImagePull", "", "", fragment.PhaseImagePull},
		{"FailedCreate", "", "", fragment.PhasePodStartup},
	} {
		got := blockedStep(pod(c.waiting), eventView{reason: c.reason, note: c.note}, "gen:1")
		assert.Equal(t, c.want, got, "%s %q waiting %q", c.reason, c.note, c.waiting)
	}
}

// A Warning that blocks nothing (the kubelet without cluster DNS falls
// back to the node's) is no blocked step and no cause.
func TestWarningThatBlocksNothing(t *testing.T) {
	tr := newTracker()
	tr.observe(viewPod(testPod("pod-1"), nil), t0, false)
	out := tr.event(warning("1", "pod-1", "MissingClusterDNS", "kubelet does not have ClusterDNS IP configured", t0.Add(time.Second)))
	assert.Empty(t, blockedSpans(out))
	assert.Empty(t, tr.states["pod-1"].Cause)
}

// Without event_messages the span keeps the reason, and no message.
func TestBlockedSpanFollowsEventMessages(t *testing.T) {
	r := &watchReceiver{cfg: &Config{EventMessages: EventMessagesNone}}
	tr := newTracker()
	tr.observe(viewPod(testPod("pod-1"), nil), t0, false)
	out := blockedSpans(tr.event(r.redact(warning("1", "pod-1", "FailedScheduling", "secret-ish text", t0.Add(time.Second)))))
	require.Len(t, out, 1)
	s := toTraces(out, "test").ResourceSpans().At(0).ScopeSpans().At(0).Spans().At(0)
	assert.Equal(t, "FailedScheduling", s.Status().Message())
	_, has := s.Attributes().Get(fragment.KeyEventMessage)
	assert.False(t, has)
}

func typesUID(s string) types.UID { return types.UID(s) }

// TestManyWarningReasonsAreBounded (trust finding 5): 20,000 Warnings of
// distinct reasons about one pod (anyone who may write Events in its
// namespace) make at most maxEventSteps blocked spans, and the pod's
// record of emitted steps stays as small.
func TestManyWarningReasonsAreBounded(t *testing.T) {
	tr := newTracker()
	tr.observe(viewPod(testPod("pod-1"), nil), t0, false)
	n := 0
	for i := range 20_000 {
		n += len(blockedSpans(tr.event(warning(strconv.Itoa(i), "pod-1", fmt.Sprintf("Forged%d", i), "x", t0.Add(time.Second)))))
	}
	assert.Equal(t, maxEventSteps, n)
	assert.LessOrEqual(t, len(tr.states["pod-1"].Emitted), maxEventSteps+8)
}
