package localcluster

import (
	"os"
	"path/filepath"
	"regexp"
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

func TestVersionsMatchModules(t *testing.T) {
	for mod, want := range map[string]string{
		"k8sbin":        `k8s.io/kubernetes ` + KubernetesVersion,
		"etcdbin":       `go.etcd.io/etcd/server/v3 ` + EtcdVersion,
		"kwokbin":       `sigs.k8s.io/kwok ` + KwokVersion,
		"containerdbin": `github.com/containerd/containerd/v2 ` + ContainerdVersion,
		"cnibin":        `github.com/containernetworking/plugins ` + CNIPluginsVersion,
	} {
		b, err := os.ReadFile(filepath.Join(mod, "go.mod"))
		require.NoError(t, err)
		assert.Contains(t, string(b), want, "the cache key of %s must follow its go.mod", mod)
	}
}

// TestDeploymentRunsAndAPIServerExportsSpans is the test bed's own proof:
// a real control plane schedules a Deployment's pods onto a kwok node and
// kube-apiserver sends the spans of those requests to our OTLP endpoint.
func TestDeploymentRunsAndAPIServerExportsSpans(t *testing.T) {
	sink := otlpsink.Start(t)
	c := Start(t, Options{TracingEndpoint: sink.Endpoint})
	ctx := t.Context()
	pids := c.PIDs()
	require.Len(t, pids, 5, "etcd, apiserver, controller-manager, scheduler, kwok")

	d := DemoDeployment("web", 3)
	_, err := c.Client.AppsV1().Deployments("default").Create(ctx, d, metav1.CreateOptions{})
	require.NoError(t, err)
	var pods *corev1.PodList
	require.Eventually(t, func() bool {
		pods, err = c.Client.CoreV1().Pods("default").List(ctx, metav1.ListOptions{LabelSelector: "app=web"})
		if err != nil || len(pods.Items) != 3 {
			return false
		}
		for _, p := range pods.Items {
			if p.Status.Phase != corev1.PodRunning || !strings.HasPrefix(p.Spec.NodeName, "kwok-node-") {
				return false
			}
		}
		return true
	}, 60*time.Second, 200*time.Millisecond, "3 pods Running on kwok nodes")

	// kube-apiserver exports in batches (every 5s by default).
	binding := regexp.MustCompile(`^/api/v1/namespaces/default/pods/` + regexp.QuoteMeta(pods.Items[0].Name) + `/binding`)
	require.Eventually(t, func() bool {
		var create, bind bool
		for _, s := range sink.Spans() {
			if s.Service != "apiserver" {
				continue
			}
			target, _ := s.Attributes().Get("http.target")
			if s.Name() == "POST /apis/apps/v1/namespaces/{:namespace}/deployments" {
				create = true
			}
			if binding.MatchString(target.Str()) {
				bind = true
			}
		}
		return create && bind
	}, 30*time.Second, 250*time.Millisecond, "kube-apiserver spans of the Deployment create and a pod's binding")

	c.Down()
	for name, pid := range pids {
		_, err := os.Stat(filepath.Join("/proc", strconv.Itoa(pid)))
		assert.True(t, os.IsNotExist(err), "%s (pid %d) still running after Down", name, pid)
	}
}
