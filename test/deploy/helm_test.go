package deploy

import (
	"os"
	"path/filepath"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	rbacv1 "k8s.io/api/rbac/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"sigs.k8s.io/yaml"

	"github.com/kubestitch/kubestitch/localcluster"
)

// helmValues is what test/deploy reads of deploy/helm/values-*.yaml: the
// keys of the official opentelemetry-collector chart that decide RBAC and
// topology.
type helmValues struct {
	Mode         string `json:"mode"`
	ReplicaCount *int   `json:"replicaCount"`
	Rollout      struct {
		Strategy string `json:"strategy"`
	} `json:"rollout"`
	HostNetwork bool `json:"hostNetwork"`
	ClusterRole struct {
		Create bool                `json:"create"`
		Name   string              `json:"name"`
		Rules  []rbacv1.PolicyRule `json:"rules"`
	} `json:"clusterRole"`
	Ports           map[string]map[string]any `json:"ports"`
	AlternateConfig map[string]any            `json:"alternateConfig"`
}

func readValues(t *testing.T, name string) helmValues {
	t.Helper()
	root, err := localcluster.RepoRoot()
	require.NoError(t, err)
	b, err := os.ReadFile(filepath.Join(root, "deploy", "helm", name))
	require.NoError(t, err)
	var v helmValues
	require.NoError(t, yaml.Unmarshal(b, &v))
	return v
}

// TestHelmValuesFollowTheOverlays: one source of truth for RBAC (the
// chart's clusterRole.rules are the ClusterRoles of deploy/base/rbac.yaml,
// rule for rule) and the same topology rules as the overlays: one gateway
// replica never running beside another, the agent on the host network
// publishing only its own metrics port (18888, on the node's IP), with no
// hostPort beyond what the host network implies. test/helm renders the
// values with the chart itself.
func TestHelmValuesFollowTheOverlays(t *testing.T) {
	roles := map[string][]rbacv1.PolicyRule{}
	for _, obj := range build(t, "single-gateway") {
		if obj.GetKind() != "ClusterRole" {
			continue
		}
		var role rbacv1.ClusterRole
		require.NoError(t, runtime.DefaultUnstructuredConverter.FromUnstructured(obj.Object, &role))
		roles[role.Name] = role.Rules
	}
	for file, role := range map[string]string{"values-gateway.yaml": "kubestitch-gateway", "values-agent.yaml": "kubestitch-agent"} {
		v := readValues(t, file)
		assert.True(t, v.ClusterRole.Create, "%s renders its ClusterRole", file)
		require.Contains(t, roles, role)
		assert.Equal(t, roles[role], v.ClusterRole.Rules, "%s: clusterRole.rules are deploy/base/rbac.yaml's %s", file, role)
	}

	gw := readValues(t, "values-gateway.yaml")
	assert.Equal(t, "deployment", gw.Mode)
	require.NotNil(t, gw.ReplicaCount)
	assert.Equal(t, 1, *gw.ReplicaCount, "one gateway: a second replica behind one Service splits operations")
	assert.Equal(t, "Recreate", gw.Rollout.Strategy, "never two gateways at once")

	agent := readValues(t, "values-agent.yaml")
	assert.Equal(t, "daemonset", agent.Mode)
	assert.True(t, agent.HostNetwork, "the node's components export to the agent on 127.0.0.1")
	for name, p := range agent.Ports {
		assert.NotContains(t, p, "hostPort", "agent port %s", name)
		if name == "metrics" {
			assert.Equal(t, true, p["enabled"], "agent port metrics: the collector's own metrics")
			assert.EqualValues(t, 18888, p["containerPort"], "agent port metrics")
			continue
		}
		assert.Equal(t, false, p["enabled"], "agent port %s: nothing else published", name)
	}
	rs, _, _ := nested(agent.AlternateConfig, "service", "telemetry", "metrics", "readers")
	readers, _ := rs.([]any)
	require.Len(t, readers, 1)
	prom, _, _ := nested(readers[0].(map[string]any), "pull", "exporter", "prometheus")
	assert.Equal(t, map[string]any{"host": "${env:K8S_NODE_IP}", "port": float64(18888)}, prom, "the agent's own metrics on the node's IP, at the port published")
	grpc, _, _ := nested(agent.AlternateConfig, "receivers", "otlp", "protocols", "grpc", "endpoint")
	assert.Equal(t, "127.0.0.1:4317", grpc)
}

func nested(m map[string]any, keys ...string) (any, bool, error) {
	var cur any = m
	for _, k := range keys {
		mm, ok := cur.(map[string]any)
		if !ok {
			return nil, false, nil
		}
		if cur, ok = mm[k]; !ok {
			return nil, false, nil
		}
	}
	return cur, true, nil
}
