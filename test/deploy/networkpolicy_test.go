package deploy

import (
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	appsv1 "k8s.io/api/apps/v1"
	networkingv1 "k8s.io/api/networking/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/labels"
	"k8s.io/apimachinery/pkg/runtime"

	"github.com/kubestitch/kubestitch/localcluster"
)

// TestNetworkPolicyInEveryOverlay (trust finding 7): every overlay ships
// the gateway's NetworkPolicy, with nothing to fill in. It selects the
// gateway's pods; OTLP (mutual TLS), the probes' port and, with the
// webhook, its port are open to any source (the agents and kube-apiserver
// come from node or control-plane addresses no selector names); the
// metrics ports only to namespaces labelled kubestitch.io/scrape=true; and
// no rule opens a port the gateway does not serve.
func TestNetworkPolicyInEveryOverlay(t *testing.T) {
	for _, o := range overlays {
		t.Run(o, func(t *testing.T) {
			var nps []networkingv1.NetworkPolicy
			var gw appsv1.Deployment
			for _, obj := range build(t, o) {
				switch {
				case obj.GetKind() == "NetworkPolicy":
					var np networkingv1.NetworkPolicy
					require.NoError(t, runtime.DefaultUnstructuredConverter.FromUnstructured(obj.Object, &np))
					nps = append(nps, np)
				case obj.GetKind() == "Deployment" && obj.GetName() == "kubestitch-gateway":
					require.NoError(t, runtime.DefaultUnstructuredConverter.FromUnstructured(obj.Object, &gw))
				}
			}
			require.Len(t, nps, 1, "one policy, the gateway's")
			np := nps[0]
			assert.Equal(t, gw.Namespace, np.Namespace)
			sel, err := metav1.LabelSelectorAsSelector(&np.Spec.PodSelector)
			require.NoError(t, err)
			assert.True(t, sel.Matches(labels.Set(gw.Spec.Template.Labels)), "it selects the gateway pods")
			assert.Equal(t, []networkingv1.PolicyType{networkingv1.PolicyTypeIngress}, np.Spec.PolicyTypes)

			c := gw.Spec.Template.Spec.Containers[0]
			served := map[int32]string{c.ReadinessProbe.HTTPGet.Port.IntVal: "probes", c.LivenessProbe.HTTPGet.Port.IntVal: "probes"}
			for _, p := range c.Ports {
				served[p.ContainerPort] = p.Name
			}
			open := map[int32]bool{}
			scrapers := map[int32]bool{}
			for _, rule := range np.Spec.Ingress {
				for _, p := range rule.Ports {
					port := p.Port.IntVal
					assert.Contains(t, served, port, "a rule opens port %d, which the gateway does not serve", port)
					if len(rule.From) == 0 {
						open[port] = true
						continue
					}
					for _, peer := range rule.From {
						require.NotNil(t, peer.NamespaceSelector, "port %d: peers are namespaces", port)
						assert.Nil(t, peer.IPBlock)
						assert.Nil(t, peer.PodSelector)
						assert.Equal(t, map[string]string{"kubestitch.io/scrape": "true"}, peer.NamespaceSelector.MatchLabels)
						scrapers[port] = true
					}
				}
			}
			for port, name := range served {
				switch name {
				case "metrics", "answers":
					assert.True(t, scrapers[port], "%s (%d) for the labelled scrapers", name, port)
					assert.False(t, open[port], "%s (%d) not open to every pod", name, port)
				default:
					assert.True(t, open[port], "%s (%d) reachable", name, port)
				}
			}
			_, webhook := served[9443]
			assert.Equal(t, o == "single-gateway-admission", webhook, "the webhook's port, with the webhook only")
			assert.Equal(t, "otlp-grpc", served[4317])
			assert.NotContains(t, served, int32(4318), "no plaintext OTLP/HTTP on the gateway")
		})
	}
}

func repoRoot(t *testing.T) string {
	t.Helper()
	root, err := localcluster.RepoRoot()
	require.NoError(t, err)
	return root
}
