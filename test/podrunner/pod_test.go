package podrunner

import (
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/utils/ptr"
)

func gatewayPod() *corev1.Pod {
	return &corev1.Pod{
		ObjectMeta: metav1.ObjectMeta{Name: "gw-1", Namespace: "kubestitch", UID: "u1"},
		Spec: corev1.PodSpec{
			NodeName:        "kwok-node-1",
			SecurityContext: &corev1.PodSecurityContext{RunAsUser: ptr.To[int64](65532), RunAsGroup: ptr.To[int64](65532), FSGroup: ptr.To[int64](65532)},
			Containers: []corev1.Container{{
				Name: "otelcol",
				Env: []corev1.EnvVar{
					{Name: "POD_NAME", ValueFrom: &corev1.EnvVarSource{FieldRef: &corev1.ObjectFieldSelector{FieldPath: "metadata.name"}}},
					{Name: "MY_POD_IP", ValueFrom: &corev1.EnvVarSource{FieldRef: &corev1.ObjectFieldSelector{FieldPath: "status.podIP"}}},
					{Name: "GOMEMLIMIT", Value: "800MiB"},
				},
			}},
		},
		Status: corev1.PodStatus{PodIP: "10.244.0.7"},
	}
}

func TestEnvResolvesFieldRefsAndTheAPIServerService(t *testing.T) {
	r := New(Options{Image: Image{Env: []string{"SSL_CERT_FILE=/etc/ssl/certs/ca-certificates.crt", "GOMEMLIMIT=1GiB"}}})
	r.state.routes = map[string]route{"10.96.0.1:443": {service: &corev1.Service{ObjectMeta: metav1.ObjectMeta{Name: "kubernetes", Namespace: "default"}}}}
	pod := gatewayPod()
	env, err := r.env(pod, pod.Spec.Containers[0])
	require.NoError(t, err)
	assert.Subset(t, env, []string{"POD_NAME=gw-1", "MY_POD_IP=10.244.0.7", "GOMEMLIMIT=800MiB",
		"KUBERNETES_SERVICE_HOST=10.96.0.1", "KUBERNETES_SERVICE_PORT=443", "HOSTNAME=gw-1", "SSL_CERT_FILE=/etc/ssl/certs/ca-certificates.crt"})
	assert.Equal(t, "GOMEMLIMIT=800MiB", lastOf(env, "GOMEMLIMIT"), "the container's env over the image's")

	pod.Spec.Containers[0].Env = append(pod.Spec.Containers[0].Env, corev1.EnvVar{Name: "X", ValueFrom: &corev1.EnvVarSource{
		SecretKeyRef: &corev1.SecretKeySelector{LocalObjectReference: corev1.LocalObjectReference{Name: "s"}, Key: "k"}}})
	_, err = r.env(pod, pod.Spec.Containers[0])
	assert.ErrorContains(t, err, "env X", "what it cannot run as the kubelet would, it refuses")
}

func TestIdentityIsThePodsUserWithItsFSGroup(t *testing.T) {
	pod := gatewayPod()
	uid, gid, groups, err := identity(pod, pod.Spec.Containers[0], "1000:1000")
	require.NoError(t, err)
	assert.Equal(t, int64(65532), uid)
	assert.Equal(t, int64(65532), gid)
	assert.Equal(t, []int64{65532, 65532}, groups)

	pod.Spec.SecurityContext = &corev1.PodSecurityContext{RunAsNonRoot: ptr.To(true)}
	uid, gid, groups, err = identity(pod, pod.Spec.Containers[0], "65532:65533")
	require.NoError(t, err)
	assert.Equal(t, []int64{65532, 65533}, []int64{uid, gid}, "no runAsUser: the image's USER")
	assert.Equal(t, []int64{65533}, groups)

	_, _, _, err = identity(pod, pod.Spec.Containers[0], "nonroot")
	assert.ErrorContains(t, err, "not numeric")
	_, _, _, err = identity(pod, pod.Spec.Containers[0], "0")
	assert.ErrorContains(t, err, "runAsNonRoot", "the kubelet refuses root under runAsNonRoot")
}

func TestCommandIsTheKubeletsChoice(t *testing.T) {
	img := Image{Entrypoint: []string{"/otelcol-kubestitch"}, Cmd: []string{"--config=/etc/otelcol-kubestitch/config.yaml"}}
	assert.Equal(t, []string{"/otelcol-kubestitch", "--config=/etc/otelcol-kubestitch/config.yaml"}, command(corev1.Container{}, img))
	assert.Equal(t, []string{"/otelcol-kubestitch", "--config=/conf/a.yaml"}, command(corev1.Container{Args: []string{"--config=/conf/a.yaml"}}, img), "args replace cmd")
	assert.Equal(t, []string{"/bin/x", "-v"}, command(corev1.Container{Command: []string{"/bin/x"}, Args: []string{"-v"}}, img), "command replaces both")
	assert.Equal(t, []string{"/bin/x"}, command(corev1.Container{Command: []string{"/bin/x"}}, img), "a command drops cmd")
}

func TestRootScriptMountsOnlyTheVolumesAndDropsToThePodsUser(t *testing.T) {
	s := rootScript("/tmp/x/root", "/tmp/image/rootfs", []mount{{src: "/tmp/x/volumes/conf", dst: "/conf", readOnly: true}, {src: "/tmp/x/volumes/state", dst: "/var/lib/kubestitch"}},
		true, 65532, 65532, []int64{65532}, []string{"/otelcol-kubestitch", "--config=/conf/it's.yaml"})
	assert.Contains(t, s, `mount --bind '/tmp/x/volumes/conf' "$R"'/conf'`+"\nmount -o remount,bind,ro \"$R\"'/conf'")
	assert.NotContains(t, s, `remount,bind,ro "$R"'/var/lib/kubestitch'`)
	assert.Contains(t, s, `mount -t overlay overlay -o lowerdir='/tmp/image/rootfs',upperdir="$U/upper",workdir="$U/work" "$R"`, "the image's root, writes kept apart")
	assert.Contains(t, s, `mount -o remount,ro "$R"`, "readOnlyRootFilesystem")
	assert.Contains(t, s, `exec chroot --userspec=65532:65532 --groups=65532 "$R" '/otelcol-kubestitch' '--config=/conf/it'\''s.yaml'`)
}

// lastOf is the entry of env for name that a process sees (exec.Cmd keeps
// the last of each name).
func lastOf(env []string, name string) string {
	out := ""
	for _, kv := range env {
		if k, _, _ := strings.Cut(kv, "="); k == name {
			out = kv
		}
	}
	return out
}
