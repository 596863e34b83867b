package e2e

import (
	"path/filepath"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/kubestitch/kubestitch/internal/fragment"
	"github.com/kubestitch/kubestitch/internal/waterfall"
	"github.com/kubestitch/kubestitch/test/harness"
	"github.com/kubestitch/kubestitch/test/localcluster"
)

func leaderElection(identity string) []string {
	return []string{
		"yaml:receivers::k8swatch::leader_election::enabled: true",
		"yaml:receivers::k8swatch::leader_election::lease_namespace: default",
		"yaml:receivers::k8swatch::leader_election::identity: " + identity,
		"yaml:receivers::k8swatch::leader_election::lease_duration: 4s",
		"yaml:receivers::k8swatch::leader_election::renew_deadline: 3s",
		"yaml:receivers::k8swatch::leader_election::retry_period: 500ms",
	}
}

func fragmentsIn(t *testing.T, c *harness.Collector) int {
	td, err := harness.ReadTraces(c.TracesFile)
	require.NoError(t, err)
	n := 0
	for _, tr := range waterfall.Build(td) {
		for _, s := range tr.Spans {
			if s.IsFragment() {
				n++
			}
		}
	}
	return n
}

// TestTwoGatewaysOneWatcher: two gateway replicas with leader election;
// only the Lease holder emits fragments, and when it dies the other takes
// over.
func TestTwoGatewaysOneWatcher(t *testing.T) {
	e := harness.StartEnv(t, harness.EnvOptions{GatewayOverrides: leaderElection("gw-1")})
	root, err := localcluster.RepoRoot()
	require.NoError(t, err)
	gw2, err := harness.NewCollector(harness.CollectorOptions{Name: "gateway-2", Bin: harness.CollectorBinary(t),
		Config: filepath.Join(root, "test", "harness", "testdata", "gateway.yaml"), Dir: e.Dir, Overrides: leaderElection("gw-2")})
	require.NoError(t, err)
	gw2.SetEnv("KUBECONFIG=" + e.Cluster.Kubeconfig)
	require.NoError(t, gw2.Start(t.Context()))
	t.Cleanup(func() { _ = gw2.Stop() })
	ctx := t.Context()
	leases := e.Cluster.Client.CoordinationV1().Leases("default")
	holder := func() string {
		l, err := leases.Get(ctx, "kubestitch-k8swatch", metav1.GetOptions{})
		if err != nil || l.Spec.HolderIdentity == nil {
			return ""
		}
		return *l.Spec.HolderIdentity
	}
	require.Eventually(t, func() bool { return holder() == "gw-1" }, 30*time.Second, 100*time.Millisecond, "gw-1 started first and leads")
	time.Sleep(time.Second)

	_, err = e.Cluster.Client.AppsV1().Deployments("default").Create(ctx, localcluster.DemoDeployment("led", 3), metav1.CreateOptions{})
	require.NoError(t, err)
	e.WaitTrace(t, traceTimeout, byRoot(fragment.PhaseDeploymentRollout, "Deployment default/led", "gen:1"), complete(3))
	assert.Zero(t, fragmentsIn(t, gw2), "the follower watches nothing")

	require.NoError(t, e.Gateway.Kill())
	require.Eventually(t, func() bool { return holder() == "gw-2" }, 30*time.Second, 200*time.Millisecond, "gw-2 takes over")
	before := fragmentsIn(t, gw2)
	_, err = e.Cluster.Client.AppsV1().Deployments("default").Create(ctx, localcluster.DemoDeployment("after", 2), metav1.CreateOptions{})
	require.NoError(t, err)
	require.Eventually(t, func() bool { return fragmentsIn(t, gw2) > before }, 30*time.Second, 500*time.Millisecond, "the new leader emits")
}
