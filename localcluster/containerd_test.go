package localcluster

import (
	"context"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/kubestitch/kubestitch/test/otlpsink"
)

// TestContainerdNode: a kubelet on containerd 2.x, runc and CNI pulls the
// demo's image from the loopback registry and really runs it (as the
// image's user, ready by its own HTTP probe, with the image's digest as
// imageID); containerd's own CRI server spans are children of the
// kubelet's CRI client spans in the pod's syncPod trace; and Down leaves
// no process, mount or cgroup behind, and the machine's network (its
// interfaces, routes, iptables rules and network sysctls) as it was: the
// node, its pods and kube-proxy live in namespaces of their own.
func TestContainerdNode(t *testing.T) {
	// containerd's, runc's, CNI's and the kubelet's hard-coded paths.
	before := readHostState(t, "/opt/containerd", "/run/containerd", "/var/lib/containerd", "/var/lib/kubelet", "/var/lib/cni", "/etc/cni", "/run/netns")
	sink := otlpsink.Start(t)
	c := Start(t, Options{TracingEndpoint: sink.Endpoint, Kubelet: &KubeletOptions{Runtime: RuntimeContainerd}})
	ctx := t.Context()
	pids := c.PIDs()
	require.Contains(t, pids, "containerd")
	require.NotEmpty(t, c.DemoImage)
	t.Cleanup(func() { // before Down: what the node did
		if t.Failed() {
			t.Logf("node logs:%s", c.LogTails(60, "kubelet", "containerd"))
			if events, err := c.Client.CoreV1().Events("default").List(context.Background(), metav1.ListOptions{}); err == nil {
				for _, e := range events.Items {
					t.Logf("event %s %s: %s %s", e.InvolvedObject.Kind, e.InvolvedObject.Name, e.Reason, e.Message)
				}
			}
		}
	})

	d := DemoDeployment("real", 2)
	spec := &d.Spec.Template.Spec
	spec.NodeSelector = map[string]string{"kubernetes.io/hostname": c.KubeletNode}
	RunDemoImage(d, c.DemoImage)
	_, err := c.Client.AppsV1().Deployments("default").Create(ctx, d, metav1.CreateOptions{})
	require.NoError(t, err)
	var pods *corev1.PodList
	require.Eventually(t, func() bool {
		pods, err = c.Client.CoreV1().Pods("default").List(ctx, metav1.ListOptions{LabelSelector: "app=real"})
		if err != nil || len(pods.Items) != 2 {
			return false
		}
		for _, p := range pods.Items {
			if !podReady(&p) {
				return false
			}
		}
		return true
	}, 90*time.Second, 250*time.Millisecond, "2 pods Ready on the containerd node (their readiness probe answered from the container)")

	digest, err := c.Registry.Digest(ctx, c.DemoImage)
	require.NoError(t, err)
	for _, p := range pods.Items {
		require.Len(t, p.Status.ContainerStatuses, 1)
		st := p.Status.ContainerStatuses[0]
		assert.True(t, strings.HasSuffix(st.ImageID, "@"+digest), "pod %s imageID %q, want the pushed digest %s", p.Name, st.ImageID, digest)
		require.NotNil(t, st.State.Running, "pod %s", p.Name)
		assert.False(t, st.State.Running.StartedAt.IsZero())
		assert.NotEmpty(t, p.Status.PodIP)
		assert.True(t, c.nodes[0].net.cidr.Contains(net.ParseIP(p.Status.PodIP)), "pod IP %s in the node's CIDR %s", p.Status.PodIP, c.nodes[0].net.cidr)
	}
	assert.GreaterOrEqual(t, c.Registry.Pulls("kubestitch/demoapp"), 1, "the workload image was pulled from the registry")
	assert.GreaterOrEqual(t, c.Registry.Pulls("kubestitch/pause"), 1, "the sandbox image was pulled from the registry")
	uids := containerUIDs(t, c.nodes[0].cgroupRoot, "/demoapp")
	assert.Len(t, uids, 2, "two demoapp processes in the node's cgroups")
	for _, uid := range uids {
		assert.Equal(t, "65532", uid, "the container runs as the image's user")
	}

	// containerd's RunPodSandbox server span is the child of the kubelet's
	// client span of the same name, in the pod's syncPod trace.
	uid := string(pods.Items[0].UID)
	var names map[string]bool
	require.Eventually(t, func() bool {
		spans := sink.Spans()
		syncPod := map[string]bool{}
		for _, s := range spans {
			if v, ok := s.Attributes().Get("k8s.pod.uid"); ok && v.Str() == uid && s.Service == "kubelet" && s.Name() == "syncPod" {
				syncPod[s.TraceID().String()] = true
			}
		}
		clients := map[string]string{}
		for _, s := range spans {
			if s.Service == "kubelet" && syncPod[s.TraceID().String()] && strings.HasPrefix(s.Name(), "runtime.v1.") {
				clients[s.SpanID().String()] = s.Name()
			}
		}
		names = map[string]bool{}
		for _, s := range spans {
			if s.Service == "containerd" && clients[s.ParentSpanID().String()] == s.Name() {
				names[s.Name()] = true
			}
		}
		return names["runtime.v1.RuntimeService/RunPodSandbox"] && names["runtime.v1.ImageService/PullImage"] &&
			names["runtime.v1.RuntimeService/CreateContainer"] && names["runtime.v1.RuntimeService/StartContainer"]
	}, 30*time.Second, 250*time.Millisecond, "containerd's server spans under the kubelet's syncPod CRI client spans of pod %s", uid)

	assert.Equal(t, before.network, hostNetwork(t), "the machine's network while the node runs: its links, routes and rules are the node's own")
	dir, cgroupRoot := c.Dir, c.nodes[0].cgroupRoot
	downLeavesNothing(t, c, pids, before)
	assert.Empty(t, processesMentioning(dir), "processes of the node left after Down (shims, containers)")
	mountsRoots, err := cgroupMounts()
	require.NoError(t, err)
	for _, m := range mountsRoots {
		_, err := os.Stat(filepath.Join(m, cgroupRoot))
		assert.True(t, os.IsNotExist(err), "cgroup %s left in %s", cgroupRoot, m)
	}
}

