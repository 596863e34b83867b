package deploy

import (
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	corev1 "k8s.io/api/core/v1"
	"sigs.k8s.io/yaml"

	"github.com/kubestitch/kubestitch/localcluster"
)

// TestSpanExportSettingsAgree: the batch span processor settings have one
// source, deploy/control-plane/otel-bsp.env (which the test bed runs the
// control plane with); the kubelet's and containerd's drop-ins read it,
// and kube-apiserver's static Pod env carries the same values.
func TestSpanExportSettingsAgree(t *testing.T) {
	env, err := localcluster.ShippedSpanExportEnv()
	require.NoError(t, err)
	want := map[string]string{}
	for _, kv := range env {
		k, v, _ := strings.Cut(kv, "=")
		want[k] = v
	}
	require.Contains(t, want, "OTEL_BSP_SCHEDULE_DELAY")

	root, err := localcluster.RepoRoot()
	require.NoError(t, err)
	dir := filepath.Join(root, "deploy", "control-plane")
	b, err := os.ReadFile(filepath.Join(dir, "apiserver-otel-bsp.yaml"))
	require.NoError(t, err)
	var pod corev1.Pod
	require.NoError(t, yaml.Unmarshal(b, &pod))
	require.Len(t, pod.Spec.Containers, 1)
	got := map[string]string{}
	for _, e := range pod.Spec.Containers[0].Env {
		got[e.Name] = e.Value
	}
	assert.Equal(t, want, got, "kube-apiserver's static Pod env is otel-bsp.env")

	for _, dropIn := range []string{"kubelet-otel-bsp.conf", "containerd-otel-bsp.conf"} {
		b, err := os.ReadFile(filepath.Join(dir, dropIn))
		require.NoError(t, err)
		assert.Contains(t, string(b), "EnvironmentFile=/etc/kubernetes/kubestitch-otel-bsp.env", dropIn)
	}
	b, err = os.ReadFile(filepath.Join(dir, "otel-bsp.env"))
	require.NoError(t, err)
	assert.Contains(t, string(b), "/etc/kubernetes/kubestitch-otel-bsp.env", "otel-bsp.env says where it goes")
}
