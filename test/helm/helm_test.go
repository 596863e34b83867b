// Package helm checks deploy/helm/values-*.yaml as a user installs them:
// rendered by helm (helm.sh/helm/v4, pinned in tools/go.mod) with the
// official opentelemetry-collector chart (vendored in testdata), whose
// `helm template` validates the values, merged with the chart's defaults,
// against its values.schema.json. The rendered objects are then checked
// for what a user would check: the image, resources, published ports,
// probes, security contexts, Pod Security of the namespace, and that the
// collector config in the ConfigMap validates with this distribution.
package helm

import (
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
)

const (
	// chartVersion is the vendored chart's version (testdata/.../README.md),
	// the one deploy/README.md installs.
	chartVersion = "0.170.0"
	imageRepo    = "ghcr.io/kubestitch/otelcol-kubestitch"
	// The container's user and group, as in deploy/base.
	nonRootID = 65532
)

// release is one `helm install` of deploy/README.md (Helm).
type release struct {
	name, namespace, values string
}

var (
	gatewayRelease = release{"kubestitch-gateway", "kubestitch", "values-gateway.yaml"}
	agentRelease   = release{"kubestitch-agent", "kubestitch-node", "values-agent.yaml"}
)

// TestHelmValuesInstall renders both values files with the chart, as the
// releases deploy/README.md installs, and checks the rendered objects.
func TestHelmValuesInstall(t *testing.T) {
	if testing.Short() {
		t.Skip("builds helm from tools/go.mod; `make test` runs it without -short")
	}
	root := repoRoot(t)
	h := buildHelm(t, root)
	version := distVersion(t, root)
	base := baseContainers(t, root)
	levels := namespaceLevels(t, root)

	gw := h.template(t, root, gatewayRelease)
	agent := h.template(t, root, agentRelease)

	t.Run("gateway", func(t *testing.T) {
		obj, spec := gw.workload(t, "Deployment")
		replicas, _, _ := unstructured.NestedInt64(obj.Object, "spec", "replicas")
		assert.EqualValues(t, 1, replicas, "one gateway: a second replica behind one Service splits operations")
		strategy, _, _ := unstructured.NestedString(obj.Object, "spec", "strategy", "type")
		assert.Equal(t, "Recreate", strategy, "never two gateways at once")

		cfg := gw.config(t)
		checkPod(t, spec, cfg, podWant{
			image:     imageRepo + ":" + version,
			resources: base["kubestitch-gateway"],
			ports:     map[string]int32{"otlp": 4317, "metrics": 8888, "answers": 8889},
			ipField:   "status.podIP",
		})
		reader := telemetryReader(t, cfg)
		assert.Equal(t, "${env:MY_POD_IP}", reader.host, "the collector's own metrics on the pod's IP")
		assert.EqualValues(t, 8888, reader.port)

		// The Service the agents send to publishes the same ports.
		svc := gw.one(t, "Service")
		svcPorts := map[string]int64{}
		ports, _, _ := unstructured.NestedSlice(svc.Object, "spec", "ports")
		for _, p := range ports {
			m := p.(map[string]any)
			svcPorts[m["name"].(string)] = m["port"].(int64)
		}
		assert.Equal(t, map[string]int64{"otlp": 4317, "metrics": 8888, "answers": 8889}, svcPorts, "the gateway's Service")
		assert.Len(t, gw.all("NetworkPolicy"), 1, "the chart's NetworkPolicy")

		// OTLP only with a client certificate of the install's CA
		// (deploy/tls.sh), as in the overlays.
		clientCA, _, _ := unstructured.NestedString(cfg, "receivers", "otlp", "protocols", "grpc", "tls", "client_ca_file")
		assert.Equal(t, "/etc/kubestitch/tls/ca.crt", clientCA)
		_, http, _ := unstructured.NestedMap(cfg, "receivers", "otlp", "protocols", "http")
		assert.False(t, http, "no OTLP/HTTP on the gateway")

		checkPodSecurity(t, gw, spec, levels)
	})

	t.Run("agent", func(t *testing.T) {
		_, spec := agent.workload(t, "DaemonSet")
		assert.True(t, spec.HostNetwork, "the node's components export to the agent on 127.0.0.1")
		assert.Equal(t, corev1.DNSClusterFirstWithHostNet, spec.DNSPolicy)
		assert.Equal(t, "kubestitch-node-critical", spec.PriorityClassName,
			"the project's PriorityClass (deploy/base/priorityclass.yaml), not system-node-critical outside kube-system")
		assert.Empty(t, agent.all("Service"), "nothing off the node reaches the agent: no Service")

		cfg := agent.config(t)
		checkPod(t, spec, cfg, podWant{
			image:     imageRepo + ":" + version,
			resources: base["kubestitch-agent"],
			ports:     map[string]int32{"metrics": 18888},
			ipField:   "status.hostIP", // the pod's IP on the host network
		})
		reader := telemetryReader(t, cfg)
		assert.Equal(t, "${env:K8S_NODE_IP}", reader.host, "the collector's own metrics on the node's IP")
		assert.EqualValues(t, 18888, reader.port, "not 8888, which other host-network collectors take")
		grpc, _, _ := unstructured.NestedString(cfg, "receivers", "otlp", "protocols", "grpc", "endpoint")
		assert.Equal(t, "127.0.0.1:4317", grpc, "OTLP on the node's loopback")

		// The gateway's address: no release name in the config; the
		// variable's default is the Service the gateway release renders.
		endpoint, _, _ := unstructured.NestedString(cfg, "exporters", "otlp_grpc", "endpoint")
		assert.Equal(t, "${env:KUBESTITCH_GATEWAY_ENDPOINT}", endpoint)
		// Mutual TLS to the gateway (deploy/tls.sh), its certificate checked
		// for the name tls.sh gives it, whatever the release's Service is.
		for key, want := range map[string]string{"ca_file": "/etc/kubestitch/tls/ca.crt", "cert_file": "/etc/kubestitch/tls/tls.crt", "server_name_override": "kubestitch-gateway.kubestitch.svc"} {
			got, _, _ := unstructured.NestedString(cfg, "exporters", "otlp_grpc", "tls", key)
			assert.Equal(t, want, got, "the agent's exporter: tls %s", key)
		}
		svc := gw.one(t, "Service")
		otlpPort := int64(0)
		ports, _, _ := unstructured.NestedSlice(svc.Object, "spec", "ports")
		for _, p := range ports {
			if m := p.(map[string]any); m["name"] == "otlp" {
				otlpPort = m["port"].(int64)
			}
		}
		want := fmt.Sprintf("%s.%s.svc:%d", svc.GetName(), svc.GetNamespace(), otlpPort)
		env := envOf(spec.Containers[0])
		require.Contains(t, env, "KUBESTITCH_GATEWAY_ENDPOINT")
		assert.Equal(t, want, env["KUBESTITCH_GATEWAY_ENDPOINT"].Value,
			"the agent sends to the Service of release %s in %s", gatewayRelease.name, gatewayRelease.namespace)

		checkPodSecurity(t, agent, spec, levels)
	})

	// The values before this test existed gave the probes a host, which
	// the chart's schema rejects: the same shape must fail here.
	t.Run("the old probe shape fails the schema", func(t *testing.T) {
		old := filepath.Join(t.TempDir(), "old-probe.yaml")
		require.NoError(t, os.WriteFile(old, []byte("livenessProbe:\n  httpGet: {host: 127.0.0.1, port: 13133}\n"), 0o644))
		out, err := h.run(t, root, agentRelease, "--values", old)
		require.Error(t, err, "helm template accepted a probe with a host")
		assert.Contains(t, out, "values don't meet the specifications of the schema")
		assert.Contains(t, out, "/livenessProbe/httpGet")
		assert.Contains(t, out, "additional properties 'host' not allowed")
	})

	// deploy/README.md (Helm) tells how to point the agents at a gateway
	// of another release name: its --set must reach the variable.
	t.Run("the documented gateway endpoint override", func(t *testing.T) {
		readme, err := os.ReadFile(filepath.Join(root, "deploy", "README.md"))
		require.NoError(t, err)
		m := regexp.MustCompile(`--set '(extraEnvs\[\d+\]\.value)=\.\.\.'`).FindSubmatch(readme)
		require.NotNil(t, m, "deploy/README.md (Helm) gives the --set for KUBESTITCH_GATEWAY_ENDPOINT")
		const other = "gw-opentelemetry-collector.observability.svc:4317"
		out, err := h.run(t, root, agentRelease, "--set", string(m[1])+"="+other)
		require.NoError(t, err, "%s", out)
		assert.Contains(t, out, "- name: KUBESTITCH_GATEWAY_ENDPOINT\n              value: "+other, "%s sets KUBESTITCH_GATEWAY_ENDPOINT", m[1])
	})

	t.Run("configs validate", func(t *testing.T) {
		bin := filepath.Join(root, "bin", "otelcol-kubestitch")
		if _, err := os.Stat(bin); err != nil {
			t.Fatalf("%s: %v: run `make build` first (`make test` does)", bin, err)
		}
		for _, r := range []struct {
			release
			out rendered
		}{{gatewayRelease, gw}, {agentRelease, agent}} {
			_, spec := r.out.workload(t, "")
			dir := t.TempDir()
			conf := filepath.Join(dir, "relay.yaml")
			require.NoError(t, os.WriteFile(conf, []byte(r.out.relay(t)), 0o644))
			// The pod's environment only, its fieldRefs given local values;
			// the state directory is a volume in the pod.
			cmd := exec.Command(bin, "validate", "--config="+conf, "--config=yaml:extensions::file_storage::directory: "+t.TempDir())
			cmd.Env = []string{"PATH=" + os.Getenv("PATH"), "HOME=" + dir}
			for name, e := range envOf(spec.Containers[0]) {
				cmd.Env = append(cmd.Env, name+"="+localValue(e))
			}
			out, err := cmd.CombinedOutput()
			assert.NoError(t, err, "%s: otelcol-kubestitch validate: %s", r.name, out)
		}
	})
}
