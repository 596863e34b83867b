package e2e

import (
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/kubestitch/kubestitch/internal/fragment"
	"github.com/kubestitch/kubestitch/internal/waterfall"
	"github.com/kubestitch/kubestitch/localcluster"
	"github.com/kubestitch/kubestitch/test/harness"
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
		GatewayOverrides: []string{"yaml:service::pipelines::traces::processors: [memory_limiter, k8s_stitch]"},
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
		// On a timeout WaitFor's diagnosis shows where the control plane
		// stands: the Deployment's status, every pod, the log tails.
		e.WaitFor(t, "the control plane completes the rollout", 4*time.Minute, func() (bool, string) {
			d, err := deps.Get(t.Context(), name, metav1.GetOptions{})
			if err != nil {
				return false, err.Error()
			}
			return d.Status.ObservedGeneration >= d.Generation && d.Status.AvailableReplicas == replicas,
				fmt.Sprintf("observed generation %d of %d, %d of %d available", d.Status.ObservedGeneration, d.Generation, d.Status.AvailableReplicas, replicas)
		})
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
