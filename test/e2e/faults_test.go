package e2e

import (
	"context"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/kubestitch/kubestitch/internal/fragment"
	"github.com/kubestitch/kubestitch/internal/waterfall"
	"github.com/kubestitch/kubestitch/test/harness"
	"github.com/kubestitch/kubestitch/test/localcluster"
)

// TestFaults breaks the pipeline in the middle of rollouts whose pods take
// seconds to start (kwok's staged lifecycle): the traces must still come
// out whole, with no phase missing and no span twice.
func TestFaults(t *testing.T) {
	e := harness.StartEnv(t, harness.EnvOptions{
		Agent:     true,
		PodStages: "general",
		// Flush the file exporter at once and skip the batch processor, so
		// a SIGKILL loses nothing the pipeline had already passed on.
		GatewayOverrides: []string{"yaml:service::pipelines::traces::processors: [memory_limiter, k8sstitch]"},
		GatewayEnv:       []string{"KUBESTITCH_FLUSH_INTERVAL=5ms"},
	})
	deps := e.Cluster.Client.AppsV1().Deployments("default")
	const replicas = 10

	rollout := func(t *testing.T, name string, fault func(t *testing.T)) {
		_, err := deps.Create(t.Context(), localcluster.DemoDeployment(name, replicas), metav1.CreateOptions{})
		require.NoError(t, err)
		time.Sleep(1500 * time.Millisecond) // pods are being created and scheduled
		fault(t)
		// The control plane itself must finish the rollout first (after an
		// apiserver restart its controllers and kwok relist and resume).
		done := assert.Eventually(t, func() bool {
			d, err := deps.Get(t.Context(), name, metav1.GetOptions{})
			return err == nil && d.Status.ObservedGeneration >= d.Generation && d.Status.AvailableReplicas == replicas
		}, 4*time.Minute, time.Second, "the control plane completes the rollout")
		if !done {
			logRolloutState(t, e, name)
			t.FailNow()
		}
		tr, _ := e.WaitTrace(t, 2*traceTimeout, byRoot(fragment.PhaseDeploymentRollout, fmt.Sprintf("Deployment default/%s", name), "gen:1"),
			whole(fragment.PhaseDeploymentRollout, expectPodServices, complete(replicas)))
		check(t, tr, fragment.PhaseDeploymentRollout, expectPodServices)
	}

	// On failure: where every pod's first steps went.
	onFailureListSpans(t, e, func(s *waterfall.Node) bool {
		return s.Name == fragment.PhasePodSchedule || (s.Name == fragment.PhaseTrigger && strings.HasPrefix(s.Object, "Pod "))
	})
	t.Run("gateway SIGKILL and restart", func(t *testing.T) {
		rollout(t, "crash", func(t *testing.T) {
			require.NoError(t, e.Gateway.Kill())
			time.Sleep(time.Second)
			require.NoError(t, e.Gateway.Start(t.Context()))
		})
	})
	t.Run("agent restart", func(t *testing.T) {
		rollout(t, "agent-restart", func(t *testing.T) {
			require.NoError(t, e.Agent.Stop())
			require.NoError(t, e.Agent.Start(t.Context()))
		})
	})
	t.Run("apiserver restart", func(t *testing.T) {
		rollout(t, "api-restart", func(t *testing.T) {
			require.NoError(t, e.Cluster.RestartAPIServer(t.Context()))
		})
	})
}

// logRolloutState says where a rollout that did not complete stands: the
// Deployment's status and each pod's phase, node and readiness. The
// control plane's own failure, not the pipeline's, shows here.
func logRolloutState(t *testing.T, e *harness.Env, name string) {
	ctx := context.Background()
	d, err := e.Cluster.Client.AppsV1().Deployments("default").Get(ctx, name, metav1.GetOptions{})
	if err != nil {
		t.Logf("deployment %s: %v", name, err)
		return
	}
	t.Logf("deployment %s: generation %d, observed %d, replicas %d, updated %d, ready %d, available %d", name,
		d.Generation, d.Status.ObservedGeneration, d.Status.Replicas, d.Status.UpdatedReplicas, d.Status.ReadyReplicas, d.Status.AvailableReplicas)
	pods, err := e.Cluster.Client.CoreV1().Pods("default").List(ctx, metav1.ListOptions{})
	if err != nil {
		t.Logf("pods: %v", err)
		return
	}
	for _, p := range pods.Items {
		if !strings.HasPrefix(p.Name, name+"-") {
			continue
		}
		ready := "unknown"
		for _, c := range p.Status.Conditions {
			if c.Type == "Ready" {
				ready = string(c.Status)
			}
		}
		t.Logf("pod %s: phase %s, node %q, ready %s, deleting %v", p.Name, p.Status.Phase, p.Spec.NodeName, ready, p.DeletionTimestamp != nil)
	}
	t.Logf("control plane:%s", e.Cluster.LogTails(30, "kube-controller-manager", "kube-scheduler", "kwok"))
}
