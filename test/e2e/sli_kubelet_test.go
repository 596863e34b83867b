package e2e

import (
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/kubestitch/kubestitch/internal/fragment"
	"github.com/kubestitch/kubestitch/internal/waterfall"
	"github.com/kubestitch/kubestitch/localcluster"
	"github.com/kubestitch/kubestitch/test/harness"
	"github.com/kubestitch/kubestitch/test/promtext"
)

// kubeletSLIMetric is the kubelet's own pod-startup SLI histogram:
// creationTimestamp (whole seconds) to all containers started as the
// kubelet observed it, image pulls left out.
const kubeletSLIMetric = "kubelet_pod_start_sli_duration_seconds"

// kubeletExtra is the most the kubelet's SLI may read above Kubestitch's:
// it starts at the creation second (up to 1 s early) and ends when the
// kubelet's own pod watch brings back the status it wrote, seen here up
// to ~0.5 s after the status write that Kubestitch's watch delivers.
const kubeletExtra = 2 * time.Second

// TestPodStartupSLIAgainstTheKubelet: pods started one at a time on the
// containerd node, each measured three ways: Kubestitch's pod_startup
// span, the receive-time watcher of the test, and the real kubelet's
// histogram (the growth of its sum while that one pod started). The
// watcher must agree within watch jitter; the kubelet starts its clock at
// the creation second, so it reads more, never less (by more than
// jitter), and at most kubeletExtra more.
func TestPodStartupSLIAgainstTheKubelet(t *testing.T) {
	e := harness.StartEnv(t, harness.EnvOptions{Kubelet: true, KubeletRuntime: localcluster.RuntimeContainerd})
	ctx := t.Context()
	watcher := startCL2Watcher(t, e.Cluster.RESTConfig, "default")
	client, metricsURL, err := e.Cluster.KubeletMetrics()
	require.NoError(t, err)
	kubeletSum := func() (float64, float64) {
		samples, err := promtext.Scrape(ctx, client, metricsURL)
		require.NoError(t, err)
		return samples.Sum(kubeletSLIMetric + "_sum"), samples.Sum(kubeletSLIMetric + "_count")
	}
	const pods = 3
	kubelet := map[string]time.Duration{}
	for i := range pods {
		sum0, n0 := kubeletSum()
		d := localcluster.DemoDeployment(fmt.Sprintf("sli-%d", i), 1)
		localcluster.RunDemoImage(d, e.Cluster.DemoImage)
		pod := &corev1.Pod{ObjectMeta: metav1.ObjectMeta{Name: d.Name, Namespace: "default"}, Spec: d.Spec.Template.Spec}
		pod.Spec.NodeSelector = map[string]string{"kubernetes.io/hostname": e.Cluster.KubeletNode}
		created, err := e.Cluster.Client.CoreV1().Pods("default").Create(ctx, pod, metav1.CreateOptions{})
		require.NoError(t, err)
		var sum, n float64
		e.WaitFor(t, "the kubelet's SLI histogram counts pod "+pod.Name, 60*time.Second, func() (bool, string) {
			sum, n = kubeletSum()
			return n == n0+1, fmt.Sprintf("count %v", n)
		})
		kubelet[string(created.UID)] = time.Duration((sum - sum0) * float64(time.Second))
	}

	ours, pulls := map[string]time.Duration{}, map[string]time.Duration{}
	e.WaitFor(t, "every pod's pod_startup span at the gateway", traceTimeout, func() (bool, string) {
		td, err := waterfall.ReadTraces(e.Gateway.TracesFile)
		if err != nil {
			return false, err.Error()
		}
		for _, tr := range waterfall.Build(td) {
			got, _, excluded := sliOfTrace(tr)
			for uid, sli := range got {
				if d, ok := sli[fragment.SLIPodStartup]; ok {
					ours[uid], pulls[uid] = d, excluded[uid]
				}
			}
		}
		return len(ours) >= pods, fmt.Sprint(len(ours), " pods")
	})
	theirs := watcher.measured()
	var lines []string
	for uid, k := range kubelet {
		o, ok := ours[uid]
		require.True(t, ok, "pod %s has a pod_startup span", uid)
		w, ok := theirs[uid]
		require.True(t, ok, "the watcher measured pod %s", uid)
		lines = append(lines, fmt.Sprintf("  %s: kubestitch %8s (pull left out %7s)  watcher %8s (diff with the pull %+8s)  kubelet %8s (diff %+8s)", uid[:8],
			o.Round(100*time.Microsecond), pulls[uid].Round(100*time.Microsecond), w[fragment.SLIPodStartup].Round(100*time.Microsecond),
			(o+pulls[uid]-w[fragment.SLIPodStartup]).Round(100*time.Microsecond), k.Round(100*time.Microsecond), (o-k).Round(100*time.Microsecond)))
		// pod_startup leaves the image pull out (the first pod's), as the
		// kubelet does; the watcher measures create to watch.
		assert.LessOrEqual(t, (o + pulls[uid] - w[fragment.SLIPodStartup]).Abs(), maxWatchJitter, "pod %s: Kubestitch against the watcher", uid)
		assert.GreaterOrEqual(t, k, o-maxWatchJitter, "pod %s: the kubelet, from the creation second, reads no less than Kubestitch", uid)
		assert.LessOrEqual(t, k, o+kubeletExtra+maxWatchJitter, "pod %s: the kubelet reads at most the creation second's fraction and its own status round trip more", uid)
	}
	t.Logf("pod_startup per pod, on the containerd node:\n%s", strings.Join(lines, "\n"))
}
