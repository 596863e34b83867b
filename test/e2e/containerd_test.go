package e2e

import (
	"bytes"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/kubestitch/kubestitch/internal/fragment"
	"github.com/kubestitch/kubestitch/internal/waterfall"
	"github.com/kubestitch/kubestitch/localcluster"
	"github.com/kubestitch/kubestitch/test/harness"
)

// TestContainerdNodeTrace: a Deployment on the test bed's real node
// (kubelet on containerd, runc, CNI), its image pulled from the loopback
// registry, yields one trace through the agent and the gateway in which
// every pod's syncPod holds containerd's own CRI server spans under the
// kubelet's client spans, and the pod is ready by its container's own
// probe, after its container started.
func TestContainerdNodeTrace(t *testing.T) {
	if err := localcluster.ContainerdUsable(); err != nil {
		t.Fatalf("this machine cannot run the containerd node: %v (make preflight)", err)
	}
	e := harness.StartEnv(t, harness.EnvOptions{Kubelet: true, KubeletRuntime: localcluster.RuntimeContainerd})
	ctx := t.Context()
	onFailureListSpans(t, e, func(s *waterfall.Node) bool { return s.Name == "syncPod" })
	d := localcluster.DemoDeployment("oncontainerd", 3)
	d.Spec.Template.Spec.NodeSelector = map[string]string{"kubernetes.io/hostname": e.Cluster.KubeletNode}
	localcluster.RunDemoImage(d, e.Cluster.DemoImage)
	_, err := e.Cluster.Client.AppsV1().Deployments("default").Create(ctx, d, metav1.CreateOptions{})
	require.NoError(t, err)

	services := []string{"apiserver", "kube-controller-manager", "kube-scheduler", "kubelet", "containerd"}
	tr, _ := e.WaitTrace(t, traceTimeout, byRoot(fragment.PhaseDeploymentRollout, "Deployment default/oncontainerd", "gen:1"), whole(fragment.PhaseDeploymentRollout, services, func(tr *waterfall.Trace) bool {
		return complete(3)(tr) && syncPodsUnderPods(tr, "containerd") == 3
	}))
	check(t, tr, fragment.PhaseDeploymentRollout, services)
	assert.Equal(t, 3, syncPodsUnderPods(tr, "containerd"), "every pod holds its syncPod with the kubelet's CRI client and containerd's server spans")
	// Ready comes from the running container's probe: after its start.
	// pod.ready spans the pod's creation to its Ready condition, whose
	// time the API keeps to the second.
	for _, p := range tr.Spans {
		if p.Name != fragment.PhasePodStartup {
			continue
		}
		var started, ready time.Time
		for _, s := range p.Descendants() {
			if s.Name == "runtime.v1.RuntimeService/StartContainer" && s.Service == "containerd" {
				started = s.End
			}
			if s.Name == fragment.PhasePodReady {
				ready = s.End
			}
		}
		require.False(t, started.IsZero() || ready.IsZero(), "pod.startup %s has StartContainer and pod.ready", p.Object)
		assert.False(t, ready.Before(started.Truncate(time.Second)), "pod %s ready at %s, before its container started at %s", p.Object, ready, started)
	}
	var b bytes.Buffer
	waterfall.Render(&b, tr, waterfall.Options{Collapse: waterfall.CollapseAPIRequests})
	t.Logf("the stitched trace:\n%s", b.String())
}
