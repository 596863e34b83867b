package deploy

import (
	"path/filepath"
	"slices"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	appsv1 "k8s.io/api/apps/v1"
	networkingv1 "k8s.io/api/networking/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/labels"
	"k8s.io/apimachinery/pkg/runtime"

	"github.com/kubestitch/kubestitch/localcluster"
)

// networkPolicyExample builds test/deploy/testdata/network-policy: the
// component used as its README says.
func networkPolicyExample(t *testing.T) []*unstructured.Unstructured {
	t.Helper()
	root, err := localcluster.RepoRoot()
	require.NoError(t, err)
	return buildDir(t, filepath.Join(root, "test", "deploy", "testdata", "network-policy"))
}

// TestNetworkPolicyAdmitsWhatTheGatewayServes: the policy selects the
// gateway's pods, admits every port the gateway container serves from the
// nodes' range set in the overlay, and OTLP from the other replicas.
func TestNetworkPolicyAdmitsWhatTheGatewayServes(t *testing.T) {
	var np networkingv1.NetworkPolicy
	var gw appsv1.Deployment
	for _, obj := range networkPolicyExample(t) {
		switch obj.GetKind() {
		case "NetworkPolicy":
			require.NoError(t, runtime.DefaultUnstructuredConverter.FromUnstructured(obj.Object, &np))
		case "Deployment":
			require.NoError(t, runtime.DefaultUnstructuredConverter.FromUnstructured(obj.Object, &gw))
		}
	}
	require.Equal(t, "kubestitch-gateway", np.Name)
	require.Equal(t, "kubestitch-gateway", gw.Name)
	assert.Equal(t, gw.Namespace, np.Namespace)
	sel, err := metav1.LabelSelectorAsSelector(&np.Spec.PodSelector)
	require.NoError(t, err)
	assert.True(t, sel.Matches(labels.Set(gw.Spec.Template.Labels)), "it selects the gateway pods")
	assert.Equal(t, []networkingv1.PolicyType{networkingv1.PolicyTypeIngress}, np.Spec.PolicyTypes)

	fromNodes := map[int32]bool{}
	fromGateways := map[int32]bool{}
	for _, rule := range np.Spec.Ingress {
		for _, peer := range rule.From {
			for _, p := range rule.Ports {
				switch {
				case peer.IPBlock != nil:
					assert.Equal(t, "10.0.0.0/16", peer.IPBlock.CIDR, "the overlay's node range")
					fromNodes[p.Port.IntVal] = true
				case peer.PodSelector != nil && peer.NamespaceSelector == nil:
					s, err := metav1.LabelSelectorAsSelector(peer.PodSelector)
					require.NoError(t, err)
					assert.True(t, s.Matches(labels.Set(gw.Spec.Template.Labels)), "only gateways")
					fromGateways[p.Port.IntVal] = true
				default:
					t.Errorf("a peer beyond the nodes and the gateways: %+v", peer)
				}
			}
		}
	}
	c := gw.Spec.Template.Spec.Containers[0]
	var served []int32
	for _, p := range c.Ports {
		served = append(served, p.ContainerPort)
		assert.True(t, fromNodes[p.ContainerPort], "port %d (%s) admitted from the nodes", p.ContainerPort, p.Name)
	}
	assert.Contains(t, served, int32(9443), "the example has the webhook")
	assert.True(t, fromNodes[c.LivenessProbe.HTTPGet.Port.IntVal], "kubelet probes admitted")
	assert.Equal(t, map[int32]bool{4317: true}, fromGateways, "replicas send each other OTLP gRPC only")

	// Without the overlay's range the placeholder stays, which the API
	// server rejects (TestManifestsOnRealAPIServer applies both).
	placeholder := slices.ContainsFunc(buildDir(t, filepath.Join(repoRoot(t), "deploy", "components", "network-policy", "..", "..", "overlays", "sharded")), func(o *unstructured.Unstructured) bool {
		return o.GetKind() == "NetworkPolicy"
	})
	assert.False(t, placeholder, "the overlays ship without the policy: it needs the cluster's node range")
}

func repoRoot(t *testing.T) string {
	t.Helper()
	root, err := localcluster.RepoRoot()
	require.NoError(t, err)
	return root
}
