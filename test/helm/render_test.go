package helm

import (
	"bytes"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/runtime"
	"sigs.k8s.io/yaml"
)

// Building helm and rendering a release: the objects and the collector
// config of each chart as helm template writes them.

// helm is the helm binary built from tools/go.mod, with its own homes.
type helm struct {
	bin string
	env []string
}

func buildHelm(t *testing.T, root string) helm {
	t.Helper()
	dir := t.TempDir()
	bin := filepath.Join(dir, "helm")
	start := time.Now()
	cmd := exec.Command("go", "build", "-o", bin, "helm.sh/helm/v4/cmd/helm")
	cmd.Dir = filepath.Join(root, "tools")
	cmd.Env = append(os.Environ(), "CGO_ENABLED=0")
	out, err := cmd.CombinedOutput()
	require.NoError(t, err, "building helm (tools/go.mod): %s", out)
	mod, err := exec.Command("go", "version", "-m", bin).Output()
	require.NoError(t, err)
	helmMod := regexp.MustCompile(`(?m)^\s+mod\s+helm\.sh/helm/v4\s+(\S+)`).FindSubmatch(mod)
	require.NotNil(t, helmMod, "the binary is helm.sh/helm/v4: %s", mod)
	t.Logf("helm %s built in %s", helmMod[1], time.Since(start).Round(time.Millisecond))
	return helm{bin: bin, env: append(os.Environ(),
		"HELM_CACHE_HOME="+filepath.Join(dir, "cache"),
		"HELM_CONFIG_HOME="+filepath.Join(dir, "config"),
		"HELM_DATA_HOME="+filepath.Join(dir, "data"))}
}

// run is `helm template` of a release with the vendored chart and its
// values file from deploy/helm, then extra arguments (more values, --set);
// stdout, or stderr on failure.
func (h helm) run(t *testing.T, root string, r release, extra ...string) (string, error) {
	t.Helper()
	args := []string{"template", r.name, filepath.Join("testdata", "opentelemetry-collector"),
		"--namespace", r.namespace, "--values", filepath.Join(root, "deploy", "helm", r.values)}
	args = append(args, extra...)
	cmd := exec.Command(h.bin, args...)
	cmd.Env = h.env
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	if err := cmd.Run(); err != nil {
		return stderr.String(), fmt.Errorf("helm %s: %w", strings.Join(args, " "), err)
	}
	return stdout.String(), nil
}

// rendered is what `helm template` made of a release.
type rendered struct {
	release release
	objs    []*unstructured.Unstructured
}

func (h helm) template(t *testing.T, root string, r release) rendered {
	t.Helper()
	out, err := h.run(t, root, r)
	require.NoError(t, err, "%s", out)
	res := rendered{release: r}
	res.objs = decodeObjects(t, r.name, []byte(out))
	for _, u := range res.objs {
		assert.Equal(t, "opentelemetry-collector-"+chartVersion, u.GetLabels()["helm.sh/chart"], "%s %s: the vendored chart", u.GetKind(), u.GetName())
	}
	require.NotEmpty(t, res.objs, "%s renders objects", r.name)
	return res
}

func (r rendered) all(kind string) []*unstructured.Unstructured {
	var out []*unstructured.Unstructured
	for _, o := range r.objs {
		if o.GetKind() == kind {
			out = append(out, o)
		}
	}
	return out
}

func (r rendered) one(t *testing.T, kind string) *unstructured.Unstructured {
	t.Helper()
	objs := r.all(kind)
	require.Len(t, objs, 1, "%s renders one %s", r.release.name, kind)
	assert.Equal(t, r.release.namespace, objs[0].GetNamespace(), "%s %s", kind, objs[0].GetName())
	return objs[0]
}

// workload is the release's one Deployment or DaemonSet (kind, or either
// when empty) and its pod spec.
func (r rendered) workload(t *testing.T, kind string) (*unstructured.Unstructured, corev1.PodSpec) {
	t.Helper()
	var objs []*unstructured.Unstructured
	for _, k := range []string{"Deployment", "DaemonSet", "StatefulSet"} {
		if kind == "" || kind == k {
			objs = append(objs, r.all(k)...)
		}
	}
	require.Len(t, objs, 1, "%s renders one workload", r.release.name)
	_, spec := podTemplate(t, objs[0])
	return objs[0], spec
}

// relay is the collector config the chart renders into the ConfigMap.
func (r rendered) relay(t *testing.T) string {
	t.Helper()
	cm := r.one(t, "ConfigMap")
	relay, ok, _ := unstructured.NestedString(cm.Object, "data", "relay")
	require.True(t, ok, "ConfigMap %s has the relay config", cm.GetName())
	return relay
}

func (r rendered) config(t *testing.T) map[string]any {
	t.Helper()
	var cfg map[string]any
	require.NoError(t, yaml.Unmarshal([]byte(r.relay(t)), &cfg))
	return cfg
}

func podTemplate(t *testing.T, obj *unstructured.Unstructured) (metav1.ObjectMeta, corev1.PodSpec) {
	t.Helper()
	tmpl, ok, _ := unstructured.NestedMap(obj.Object, "spec", "template")
	require.True(t, ok, "%s %s has a pod template", obj.GetKind(), obj.GetName())
	var pt corev1.PodTemplateSpec
	require.NoError(t, runtime.DefaultUnstructuredConverter.FromUnstructured(tmpl, &pt))
	return pt.ObjectMeta, pt.Spec
}

func mustYAML(t *testing.T, v any) string {
	t.Helper()
	b, err := yaml.Marshal(v)
	require.NoError(t, err)
	return string(b)
}
