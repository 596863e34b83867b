package e2e

import (
	"bytes"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/kubestitch/kubestitch/internal/fragment"
	"github.com/kubestitch/kubestitch/internal/waterfall"
	"github.com/kubestitch/kubestitch/localcluster"
	"github.com/kubestitch/kubestitch/localcluster/criruntime"
	"github.com/kubestitch/kubestitch/test/harness"
)

var (
	kubeletServices = []string{"apiserver", "kube-controller-manager", "kube-scheduler", "kubelet", criruntime.ServiceName}
	// The CRI calls of a pod start, each a kubelet client span with the
	// runtime's server span under it.
	criSteps = []string{
		"runtime.v1.RuntimeService/RunPodSandbox",
		"runtime.v1.ImageService/PullImage",
		"runtime.v1.RuntimeService/CreateContainer",
		"runtime.v1.RuntimeService/StartContainer",
	}
)

// syncPodsUnderPods counts the pod.startup spans that hold the kubelet's
// syncPod of that same pod (by UID) with every CRI step and the server
// span of runtime (a service name) under it.
func syncPodsUnderPods(tr *waterfall.Trace, runtime string) int {
	n := 0
	for _, p := range tr.Spans {
		if p.Name != fragment.PhasePodStartup {
			continue
		}
		uid, _ := p.Attributes.Get(fragment.KeyUID)
		for _, s := range p.Descendants() {
			if s.Name != "syncPod" || s.Service != "kubelet" {
				continue
			}
			if v, _ := s.Attributes.Get("k8s.pod.uid"); v.Str() != uid.Str() {
				continue
			}
			if hasCRISteps(s, runtime) {
				n++
				break
			}
		}
	}
	return n
}

func hasCRISteps(syncPod *waterfall.Node, runtime string) bool {
	for _, step := range criSteps {
		found := false
		for _, c := range syncPod.Children {
			if c.Name != step || c.Service != "kubelet" {
				continue
			}
			for _, sc := range c.Children {
				if sc.Name == step && sc.Service == runtime {
					found = true
				}
			}
		}
		if !found {
			return false
		}
	}
	return true
}

// TestRealKubelet: a Deployment pinned to the real kubelet's node yields
// one trace in which every pod's phases hold the kubelet's syncPod, its
// CRI client spans and the runtime's server spans under them.
func TestRealKubelet(t *testing.T) {
	// k8sstitch's default wait (3 s), and an image pull longer than it: the
	// CRI spans leave the kubelet before their syncPod root ends, and wait
	// for it (root_wait).
	delays := criruntime.DefaultDelays
	delays.PullImage = 4 * time.Second
	e := harness.StartEnv(t, harness.EnvOptions{Kubelet: true, KubeletDelays: &delays})
	ctx := t.Context()
	// On failure: where every syncPod went (joined, or left as its own
	// trace).
	onFailureListSpans(t, e, func(s *waterfall.Node) bool { return s.Name == "syncPod" })
	d := localcluster.DemoDeployment("onkubelet", 3)
	d.Spec.Template.Spec.NodeSelector = map[string]string{"kubernetes.io/hostname": e.Cluster.KubeletNode}
	// Always: every pod pulls, so every pod has a PullImage bar.
	d.Spec.Template.Spec.Containers[0].ImagePullPolicy = corev1.PullAlways
	_, err := e.Cluster.Client.AppsV1().Deployments("default").Create(ctx, d, metav1.CreateOptions{})
	require.NoError(t, err)

	tr, _ := e.WaitTrace(t, traceTimeout, byRoot(fragment.PhaseDeploymentRollout, "Deployment default/onkubelet", "gen:1"), whole(fragment.PhaseDeploymentRollout, kubeletServices, func(tr *waterfall.Trace) bool {
		return complete(3)(tr) && syncPodsUnderPods(tr, criruntime.ServiceName) == 3
	}))
	check(t, tr, fragment.PhaseDeploymentRollout, kubeletServices)
	assert.Equal(t, 3, syncPodsUnderPods(tr, criruntime.ServiceName), "every pod holds its syncPod with the CRI client and runtime server spans")
	for _, s := range tr.Spans {
		if s.Name == "syncPod" {
			assert.Equal(t, e.Cluster.KubeletNode, nodeOf(s), "syncPod under a pod of the kubelet's node")
		}
	}
	var b bytes.Buffer
	waterfall.Render(&b, tr, waterfall.Options{Collapse: waterfall.CollapseAPIRequests})
	t.Logf("the stitched trace:\n%s", b.String())
}

// nodeOf is the node of the pod whose phase holds s, as the pod's
// fragments name it.
func nodeOf(s *waterfall.Node) string {
	for p := s.Parent; p != nil; p = p.Parent {
		if p.Name != fragment.PhasePodStartup {
			continue
		}
		for _, c := range append([]*waterfall.Node{p}, p.Children...) {
			if v, ok := c.Attributes.Get(fragment.KeyNodeName); ok {
				return v.Str()
			}
		}
	}
	return ""
}
