package k8swatchreceiver

import (
	"context"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"go.opentelemetry.io/collector/component/componenttest"
	"go.opentelemetry.io/collector/consumer/consumertest"
	"go.opentelemetry.io/collector/pdata/ptrace"
	"go.opentelemetry.io/collector/processor/processortest"
	appsv1 "k8s.io/api/apps/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/utils/ptr"

	"github.com/kubestitch/kubestitch/internal/fragment"
	"github.com/kubestitch/kubestitch/processor/k8sstitchprocessor"
)

// stitch runs fragments through the real k8sstitch processor, as the
// gateway does (signed and verified with one key), and returns every span
// it let out, by name.
func stitch(t *testing.T, frags []fragmentSpan) map[string][]ptrace.Span {
	t.Helper()
	secret := []byte("0123456789abcdef0123456789abcdef")
	keyFile := filepath.Join(t.TempDir(), "key")
	require.NoError(t, os.WriteFile(keyFile, secret, 0o600))
	key, err := fragment.NewKey(secret)
	require.NoError(t, err)
	f := k8sstitchprocessor.NewFactory()
	cfg := f.CreateDefaultConfig().(*k8sstitchprocessor.Config)
	cfg.FragmentKeyFile = keyFile
	require.NoError(t, cfg.Validate())
	sink := &consumertest.TracesSink{}
	p, err := f.CreateTraces(context.Background(), processortest.NewNopSettings(f.Type()), cfg, sink)
	require.NoError(t, err)
	require.NoError(t, p.Start(context.Background(), componenttest.NewNopHost()))
	td := toTraces(frags, "test")
	signAll(td, key)
	require.NoError(t, p.ConsumeTraces(context.Background(), td))
	// Shutdown lets out what still waits, decided as if it waited out.
	require.NoError(t, p.Shutdown(context.Background()))
	out := map[string][]ptrace.Span{}
	for _, td := range sink.AllTraces() {
		for i := 0; i < td.ResourceSpans().Len(); i++ {
			ss := td.ResourceSpans().At(i).ScopeSpans()
			for j := 0; j < ss.Len(); j++ {
				for k := 0; k < ss.At(j).Spans().Len(); k++ {
					s := ss.At(j).Spans().At(k)
					out[s.Name()] = append(out[s.Name()], s)
				}
			}
		}
	}
	return out
}

// TestScaleSeenBeforeItsDeploymentJoinsTheRollout replays the order of
// issue #19's "3 scale 5 to 8" failure: on a loaded API server the gateway's
// Deployment watch delivered the scale 2.5 s late, after the ReplicaSet
// scale it caused, and the agent saw the new pod already bound. The
// ReplicaSet's operation then started before the Deployment's, no operation
// of the Deployment covered it, and after the wait it opened a trace of its
// own, taking the pod with it.
func TestScaleSeenBeforeItsDeploymentJoinsTheRollout(t *testing.T) {
	scaled := t0.Add(time.Minute + 200*time.Millisecond) // the API server takes the scale
	second := func(at time.Time) *metav1.Time { return ptr.To(metav1.NewTime(at.Truncate(time.Second))) }

	d := testDeployment(3, 8)
	d.ManagedFields = []metav1.ManagedFieldsEntry{{Manager: "e2e.test", Operation: metav1.ManagedFieldsOperationUpdate, Time: second(scaled)}}
	rs := &appsv1.ReplicaSet{
		ObjectMeta: metav1.ObjectMeta{
			Name: "web-1", Namespace: "default", UID: "rs-1", Generation: 2, ResourceVersion: "7", CreationTimestamp: metav1.NewTime(t0),
			OwnerReferences: []metav1.OwnerReference{{APIVersion: "apps/v1", Kind: "Deployment", Name: "web", UID: "dep-1", Controller: ptr.To(true)}},
			ManagedFields:   []metav1.ManagedFieldsEntry{{Manager: "kube-controller-manager", Operation: metav1.ManagedFieldsOperationUpdate, Time: second(scaled.Add(30 * time.Millisecond))}},
		},
		Spec: appsv1.ReplicaSetSpec{Replicas: ptr.To(int32(8))},
	}
	pod := testPod("pod-new")
	pod.CreationTimestamp = metav1.NewTime(scaled.Add(60 * time.Millisecond).Truncate(time.Second))

	gateway, agent := newTracker(), newTracker()
	var frags []fragmentSpan
	frags = append(frags, gateway.observe(viewReplicaSet(rs, nil), scaled.Add(250*time.Millisecond), false)...)
	frags = append(frags, gateway.observe(viewDeployment(d, nil), scaled.Add(2500*time.Millisecond), false)...)
	frags = append(frags, agent.observe(viewPod(scheduled(pod, scaled.Add(100*time.Millisecond)), nil), scaled.Add(3*time.Second), false)...)

	spans := stitch(t, frags)
	rollout := fragment.TraceID("dep-1", "gen:3")
	require.Len(t, spans[fragment.PhaseTrigger], 3)
	for _, s := range spans[fragment.PhaseTrigger] {
		uid, _ := s.Attributes().Get(fragment.KeyUID)
		assert.Equal(t, rollout, s.TraceID(), "the trigger of %s joins the rollout of gen:3", uid.Str())
	}
	require.Len(t, spans[fragment.PhasePodSchedule], 1)
	assert.Equal(t, rollout, spans[fragment.PhasePodSchedule][0].TraceID(), "the new pod's steps join the rollout")
}
