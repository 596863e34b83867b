package deploy

import (
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"sigs.k8s.io/yaml"

	"github.com/kubestitch/kubestitch/internal/fragment"
	"github.com/kubestitch/kubestitch/internal/waterfall"
	"github.com/kubestitch/kubestitch/localcluster"
	"github.com/kubestitch/kubestitch/test/harness"
	"github.com/kubestitch/kubestitch/test/otlpsink"
	"github.com/kubestitch/kubestitch/test/tracecheck"
)

// withStaticGateways rewrites a config of deploy/'s sharded overlay: the
// load-balancing exporter's DNS resolver (the headless Service) becomes a
// static list of the gateways on loopback.
func withStaticGateways(t *testing.T, body string, gateways []string) string {
	t.Helper()
	var cfg map[string]any
	require.NoError(t, yaml.Unmarshal([]byte(body), &cfg))
	lb, ok := cfg["exporters"].(map[string]any)["loadbalancing"].(map[string]any)
	require.True(t, ok, "the config has a loadbalancing exporter")
	lb["resolver"] = map[string]any{"static": map[string]any{"hostnames": gateways}}
	out, err := yaml.Marshal(cfg)
	require.NoError(t, err)
	return string(out)
}

// TestShardedGatewaysOnRealAPIServer runs deploy/'s sharded overlay as
// processes: two gateways (gateway.yaml + sharding.yaml) and an agent, the
// agent receiving kube-apiserver's spans as on a control-plane node. A
// Deployment in each of four namespaces must arrive whole, with its
// apiserver requests, at exactly one gateway's backend: the one its
// namespace routes to.
func TestShardedGatewaysOnRealAPIServer(t *testing.T) {
	if testing.Short() {
		t.Skip("needs the local control plane; `make test` runs it")
	}
	ctx := t.Context()
	cfg := configs(t, "sharded")
	require.Contains(t, cfg, "sharding.yaml")
	// The sharding overlay and the agent's config name the gateways'
	// endpoints: written once their ports are chosen, before they start.
	files := t.TempDir()
	shardingFile, agentFile := filepath.Join(files, "sharding.yaml"), filepath.Join(files, "agent.yaml")
	type shard struct {
		gw   *localcluster.Collector
		sink *otlpsink.Sink
	}
	// kube-apiserver exports to the agent of its node.
	gwTLS, agentTLS := tlsDirs(t)
	collectors := []localcluster.StackCollector{{Name: "agent", Config: agentFile, Overrides: agentLoopbackOverrides(), Env: slices.Concat(podEnv, tlsEnv(agentTLS)), APIServerSpans: true}}
	sinks := map[string]*otlpsink.Sink{}
	for _, name := range []string{"gw-a", "gw-b"} {
		sinks[name] = otlpsink.Start(t)
		collectors = append(collectors, localcluster.StackCollector{Name: name, ConfigYAML: []byte(cfg["gateway.yaml"]),
			Overrides: append([]string{shardingFile}, append(gatewayLoopbackOverrides(), "yaml:processors::k8s_stitch::wait: 3s")...),
			Env:       slices.Concat(podEnv, tlsEnv(gwTLS), []string{"POD_NAME=" + name, "KUBESTITCH_BACKEND_ENDPOINT=" + sinks[name].Endpoint})})
	}
	var shards []shard
	st := harness.StartStack(t, localcluster.StackOptions{Cluster: localcluster.Options{Log: localcluster.TestLog(t)}, Collectors: collectors}, func(st *localcluster.Stack) {
		var endpoints []string
		for _, name := range []string{"gw-a", "gw-b"} {
			shards = append(shards, shard{st.Collector(name), sinks[name]})
			endpoints = append(endpoints, st.Collector(name).OTLPEndpoint)
		}
		require.NoError(t, os.WriteFile(shardingFile, []byte(withStaticGateways(t, cfg["sharding.yaml"], endpoints)), 0o644))
		require.NoError(t, os.WriteFile(agentFile, []byte(withStaticGateways(t, cfg["agent.yaml"], endpoints)), 0o644))
	})
	cluster := st.Cluster

	namespaces := []string{"team-1", "team-2", "team-3", "team-4", "team-5", "team-6"}
	for _, ns := range append([]string{"kubestitch"}, namespaces...) {
		_, err := cluster.Client.CoreV1().Namespaces().Create(ctx, &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: ns}}, metav1.CreateOptions{})
		require.NoError(t, err)
	}
	require.Eventually(t, func() bool {
		l, err := cluster.Client.CoordinationV1().Leases("kubestitch").Get(ctx, "kubestitch-k8swatch", metav1.GetOptions{})
		return err == nil && l.Spec.HolderIdentity != nil
	}, 60*time.Second, 200*time.Millisecond, "a gateway takes the k8swatch Lease")
	time.Sleep(2 * time.Second)
	for _, ns := range namespaces {
		deployWeb(t, cluster, ns, 3)
	}

	expect := tracecheck.Expect{Root: fragment.PhaseDeploymentRollout, Services: []string{"apiserver", "kube-scheduler", "kube-controller-manager"}, ClockTolerance: time.Second}
	where := map[string]string{}
	for _, ns := range namespaces {
		object := fmt.Sprintf("Deployment %s/web", ns)
		var found []string
		ok := assert.Eventually(t, func() bool {
			found = found[:0]
			whole := false
			for i, s := range shards {
				tr := tracecheck.Find(waterfall.Build(s.sink.Traces()), fragment.PhaseDeploymentRollout, object, "gen:1")
				if tr == nil {
					continue
				}
				found = append(found, s.gw.Name)
				if tracecheck.Count(tr, fragment.PhasePodReady) == 3 && tracecheck.Count(tr, "POST /apis/apps/v1/namespaces/{:namespace}/deployments") > 0 && len(tracecheck.Check(tr, expect)) == 0 {
					whole = true
					where[ns] = shards[i].gw.Name
				}
			}
			return whole && len(found) == 1
		}, 90*time.Second, time.Second, "%s: one whole trace, with its apiserver requests, at one gateway (found at %v)", object, found)
		if !ok {
			for _, s := range shards {
				if tr := tracecheck.Find(waterfall.Build(s.sink.Traces()), fragment.PhaseDeploymentRollout, object, "gen:1"); tr != nil {
					t.Logf("%s at %s: %v", object, s.gw.Name, tracecheck.Check(tr, expect))
				}
			}
		}
	}
	t.Logf("namespace -> gateway: %v", where)
}

// deployWeb creates the demo Deployment "web" in ns, once the namespace's
// default ServiceAccount exists (its pods need it).
func deployWeb(t *testing.T, cluster *localcluster.Cluster, ns string, replicas int32) {
	t.Helper()
	deployWebImage(t, cluster, ns, replicas, "")
}

// deployWebImage is deployWeb running image (localcluster.RunDemoImage)
// on real nodes; "" for kwok's stand-in pods.
func deployWebImage(t *testing.T, cluster *localcluster.Cluster, ns string, replicas int32, image string) {
	t.Helper()
	require.Eventually(t, func() bool {
		_, err := cluster.Client.CoreV1().ServiceAccounts(ns).Get(t.Context(), "default", metav1.GetOptions{})
		return err == nil
	}, 30*time.Second, 100*time.Millisecond)
	d := localcluster.DemoDeployment("web", replicas)
	d.Namespace = ns
	if image != "" {
		localcluster.RunDemoImage(d, image)
	}
	_, err := cluster.Client.AppsV1().Deployments(ns).Create(t.Context(), d, metav1.CreateOptions{})
	require.NoError(t, err)
}
