// Package deploy checks the manifests in deploy/: their RBAC is read-only
// on the configured kinds, the real apiserver accepts every object
// (server-side dry-run), the collector configs they carry validate, and
// the agent and gateway configs run and stitch a real rollout.
package deploy

import (
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	corev1 "k8s.io/api/core/v1"
	rbacv1 "k8s.io/api/rbac/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/client-go/discovery"
	"k8s.io/client-go/discovery/cached/memory"
	"k8s.io/client-go/dynamic"
	"k8s.io/client-go/restmapper"
	"sigs.k8s.io/kustomize/api/krusty"
	"sigs.k8s.io/kustomize/kyaml/filesys"

	"github.com/kubestitch/kubestitch/internal/fragment"
	"github.com/kubestitch/kubestitch/internal/waterfall"
	"github.com/kubestitch/kubestitch/localcluster"
	"github.com/kubestitch/kubestitch/test/harness"
	"github.com/kubestitch/kubestitch/test/otlpsink"
	"github.com/kubestitch/kubestitch/test/tracecheck"
)

var overlays = []string{"single-gateway", "sharded", "single-gateway-admission"}

func build(t *testing.T, overlay string) []*unstructured.Unstructured {
	t.Helper()
	root, err := localcluster.RepoRoot()
	require.NoError(t, err)
	return buildDir(t, filepath.Join(root, "deploy", "overlays", overlay))
}

// buildDir runs kustomize build on a directory.
func buildDir(t *testing.T, dir string) []*unstructured.Unstructured {
	t.Helper()
	k := krusty.MakeKustomizer(krusty.MakeDefaultOptions())
	res, err := k.Run(filesys.MakeFsOnDisk(), dir)
	require.NoError(t, err, "kustomize build %s", dir)
	var out []*unstructured.Unstructured
	for _, r := range res.Resources() {
		// Through JSON: kustomize's maps hold Go ints, unstructured wants int64.
		b, err := r.MarshalJSON()
		require.NoError(t, err)
		u := &unstructured.Unstructured{}
		require.NoError(t, u.UnmarshalJSON(b))
		out = append(out, u)
	}
	return out
}

// allowed is every rule the manifests may grant: read the watched kinds,
// and the gateway's one Lease.
var allowedRead = map[string][]string{
	"":              {"pods", "nodes"},
	"apps":          {"replicasets", "deployments", "statefulsets", "daemonsets"},
	"batch":         {"jobs", "cronjobs"},
	"events.k8s.io": {"events"},
}

func TestRBACIsReadOnlyOnWatchedKinds(t *testing.T) {
	for _, o := range overlays {
		for _, obj := range build(t, o) {
			if obj.GetKind() != "ClusterRole" && obj.GetKind() != "Role" {
				continue
			}
			var role rbacv1.ClusterRole
			require.NoError(t, runtime.DefaultUnstructuredConverter.FromUnstructured(obj.Object, &role))
			for _, r := range role.Rules {
				if slices.Equal(r.APIGroups, []string{"coordination.k8s.io"}) && slices.Equal(r.Resources, []string{"leases"}) {
					// Leader election: create (not limitable by name), or
					// get/update of the one Lease.
					if slices.Equal(r.Verbs, []string{"create"}) && len(r.ResourceNames) == 0 {
						continue
					}
					assert.Equal(t, []string{"kubestitch-k8swatch"}, r.ResourceNames, "%s %s", o, obj.GetName())
					for _, v := range r.Verbs {
						assert.Contains(t, []string{"get", "update"}, v, "%s %s: lease verb", o, obj.GetName())
					}
					continue
				}
				// Informers list and watch; nothing gets an object by name
				// (trust finding 13: get was granted and never used).
				assert.Equal(t, []string{"list", "watch"}, r.Verbs, "%s %s: the verbs of a watched kind", o, obj.GetName())
				for _, g := range r.APIGroups {
					for _, res := range r.Resources {
						assert.Contains(t, allowedRead[g], res, "%s %s: %s/%s is not a watched kind", o, obj.GetName(), g, res)
					}
				}
				assert.Empty(t, r.NonResourceURLs)
			}
		}
	}
}

