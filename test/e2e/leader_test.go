package e2e

import (
	"fmt"
	"path/filepath"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/kubestitch/kubestitch/internal/fragment"
	"github.com/kubestitch/kubestitch/internal/waterfall"
	"github.com/kubestitch/kubestitch/localcluster"
	"github.com/kubestitch/kubestitch/test/harness"
)

func leaderElection(identity string) []string {
	return []string{
		"yaml:receivers::k8s_watch::leader_election::enabled: true",
		"yaml:receivers::k8s_watch::leader_election::lease_namespace: default",
		"yaml:receivers::k8s_watch::leader_election::identity: " + identity,
		"yaml:receivers::k8s_watch::leader_election::lease_duration: 4s",
		"yaml:receivers::k8s_watch::leader_election::renew_deadline: 3s",
		"yaml:receivers::k8s_watch::leader_election::retry_period: 500ms",
	}
}

func fragmentsIn(t *testing.T, c *localcluster.Collector) int {
	td, err := waterfall.ReadTraces(c.TracesFile)
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
	gw2, err := localcluster.NewCollector(localcluster.CollectorOptions{Name: "gateway-2", Bin: harness.CollectorBinary(t),
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
	holds := func(id string) func() (bool, string) {
		return func() (bool, string) { h := holder(); return h == id, fmt.Sprintf("Lease holder %q", h) }
	}
	e.WaitFor(t, "gw-1 started first and leads", 30*time.Second, holds("gw-1"))
	time.Sleep(time.Second)

	_, err = e.Cluster.Client.AppsV1().Deployments("default").Create(ctx, localcluster.DemoDeployment("led", 3), metav1.CreateOptions{})
	require.NoError(t, err)
	e.WaitTrace(t, traceTimeout, byRoot(fragment.PhaseDeploymentRollout, "Deployment default/led", "gen:1"), complete(3))
	assert.Zero(t, fragmentsIn(t, gw2), "the follower watches nothing")

	require.NoError(t, e.Gateway.Kill())
	e.WaitFor(t, "gw-2 takes over", 30*time.Second, holds("gw-2"))
	before := fragmentsIn(t, gw2)
	_, err = e.Cluster.Client.AppsV1().Deployments("default").Create(ctx, localcluster.DemoDeployment("after", 2), metav1.CreateOptions{})
	require.NoError(t, err)
	e.WaitFor(t, "the new leader emits", 30*time.Second, func() (bool, string) {
		n := fragmentsIn(t, gw2)
		return n > before, fmt.Sprintf("gw-2 emitted %d fragments, %d before the create (Lease holder %q)", n, before, holder())
	})
}
