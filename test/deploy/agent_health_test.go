package deploy

import (
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/utils/ptr"

	"github.com/kubestitch/kubestitch/localcluster"
	"github.com/kubestitch/kubestitch/test/promtext"
)

// agentWithoutRBACGoesUnready (#33): with the agents' ClusterRoleBinding
// gone, a new agent's first list of its node's pods is Forbidden. Its
// container runs, but it goes unready within a minute (k8s_watch reports
// the error as its component status; the shipped health_check's
// component_health fails the readiness probe after 20 s; three failures
// make it unready), is not
// restarted (its liveness probe is health_check/live) and counts the
// errors.
// With the binding back it is ready again.
func agentWithoutRBACGoesUnready(t *testing.T, cluster *localcluster.Cluster, metrics func(*corev1.Pod) (promtext.Samples, error)) {
	t.Helper()
	ctx := t.Context()
	crbs := cluster.Client.RbacV1().ClusterRoleBindings()
	binding, err := crbs.Get(ctx, "kubestitch-agent", metav1.GetOptions{})
	require.NoError(t, err)
	require.NoError(t, crbs.Delete(ctx, binding.Name, metav1.DeleteOptions{}))
	var old *corev1.Pod
	for _, p := range installPods(t, cluster) {
		if p.Namespace == "kubestitch-node" {
			old = &p
			break
		}
	}
	require.NotNil(t, old)
	require.NoError(t, cluster.Client.CoreV1().Pods(old.Namespace).Delete(ctx, old.Name, metav1.DeleteOptions{GracePeriodSeconds: ptr.To[int64](0)}))
	deleted := time.Now()

	// The replacement on the same node: running, never ready, its probe
	// answered 503.
	var agent corev1.Pod
	require.Eventually(t, func() bool {
		for _, p := range installPods(t, cluster) {
			if p.Namespace == "kubestitch-node" && p.Name != old.Name && p.Spec.NodeName == old.Spec.NodeName &&
				len(p.Status.ContainerStatuses) > 0 && p.Status.ContainerStatuses[0].State.Running != nil {
				agent = p
				return true
			}
		}
		return false
	}, time.Minute, 500*time.Millisecond, "the DaemonSet's new agent runs on %s", old.Spec.NodeName)
	unhealthy := func() string {
		evs, err := cluster.Client.CoreV1().Events(agent.Namespace).List(ctx, metav1.ListOptions{FieldSelector: "involvedObject.name=" + agent.Name})
		if err != nil {
			return ""
		}
		for _, ev := range evs.Items {
			// 500: the component status outlasted recovery_duration (a
			// collector still starting answers 503, which proves nothing).
			if ev.Reason == "Unhealthy" && strings.Contains(ev.Message, "Readiness probe failed") && strings.Contains(ev.Message, "statuscode: 500") {
				return ev.Message
			}
		}
		return ""
	}
	require.Eventually(t, func() bool { return unhealthy() != "" }, 90*time.Second, time.Second,
		"the agent without RBAC fails its readiness probe: 500 from its health_check's component health")
	var p *corev1.Pod
	require.Eventually(t, func() bool {
		var err error
		p, err = cluster.Client.CoreV1().Pods(agent.Namespace).Get(ctx, agent.Name, metav1.GetOptions{})
		return err == nil && !installPodReady(p)
	}, time.Minute, time.Second, "the agent without RBAC goes unready")
	assert.Zero(t, p.Status.ContainerStatuses[0].RestartCount, "unready, not restarted: its liveness probe is health_check/live")
	t.Logf("agent %s without RBAC: %q; unready %v after its predecessor's deletion", agent.Name, unhealthy(), time.Since(deleted).Round(time.Second))
	s, err := metrics(p)
	require.NoError(t, err)
	assert.Positive(t, sum(s.Values("otelcol_k8swatch_watch_errors")), "the failed lists are counted")

	binding.ResourceVersion = ""
	_, err = crbs.Create(ctx, binding, metav1.CreateOptions{})
	require.NoError(t, err)
	require.Eventually(t, func() bool {
		p, err := cluster.Client.CoreV1().Pods(agent.Namespace).Get(ctx, agent.Name, metav1.GetOptions{})
		return err == nil && installPodReady(p)
	}, 2*time.Minute, time.Second, "with its RBAC back the agent is ready again")
}

func sum(vs []float64) float64 {
	total := 0.0
	for _, v := range vs {
		total += v
	}
	return total
}