func TestPodsRunRestricted(t *testing.T) {
	for _, o := range overlays {
		for _, obj := range build(t, o) {
			spec, ok, _ := unstructured.NestedMap(obj.Object, "spec", "template", "spec")
			if !ok {
				continue
			}
			var ps corev1.PodSpec
			require.NoError(t, runtime.DefaultUnstructuredConverter.FromUnstructured(spec, &ps))
			require.NotNil(t, ps.SecurityContext)
			assert.True(t, *ps.SecurityContext.RunAsNonRoot, obj.GetName())
			assert.Equal(t, corev1.SeccompProfileTypeRuntimeDefault, ps.SecurityContext.SeccompProfile.Type)
			for _, c := range ps.Containers {
				sc := c.SecurityContext
				require.NotNil(t, sc, c.Name)
				assert.True(t, *sc.ReadOnlyRootFilesystem, "%s: read-only root fs", obj.GetName())
				assert.False(t, *sc.AllowPrivilegeEscalation)
				assert.Equal(t, []corev1.Capability{"ALL"}, sc.Capabilities.Drop)
				assert.NotNil(t, c.LivenessProbe)
				assert.NotNil(t, c.Resources.Limits.Memory())
			}
		}
	}
}

// configs returns the collector configs the ConfigMaps carry.
func configs(t *testing.T, overlay string) map[string]string {
	out := map[string]string{}
	for _, obj := range build(t, overlay) {
		if obj.GetKind() != "ConfigMap" {
			continue
		}
		data, _, _ := unstructured.NestedStringMap(obj.Object, "data")
		for k, v := range data {
			out[k] = v
		}
	}
	require.Contains(t, out, "agent.yaml")
	return out
}

func writeConfig(t *testing.T, name, body string) string {
	p := filepath.Join(t.TempDir(), name)
	require.NoError(t, os.WriteFile(p, []byte(body), 0o644))
	return p
}

var podEnv = []string{"MY_POD_IP=127.0.0.1", "K8S_NODE_NAME=kwok-node-0", "POD_NAME=gw-0", "POD_NAMESPACE=kubestitch",
	"KUBESTITCH_GATEWAY_ENDPOINT=127.0.0.1:1", "KUBESTITCH_BACKEND_ENDPOINT=127.0.0.1:1", "KUBESTITCH_BACKEND_INSECURE=true"}

// configFile is one --config file of a collector pod.
type configFile struct{ name, body string }

// secretMount is where the pod's first container mounts the Secret name.
func secretMount(spec corev1.PodSpec, name string) (corev1.VolumeMount, bool) {
	for _, v := range spec.Volumes {
		if v.Secret == nil || v.Secret.SecretName != name {
			continue
		}
		for _, m := range spec.Containers[0].VolumeMounts {
			if m.Name == v.Name {
				return m, true
			}
		}
	}
	return corev1.VolumeMount{}, false
}

// podConfigs are the --config files a collector pod (a Deployment or
// DaemonSet of objs) runs, in the order of its container args, from the
// ConfigMap mounted at /conf.
func podConfigs(t *testing.T, objs []*unstructured.Unstructured, obj *unstructured.Unstructured) []configFile {
	t.Helper()
	spec := podSpec(t, obj)
	conf := ""
	for _, v := range spec.Volumes {
		if v.Name == "conf" && v.ConfigMap != nil {
			conf = v.ConfigMap.Name
		}
	}
	var data map[string]string
	for _, o := range objs {
		if o.GetKind() == "ConfigMap" && o.GetName() == conf && o.GetNamespace() == obj.GetNamespace() {
			data, _, _ = unstructured.NestedStringMap(o.Object, "data")
		}
	}
	require.NotNil(t, data, "%s mounts its config, ConfigMap %q", obj.GetName(), conf)
	var out []configFile
	for _, a := range spec.Containers[0].Args {
		if strings.HasPrefix(a, "--feature-gates=") {
			continue
		}
		name, ok := strings.CutPrefix(a, "--config=/conf/")
		require.True(t, ok, "%s: arg %q", obj.GetName(), a)
		body, ok := data[name]
		require.True(t, ok, "%s: %s is not in ConfigMap %s", obj.GetName(), name, conf)
		out = append(out, configFile{name, body})
	}
	return out
}