func podReady(p *corev1.Pod) bool {
	for _, c := range p.Status.Conditions {
		if c.Type == corev1.PodReady {
			return c.Status == corev1.ConditionTrue
		}
	}
	return false
}

// containerUIDs is the real UID of each process in cgroupRoot whose
// command is exe.
func containerUIDs(t *testing.T, cgroupRoot, exe string) []string {
	t.Helper()
	var uids []string
	for _, pid := range cgroupPIDs(cgroupRoot) {
		cmdline, err := os.ReadFile(fmt.Sprintf("/proc/%d/cmdline", pid))
		if err != nil || !strings.HasPrefix(string(cmdline), exe+"\x00") {
			continue
		}
		status, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid))
		require.NoError(t, err)
		for _, line := range strings.Split(string(status), "\n") {
			if f := strings.Fields(line); len(f) > 1 && f[0] == "Uid:" {
				uids = append(uids, f[1])
			}
		}
	}
	return uids
}

// processesMentioning lists the processes whose command line names path.
func processesMentioning(path string) []string {
	var out []string
	entries, _ := os.ReadDir("/proc")
	for _, e := range entries {
		if _, err := strconv.Atoi(e.Name()); err != nil {
			continue
		}
		b, err := os.ReadFile(filepath.Join("/proc", e.Name(), "cmdline"))
		if err == nil && strings.Contains(string(b), path) {
			out = append(out, e.Name()+": "+strings.ReplaceAll(string(b), "\x00", " "))
		}
	}
	return out
}
