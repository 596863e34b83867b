package deploy

import (
	"encoding/base64"
	"path"
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/runtime"
	"sigs.k8s.io/yaml"

	"github.com/kubestitch/kubestitch/internal/fragment"
)

// TestFragmentKeyScript: deploy/fragment-key.sh makes one fresh key, long
// enough, in every namespace where an overlay runs a collector.
func TestFragmentKeyScript(t *testing.T) {
	keys := map[string]string{}
	for _, obj := range fragmentKey(t) {
		var s corev1.Secret
		require.NoError(t, runtime.DefaultUnstructuredConverter.FromUnstructured(obj.Object, &s))
		assert.Equal(t, "kubestitch-fragment-key", s.Name)
		require.Contains(t, s.Data, "key")
		raw, err := base64.StdEncoding.DecodeString(string(s.Data["key"]))
		require.NoError(t, err, "the key is base64 of random bytes")
		assert.Len(t, raw, 32)
		assert.GreaterOrEqual(t, len(strings.TrimSpace(string(s.Data["key"]))), fragment.MinKeyBytes)
		keys[s.Namespace] = string(s.Data["key"])
	}
	require.Len(t, keys, 2)
	assert.Equal(t, keys["kubestitch"], keys["kubestitch-node"], "agents sign with the key the gateways verify with")
	again := fragmentKey(t)
	k, _, _ := unstructured.NestedString(again[0].Object, "data", "key")
	assert.NotEqual(t, keys["kubestitch"], k, "every run makes a new key")

	for _, o := range overlays {
		for _, obj := range build(t, o) {
			if obj.GetKind() == "DaemonSet" || obj.GetKind() == "Deployment" {
				assert.Contains(t, keys, obj.GetNamespace(), "%s: %s %s runs where the script puts the key", o, obj.GetKind(), obj.GetName())
			}
		}
	}
}

// TestEveryCollectorSignsOrVerifies: in every overlay, each collector pod
// mounts the fragment key Secret, and its config signs (k8s_watch) and
// verifies (k8s_stitch) with the file where the mount puts it.
func TestEveryCollectorSignsOrVerifies(t *testing.T) {
	for _, o := range overlays {
		objs := build(t, o)
		for _, obj := range objs {
			if obj.GetKind() != "DaemonSet" && obj.GetKind() != "Deployment" {
				continue
			}
			spec := podSpec(t, obj)
			m, _ := secretMount(spec, "kubestitch-fragment-key")
			keyDir := m.MountPath
			require.NotEmpty(t, keyDir, "%s: %s mounts the fragment key", o, obj.GetName())
			want := path.Join(keyDir, "key")
			// The pod's configs, merged in the order of its args.
			merged := map[string]any{}
			for _, f := range podConfigs(t, objs, obj) {
				var part map[string]any
				require.NoError(t, yaml.Unmarshal([]byte(f.body), &part))
				merge(merged, part)
			}
			for _, comp := range []string{"receivers", "processors"} {
				m, _ := merged[comp].(map[string]any)
				for name, v := range m {
					if name != "k8s_watch" && name != "k8s_stitch" {
						continue
					}
					got, _ := v.(map[string]any)["fragment_key_file"].(string)
					assert.Contains(t, got, ":-"+want+"}", "%s: %s's %s reads the key where the Secret is mounted", o, obj.GetName(), name)
				}
			}
		}
	}
}

func merge(dst, src map[string]any) {
	for k, v := range src {
		if sm, ok := v.(map[string]any); ok {
			if dm, ok := dst[k].(map[string]any); ok {
				merge(dm, sm)
				continue
			}
		}
		dst[k] = v
	}
}