// TestConfigMapsValidate validates what each collector pod runs: the
// --config files of its container args, from the ConfigMap mounted at
// /conf, merged in that order.
func TestConfigMapsValidate(t *testing.T) {
	bin := harness.CollectorBinary(t)
	for _, o := range overlays {
		objs := build(t, o)
		pods := 0
		for _, obj := range objs {
			if obj.GetKind() != "Deployment" && obj.GetKind() != "DaemonSet" {
				continue
			}
			pods++
			dir := t.TempDir()
			cmdArgs := []string{"validate"}
			for _, f := range podConfigs(t, objs, obj) {
				require.NoError(t, os.WriteFile(filepath.Join(dir, f.name), []byte(f.body), 0o644))
				cmdArgs = append(cmdArgs, "--config", filepath.Join(dir, f.name))
			}
			// The state directory is a volume in the pod.
			cmdArgs = append(cmdArgs, "--config", "yaml:extensions::file_storage::directory: "+t.TempDir())
			// The feature gates of its args, as the pod runs it.
			for _, a := range podSpec(t, obj).Containers[0].Args {
				if strings.HasPrefix(a, "--feature-gates=") {
					cmdArgs = append(cmdArgs, a)
				}
			}
			cmd := exec.Command(bin, cmdArgs...)
			cmd.Env = append(os.Environ(), podEnv...)
			out, err := cmd.CombinedOutput()
			assert.NoError(t, err, "%s/%s %v: %s", o, obj.GetName(), cmdArgs, out)
		}
		assert.GreaterOrEqual(t, pods, 2, "%s: an agent and a gateway", o)
	}
}

// TestManifestsOnRealAPIServer applies every object of both overlays with
// server-side dry-run (the namespace for real), then runs the agent and
// gateway configs of deploy/ as processes (endpoints rewritten to
// loopback) against the control plane and checks the stitched rollout
// reaches the backend.
func TestManifestsOnRealAPIServer(t *testing.T) {
	if testing.Short() {
		t.Skip("needs the local control plane; `make test` runs it")
	}
	sink := otlpsink.Start(t)
	ctx := t.Context()
	// deploy/'s gateway and agent, on loopback; the gateway exports to the
	// sink and receives kube-apiserver's spans.
	cfg := configs(t, "single-gateway")
	gwTLS, agentTLS := tlsDirs(t)
	// kube-apiserver exports to the agent of its node, as deploy/ sets it
	// up; the gateway takes OTLP with mutual TLS only.
	st := harness.StartStack(t, localcluster.StackOptions{Cluster: localcluster.Options{Log: localcluster.TestLog(t)}, Collectors: []localcluster.StackCollector{
		{Name: "gateway", ConfigYAML: []byte(cfg["gateway.yaml"]),
			Overrides: append(gatewayLoopbackOverrides(), "yaml:processors::k8s_stitch::wait: 2s"),
			Env:       slices.Concat(podEnv, tlsEnv(gwTLS), []string{"KUBESTITCH_BACKEND_ENDPOINT=" + sink.Endpoint})},
		{Name: "agent", ConfigYAML: []byte(cfg["agent.yaml"]), Overrides: agentLoopbackOverrides(), Env: slices.Concat(podEnv, tlsEnv(agentTLS)), APIServerSpans: true},
	}}, func(st *localcluster.Stack) {
		st.Collector("agent").SetEnv("KUBESTITCH_GATEWAY_ENDPOINT=" + st.Collector("gateway").OTLPEndpoint)
	})
	cluster := st.Cluster
	t.Cleanup(func() {
		if t.Failed() {
			var b strings.Builder
			for _, tr := range waterfall.Build(sink.Traces()) {
				if tr.Root != nil && tr.Root.IsFragment() {
					b.WriteString(tr.Root.Name + " " + tr.Root.Object + "; ")
				}
			}
			t.Logf("fragment roots at the backend: %s", b.String())
		}
	})

	dyn, err := dynamic.NewForConfig(cluster.RESTConfig)
	require.NoError(t, err)
	dc, err := discovery.NewDiscoveryClientForConfig(cluster.RESTConfig)
	require.NoError(t, err)
	mapper := restmapper.NewDeferredDiscoveryRESTMapper(memory.NewMemCacheClient(dc))
	sets := map[string][]*unstructured.Unstructured{"self-signed.sh": selfSigned(t), "fragment-key.sh": fragmentKey(t), "tls.sh": tlsSecrets(t)}
	for _, o := range overlays {
		sets[o] = build(t, o)
	}
	// The namespaces for real, labelled as shipped: a dry run of a
	// namespaced object needs its namespace.
	var namespaces []*unstructured.Unstructured
	for _, obj := range sets[overlays[0]] {
		if obj.GetKind() == "Namespace" {
			namespaces = append(namespaces, obj)
		}
	}
	apply(t, cluster.RESTConfig, namespaces)
	for o, objs := range sets {
		for _, obj := range objs {
			gvk := obj.GroupVersionKind()
			m, err := mapper.RESTMapping(gvk.GroupKind(), gvk.Version)
			require.NoError(t, err, "%s: %s", o, gvk)
			body, err := obj.MarshalJSON()
			require.NoError(t, err)
			var ri dynamic.ResourceInterface = dyn.Resource(m.Resource)
			if obj.GetNamespace() != "" {
				ri = dyn.Resource(m.Resource).Namespace(obj.GetNamespace())
			}
			_, err = ri.Patch(ctx, obj.GetName(), types.ApplyPatchType, body, metav1.PatchOptions{FieldManager: "kubestitch-test", DryRun: []string{metav1.DryRunAll}})
			assert.NoError(t, err, "%s: the apiserver rejects %s %s", o, gvk.Kind, obj.GetName())
		}
	}

	// The gateway watches once it holds the Lease (the namespace exists only
	// now); what it first lists is history, so wait for its watch.
	require.Eventually(t, func() bool {
		l, err := cluster.Client.CoordinationV1().Leases("kubestitch").Get(ctx, "kubestitch-k8swatch", metav1.GetOptions{})
		return err == nil && l.Spec.HolderIdentity != nil && *l.Spec.HolderIdentity == "gw-0"
	}, 60*time.Second, 200*time.Millisecond, "the gateway takes the k8swatch Lease")
	time.Sleep(2 * time.Second)
	_, err = cluster.Client.AppsV1().Deployments("default").Create(ctx, localcluster.DemoDeployment("web", 3), metav1.CreateOptions{})
	require.NoError(t, err)
	require.Eventually(t, func() bool {
		tr := tracecheck.Find(waterfall.Build(sink.Traces()), fragment.PhaseDeploymentRollout, "Deployment default/web", "gen:1")
		return tr != nil && tracecheck.Count(tr, fragment.PhasePodReady) == 3 &&
			len(tracecheck.Check(tr, tracecheck.Expect{Root: fragment.PhaseDeploymentRollout, Services: []string{"apiserver", "kube-scheduler"}, ClockTolerance: time.Second})) == 0
	}, 90*time.Second, time.Second, "the stitched rollout reaches the backend through deploy/'s agent and gateway")
}

