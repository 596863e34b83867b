package deploy

import (
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"sigs.k8s.io/yaml"

	"github.com/kubestitch/kubestitch/internal/buildermanifest"
	"github.com/kubestitch/kubestitch/localcluster"
	"github.com/kubestitch/kubestitch/test/harness"
)

// TestImageReferenceIsOneEverywhere: one image name and one version.
// builder-config.yaml's dist.version is the version; `make image-name`
// (what make image tags the layout with) is the reference; the kustomize
// base's images entry, every overlay's workloads, both helm values and the
// collector's --version must all say the same, or this fails.
func TestImageReferenceIsOneEverywhere(t *testing.T) {
	root, err := localcluster.RepoRoot()
	require.NoError(t, err)
	dist, err := buildermanifest.Read(root)
	require.NoError(t, err)
	version := dist.Version

	cmd := exec.Command("make", "-s", "-C", root, "image-name")
	cmd.Env = append(os.Environ(), "MAKEFLAGS=", "VERSION=") // an outer make's VERSION is not the checkout's
	out, err := cmd.CombinedOutput()
	require.NoError(t, err, "%s", out)
	ref := strings.TrimSpace(string(out))
	repo, tag, _ := strings.Cut(ref, ":")
	assert.Equal(t, "ghcr.io/kubestitch/otelcol-kubestitch", repo)
	assert.Equal(t, version, tag, "make image-name tags the image with builder-config.yaml's version")

	// The kustomize base: an images entry, so that `kustomize edit set
	// image` works; the workloads name the repository only.
	var kust struct {
		Images []struct {
			Name    string `json:"name"`
			NewName string `json:"newName"`
			NewTag  string `json:"newTag"`
			Digest  string `json:"digest"`
		} `json:"images"`
	}
	b, err := os.ReadFile(filepath.Join(root, "deploy", "base", "kustomization.yaml"))
	require.NoError(t, err)
	require.NoError(t, yaml.Unmarshal(b, &kust))
	require.Len(t, kust.Images, 1)
	assert.Equal(t, repo, kust.Images[0].Name)
	assert.Equal(t, tag, kust.Images[0].NewTag)

	overlays, err := os.ReadDir(filepath.Join(root, "deploy", "overlays"))
	require.NoError(t, err)
	for _, o := range overlays {
		n := 0
		for _, obj := range build(t, o.Name()) {
			if obj.GetKind() != "Deployment" && obj.GetKind() != "DaemonSet" {
				continue
			}
			containers, _, _ := nested(obj.Object, "spec", "template", "spec", "containers")
			for _, c := range containers.([]any) {
				assert.Equal(t, ref, c.(map[string]any)["image"], "overlay %s: %s %s", o.Name(), obj.GetKind(), obj.GetName())
				n++
			}
		}
		assert.Positive(t, n, "overlay %s has workloads", o.Name())
	}

	for _, file := range []string{"values-gateway.yaml", "values-agent.yaml"} {
		var v struct {
			Image struct {
				Repository string `json:"repository"`
				Tag        string `json:"tag"`
			} `json:"image"`
		}
		b, err := os.ReadFile(filepath.Join(root, "deploy", "helm", file))
		require.NoError(t, err)
		require.NoError(t, yaml.Unmarshal(b, &v))
		assert.Equal(t, ref, v.Image.Repository+":"+v.Image.Tag, file)
	}

	v, err := exec.Command(harness.CollectorBinary(t), "--version").CombinedOutput()
	require.NoError(t, err, "%s", v)
	assert.Equal(t, "otelcol-kubestitch version "+version, strings.TrimSpace(string(v)))
}
