package localcluster

import (
	"fmt"
	"maps"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/kubestitch/kubestitch/localcluster/criruntime"
	"github.com/kubestitch/kubestitch/test/otlpsink"
)

// TestRealKubelet: a real kubelet joins the control plane as a node next
// to kwok's, runs and deletes pods through the in-process runtime, exports
// syncPod spans with the runtime's server spans under its CRI client
// spans, and leaves the host as it found it: sysctls back, no mount or
// path outside the temp dir, its working directory untouched.
func TestRealKubelet(t *testing.T) {
	// The kubelet's hard-coded paths.
	before := readHostState(t, "/var/lib/kubelet", "/var/log/pods", "/var/log/containers")
	sink := otlpsink.Start(t)
	c := Start(t, Options{TracingEndpoint: sink.Endpoint, Kubelet: &KubeletOptions{}})
	ctx := t.Context()
	pids := c.PIDs()
	require.Contains(t, pids, "kubelet")
	require.Equal(t, "kubelet-node-0", c.KubeletNode)

	d := DemoDeployment("real", 2)
	d.Spec.Template.Spec.NodeSelector = map[string]string{"kubernetes.io/hostname": c.KubeletNode}
	_, err := c.Client.AppsV1().Deployments("default").Create(ctx, d, metav1.CreateOptions{})
	require.NoError(t, err)
	var pods *corev1.PodList
	require.Eventually(t, func() bool {
		pods, err = c.Client.CoreV1().Pods("default").List(ctx, metav1.ListOptions{LabelSelector: "app=real"})
		if err != nil || len(pods.Items) != 2 {
			return false
		}
		for _, p := range pods.Items {
			if p.Status.Phase != corev1.PodRunning || p.Spec.NodeName != c.KubeletNode {
				return false
			}
		}
		return true
	}, 60*time.Second, 200*time.Millisecond, "2 pods Running on the kubelet's node")

	// The kubelet changes these at start-up; the guard puts them back.
	require.Eventually(t, func() bool {
		now, err := ReadSysctls()
		return err == nil && assert.ObjectsAreEqual(before.sysctls, now)
	}, 5*time.Second, 100*time.Millisecond, "sysctls restored while the kubelet runs")

	uid := string(pods.Items[0].UID)
	require.Eventually(t, func() bool {
		spans := sink.Spans()
		syncPod := map[string]bool{} // trace IDs of the pod's syncPod
		for _, s := range spans {
			if s.Service == "kubelet" && s.Name() == "syncPod" {
				if v, ok := s.Attributes().Get("k8s.pod.uid"); ok && v.Str() == uid {
					syncPod[s.TraceID().String()] = true
				}
			}
		}
		// The runtime's RunPodSandbox server span is the child of the
		// kubelet's client span of the same name, in the syncPod trace.
		clients := map[string]bool{}
		for _, s := range spans {
			if s.Service == "kubelet" && s.Name() == "runtime.v1.RuntimeService/RunPodSandbox" && syncPod[s.TraceID().String()] {
				clients[s.SpanID().String()] = true
			}
		}
		for _, s := range spans {
			if s.Service == criruntime.ServiceName && s.Name() == "runtime.v1.RuntimeService/RunPodSandbox" && clients[s.ParentSpanID().String()] {
				return s.EndTimestamp().AsTime().Sub(s.StartTimestamp().AsTime()) >= criruntime.DefaultDelays.RunPodSandbox
			}
		}
		return false
	}, 30*time.Second, 250*time.Millisecond, "syncPod of pod %s with RunPodSandbox client and runtime server spans", uid)

	// Deleting runs the kubelet's container removal, where a runtime
	// without log paths makes it delete files in its working directory.
	require.NoError(t, c.Client.AppsV1().Deployments("default").Delete(ctx, "real", metav1.DeleteOptions{PropagationPolicy: ptrTo(metav1.DeletePropagationForeground)}))
	require.Eventually(t, func() bool {
		_, err := c.Client.AppsV1().Deployments("default").Get(ctx, "real", metav1.GetOptions{})
		if !apierrors.IsNotFound(err) {
			return false
		}
		l, err := c.Client.CoreV1().Pods("default").List(ctx, metav1.ListOptions{LabelSelector: "app=real"})
		return err == nil && len(l.Items) == 0
	}, 90*time.Second, 250*time.Millisecond, "the kubelet's pods deleted")
	_, err = os.Stat(filepath.Join(c.KubeletWorkDir(), CanaryFile))
	require.NoError(t, err, "the kubelet's working directory was emptied")

	downLeavesNothing(t, c, pids, before)
}