// loopbackOverrides rewrite what a pod gets from its cluster (service
// account, pod IP, its own :8888) for a collector process on this host.
func loopbackOverrides() []string {
	return []string{
		"yaml:receivers::k8s_watch::auth_type: kubeConfig",
		"yaml:receivers::k8s_watch::kube_config: ${env:KUBECONFIG}",
		"yaml:receivers::otlp::protocols::grpc::endpoint: ${env:KUBESTITCH_OTLP_GRPC_ENDPOINT}",
		"yaml:extensions::health_check::endpoint: ${env:KUBESTITCH_HEALTH_ENDPOINT}",
		"yaml:extensions::file_storage::directory: ${env:KUBESTITCH_STATE_DIR}",
		// In a pod each collector has its own :8888; here they share a host.
		"yaml:service::telemetry::metrics::level: none",
	}
}

// agentLoopbackOverrides are loopbackOverrides for an agent, which takes
// OTLP/HTTP too.
func agentLoopbackOverrides() []string {
	return append(loopbackOverrides(), "yaml:receivers::otlp::protocols::http::endpoint: ${env:KUBESTITCH_OTLP_HTTP_ENDPOINT}",
		// Its liveness port, the pod's own in a pod.
		"yaml:extensions::health_check/live::endpoint: 127.0.0.1:0")
}

// gatewayLoopbackOverrides are loopbackOverrides for a gateway, whose
// span metrics port (MY_POD_IP:8889 in a pod) and pprof port (the pod's
// own 127.0.0.1:1777) are its own here too.
func gatewayLoopbackOverrides() []string {
	return append(loopbackOverrides(),
		"yaml:exporters::prometheus::endpoint: ${env:KUBESTITCH_PROMETHEUS_ENDPOINT}",
		"yaml:extensions::pprof::endpoint: ${env:KUBESTITCH_PPROF_ENDPOINT}")
}
