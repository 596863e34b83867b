package helm

import (
	"bufio"
	"bytes"
	"io"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/stretchr/testify/require"
	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	utilyaml "k8s.io/apimachinery/pkg/util/yaml"
	psapi "k8s.io/pod-security-admission/api"
	"sigs.k8s.io/yaml"

	"github.com/kubestitch/kubestitch/internal/buildermanifest"
)

// What the repository says, that a release must match: the version, the
// base manifests' containers and the namespaces' Pod Security levels.

// repoRoot is the directory of the repository's go.mod.
func repoRoot(t *testing.T) string {
	t.Helper()
	dir, err := os.Getwd()
	require.NoError(t, err)
	for {
		if b, err := os.ReadFile(filepath.Join(dir, "go.mod")); err == nil && strings.HasPrefix(string(b), "module github.com/kubestitch/kubestitch\n") {
			return dir
		}
		parent := filepath.Dir(dir)
		require.NotEqual(t, dir, parent, "no repository root above the working directory")
		dir = parent
	}
}

// distVersion is builder-config.yaml's dist.version: the version of the
// distribution and of its image.
func distVersion(t *testing.T, root string) string {
	t.Helper()
	dist, err := buildermanifest.Read(root)
	require.NoError(t, err)
	return dist.Version
}

// readObjects reads a multi-document YAML file of Kubernetes objects.
func readObjects(t *testing.T, path string) []*unstructured.Unstructured {
	t.Helper()
	b, err := os.ReadFile(path)
	require.NoError(t, err)
	return decodeObjects(t, path, b)
}

// decodeObjects is every object of a multi-document YAML stream (what
// helm template prints, a manifest file), empty documents skipped.
func decodeObjects(t *testing.T, what string, b []byte) []*unstructured.Unstructured {
	t.Helper()
	var out []*unstructured.Unstructured
	reader := utilyaml.NewYAMLReader(bufio.NewReader(bytes.NewReader(b)))
	for {
		doc, err := reader.Read()
		if err == io.EOF {
			return out
		}
		require.NoError(t, err)
		j, err := yaml.YAMLToJSON(doc)
		require.NoError(t, err)
		if s := strings.TrimSpace(string(j)); s == "null" || s == "{}" {
			continue
		}
		u := &unstructured.Unstructured{}
		require.NoError(t, u.UnmarshalJSON(j), "%s: %s", what, doc)
		out = append(out, u)
	}
}

// baseContainers are the resources of deploy/base/workloads.yaml's
// collector containers, by workload name: the helm values set the same.
func baseContainers(t *testing.T, root string) map[string]corev1.ResourceRequirements {
	t.Helper()
	out := map[string]corev1.ResourceRequirements{}
	for _, obj := range readObjects(t, filepath.Join(root, "deploy", "base", "workloads.yaml")) {
		if _, ok, _ := unstructured.NestedMap(obj.Object, "spec", "template"); !ok {
			continue
		}
		_, spec := podTemplate(t, obj)
		require.Len(t, spec.Containers, 1, "%s", obj.GetName())
		out[obj.GetName()] = spec.Containers[0].Resources
	}
	require.Contains(t, out, "kubestitch-gateway")
	require.Contains(t, out, "kubestitch-agent")
	return out
}

// namespaceLevels are the Pod Security levels deploy/base/namespace.yaml
// enforces, by namespace.
func namespaceLevels(t *testing.T, root string) map[string]psapi.LevelVersion {
	t.Helper()
	out := map[string]psapi.LevelVersion{}
	for _, obj := range readObjects(t, filepath.Join(root, "deploy", "base", "namespace.yaml")) {
		if obj.GetKind() != "Namespace" {
			continue
		}
		labels := obj.GetLabels()
		level, err := psapi.ParseLevel(labels[psapi.EnforceLevelLabel])
		require.NoError(t, err, "namespace %s enforces a Pod Security level", obj.GetName())
		version := psapi.LatestVersion()
		if v, ok := labels[psapi.EnforceVersionLabel]; ok {
			version, err = psapi.ParseVersion(v)
			require.NoError(t, err)
		}
		out[obj.GetName()] = psapi.LevelVersion{Level: level, Version: version}
	}
	return out
}