// hostState is what a test bed with a real node must leave as it found
// it: the sysctls the kubelet changes, whether the node's hard-coded
// host paths existed, and the machine's network: interfaces, routes,
// iptables rules and the network sysctls kube-proxy and CNI set.
type hostState struct {
	sysctls map[string]string
	paths   map[string]bool
	network string
}

// hostNetwork is the machine's network, as text to compare.
func hostNetwork(t *testing.T) string {
	t.Helper()
	var b strings.Builder
	for _, cmd := range [][]string{{"ip", "-o", "link", "show"}, {"ip", "route", "show", "table", "all"}, {"iptables-save"}} {
		out, err := exec.Command(cmd[0], cmd[1:]...).CombinedOutput()
		require.NoError(t, err, "%s: %s", cmd, out)
		for _, line := range strings.Split(string(out), "\n") {
			if !strings.HasPrefix(line, "#") { // iptables-save's dated comments
				// Counters and link statistics change by themselves.
				b.WriteString(linkCounters.ReplaceAllString(line, "") + "\n")
			}
		}
	}
	for _, key := range []string{"net/ipv4/ip_forward", "net/ipv4/conf/all/route_localnet", "net/bridge/bridge-nf-call-iptables"} {
		v, _ := os.ReadFile("/proc/sys/" + key)
		fmt.Fprintf(&b, "%s=%s", key, v)
	}
	return b.String()
}

// linkCounters are the parts of ip and iptables-save lines that change
// while nothing is configured: packet counters.
var linkCounters = regexp.MustCompile(`\[[0-9]+:[0-9]+\]`)

func readHostState(t *testing.T, paths ...string) hostState {
	t.Helper()
	sysctls, err := ReadSysctls()
	require.NoError(t, err)
	h := hostState{sysctls: sysctls, paths: map[string]bool{}, network: hostNetwork(t)}
	for _, p := range paths {
		_, err := os.Stat(p)
		h.paths[p] = err == nil
	}
	return h
}

// downLeavesNothing takes c down and checks that its processes (pids)
// stopped, and that the sysctls, the host paths and the host's mounts are
// as before, with no test bed dir left.
func downLeavesNothing(t *testing.T, c *Cluster, pids map[string]int, before hostState) {
	t.Helper()
	dir := c.Dir
	c.Down()
	for name, pid := range pids {
		_, err := os.Stat(filepath.Join("/proc", strconv.Itoa(pid)))
		assert.True(t, os.IsNotExist(err), "%s (pid %d) still running after Down", name, pid)
	}
	after := readHostState(t, slices.Collect(maps.Keys(before.paths))...)
	assert.Equal(t, before.sysctls, after.sysctls, "sysctls after teardown")
	assert.Equal(t, before.network, after.network, "the machine's network (links, routes, iptables, net sysctls) after teardown")
	for p, existed := range before.paths {
		assert.Equal(t, existed, after.paths[p], "%s: the node wrote a host path", p)
	}
	mounts, err := os.ReadFile("/proc/self/mountinfo")
	require.NoError(t, err)
	assert.NotContains(t, string(mounts), dir, "a mount of the test bed leaked into the host namespace")
	_, err = os.Stat(dir)
	assert.True(t, os.IsNotExist(err), "test bed dir left behind")
}

func ptrTo[T any](v T) *T { return &v }
