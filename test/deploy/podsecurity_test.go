package deploy

import (
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/runtime"
	psapi "k8s.io/pod-security-admission/api"
	"k8s.io/pod-security-admission/policy"
)

// podTemplate is a workload's pod template, or false for other kinds.
func podTemplate(t *testing.T, obj *unstructured.Unstructured) (metav1.ObjectMeta, corev1.PodSpec, bool) {
	t.Helper()
	tmpl, ok, _ := unstructured.NestedMap(obj.Object, "spec", "template")
	if !ok {
		return metav1.ObjectMeta{}, corev1.PodSpec{}, false
	}
	var pt corev1.PodTemplateSpec
	require.NoError(t, runtime.DefaultUnstructuredConverter.FromUnstructured(tmpl, &pt))
	return pt.ObjectMeta, pt.Spec, true
}

// TestOverlaysPassPodSecurityOfTheirNamespace renders every overlay and
// judges each pod template by the Pod Security level its namespace
// enforces, as shipped in the same overlay, with the library kube-apiserver's
// PodSecurity admission uses. A template the level rejects is a workload
// whose controller gets FailedCreate for every pod.
func TestOverlaysPassPodSecurityOfTheirNamespace(t *testing.T) {
	evaluator, err := policy.NewEvaluator(policy.DefaultChecks(), nil)
	require.NoError(t, err)
	for _, o := range overlays {
		objs := build(t, o)
		levels := map[string]psapi.LevelVersion{}
		for _, obj := range objs {
			if obj.GetKind() != "Namespace" {
				continue
			}
			labels := obj.GetLabels()
			level, err := psapi.ParseLevel(labels[psapi.EnforceLevelLabel])
			require.NoError(t, err, "%s: namespace %s enforces a Pod Security level", o, obj.GetName())
			version := psapi.LatestVersion()
			if v, ok := labels[psapi.EnforceVersionLabel]; ok {
				version, err = psapi.ParseVersion(v)
				require.NoError(t, err)
			}
			levels[obj.GetName()] = psapi.LevelVersion{Level: level, Version: version}
		}
		for _, obj := range objs {
			meta, spec, ok := podTemplate(t, obj)
			if !ok {
				continue
			}
			lv, ok := levels[obj.GetNamespace()]
			require.True(t, ok, "%s: %s %s is in namespace %q, which the overlay does not ship", o, obj.GetKind(), obj.GetName(), obj.GetNamespace())
			res := policy.AggregateCheckResults(evaluator.EvaluatePod(lv, &meta, &spec))
			assert.True(t, res.Allowed, "%s: %s %s/%s violates Pod Security %s: %s", o, obj.GetKind(), obj.GetNamespace(), obj.GetName(), lv.String(), res.ForbiddenDetail())
			if lv.Level != psapi.LevelRestricted {
				// Only the agent may ask for less, and only for the host
				// network: the restricted level, minus that, must hold.
				assert.Equal(t, "kubestitch-agent", obj.GetName(), "%s: only the agent runs outside restricted", o)
				spec.HostNetwork = false
				for i := range spec.Containers {
					for _, p := range []*corev1.Probe{spec.Containers[i].LivenessProbe, spec.Containers[i].ReadinessProbe} {
						if p != nil && p.HTTPGet != nil {
							p.HTTPGet.Host = ""
						}
					}
				}
				res := policy.AggregateCheckResults(evaluator.EvaluatePod(psapi.LevelVersion{Level: psapi.LevelRestricted, Version: psapi.LatestVersion()}, &meta, &spec))
				assert.True(t, res.Allowed, "%s: %s: restricted but for the host network: %s", o, obj.GetName(), res.ForbiddenDetail())
			}
		}
	}
}
