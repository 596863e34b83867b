package deploy

import (
	"fmt"
	"os"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/kubestitch/kubestitch/localcluster"
	"github.com/kubestitch/kubestitch/test/podrunner"
)

// growthPoints are the pod counts at which TestGatewayMemoryGrowth reads
// every gateway's heap: issue #17's curve.
var growthPoints = []int{1000, 5000, 20000}

// growthReplicas is the size of each Deployment the growth run adds.
const growthReplicas = 500

// TestGatewayMemoryGrowth grows the install (100 kwok nodes, an agent
// process each, 3 sharded gateways) to 1,000, 5,000 and 20,000 pods alive
// in Deployments of 500 across 10 namespaces, and at each point reads every
// gateway's heap by what holds it, from the process's own heap profile
// after a GC (gatewayHeap): the informer cache, k8swatch's tracker and
// k8sstitch's graph separately, as they are in the running gateway. It
// asserts what a user checks of such a cluster: every rollout whole at one
// gateway with every pod and phase. About 25 minutes on 2 cores:
// KUBESTITCH_GROWTH=1 (make growth-test), not in make test, whose scale run
// reads the same split at its peak.
func TestGatewayMemoryGrowth(t *testing.T) {
	if testing.Short() || os.Getenv("KUBESTITCH_GROWTH") == "" {
		t.Skip("the 20,000-pod memory curve: KUBESTITCH_GROWTH=1 (make growth-test)")
	}
	if os.Geteuid() != 0 {
		t.Fatal("runs the install's pods in namespaces of their own: needs root (and iptables)")
	}
	const nodes, namespaces = 100, 10
	timeout := 20 * time.Minute
	cluster, runner, be := startInstall(t, localcluster.Options{Nodes: nodes, ClientQPS: 100})
	pods := watchWorkloadPods(t, cluster)
	var gateways []*podrunner.Pod
	for _, p := range runner.Pods() {
		if p.Namespace == "kubestitch" {
			gateways = append(gateways, p)
		}
	}
	require.Len(t, gateways, 3)
	var nsNames []string
	for i := range namespaces {
		nsNames = append(nsNames, fmt.Sprintf("grow-%d", i))
	}
	createNamespaces(t, cluster, nsNames...)

	before := map[string]heapShares{}
	for _, g := range gateways {
		h, err := gatewayHeap(runner, g)
		require.NoError(t, err)
		before[g.Name] = h
	}
	var ops []*scaleOp
	for _, point := range growthPoints {
		began := time.Now()
		var wg sync.WaitGroup
		var mu sync.Mutex
		for i := len(ops); i < point/growthReplicas; i++ {
			ns, name := nsNames[i%namespaces], fmt.Sprintf("web-%d", i/namespaces)
			wg.Go(func() {
				d := localcluster.DemoDeployment(name, growthReplicas)
				d.Namespace = ns
				if _, err := cluster.Client.AppsV1().Deployments(ns).Create(t.Context(), d, metav1.CreateOptions{}); !assert.NoError(t, err) {
					return
				}
				op := converge(t, cluster, ns, name, "gen:1", growthReplicas, timeout)
				mu.Lock()
				ops = append(ops, op)
				mu.Unlock()
			})
		}
		wg.Wait()
		require.False(t, t.Failed())
		// Let the last operations leave (k8sstitch's wait, the batch) so
		// what is measured is what the gateway keeps, not what passes.
		time.Sleep(15 * time.Second)
		alive := pods.alive()
		t.Logf("%d pods alive (%d Deployments of %d), grown in %v", alive, len(ops), growthReplicas, time.Since(began).Round(time.Second))
		var lines []string
		var stitched float64
		holder := leaseHolder(t, cluster, runner)
		for _, g := range gateways {
			h, err := gatewayHeap(runner, g)
			require.NoError(t, err)
			b := before[g.Name]
			perPod := func(now, was float64) float64 { return (now - was) / float64(alive) }
			lines = append(lines, fmt.Sprintf("%s: %v; per pod alive in the cluster, since before the workload: heap %.0f B, cache %.0f B, tracker %.0f B, k8sstitch %.0f B",
				g.Name, h, perPod(h.heapAlloc, b.heapAlloc), perPod(h.cache.bytes, b.cache.bytes), perPod(h.tracker.bytes, b.tracker.bytes), perPod(h.stitch.bytes, b.stitch.bytes)))
			stitched += h.stitch.bytes - b.stitch.bytes
			if g.Name == holder.Name {
				lines = append(lines, fmt.Sprintf("%s: largest sites: tracker: %s; cache: %s", g.Name, h.topSites("tracker", 6), h.topSites("cache", 4)))
			}
			lines = append(lines, fmt.Sprintf("%s: largest sites: k8sstitch: %s", g.Name, h.topSites("stitch", 6)))
		}
		slices.Sort(lines)
		t.Logf("gateways with %d pods alive (the Lease holder: %s):\n  %s", alive, holder.Name, strings.Join(lines, "\n  "))
		t.Logf("k8sstitch, all gateways together (each holds its namespaces' objects): %.0f B per pod alive", stitched/float64(alive))
		logAgents(t, runner, alive)
	}

	_, ok := awaitComplete(t, be, ops, pods.ran())
	require.True(t, ok, "every pod that ran in its rollout's trace with every phase, every rollout whole at one gateway")
	require.NoError(t, runner.Err())
}

// logAgents logs the agents' heaps (the collector's own gauge, garbage
// included) as the smallest, median and largest, against pods per node.
func logAgents(t *testing.T, runner *podrunner.Runner, alive int) {
	var heaps []float64
	for _, p := range runner.Pods() {
		if p.Namespace != "kubestitch-node" {
			continue
		}
		if h, ok := gauge(runner, p, "otelcol_process_runtime_heap_alloc_bytes"); ok {
			heaps = append(heaps, h/(1<<20))
		}
	}
	if len(heaps) == 0 {
		return
	}
	slices.Sort(heaps)
	t.Logf("%d agents with %d pods alive (%.0f per node): heap min %.1f MiB, median %.1f MiB, max %.1f MiB",
		len(heaps), alive, float64(alive)/float64(len(heaps)), heaps[0], heaps[len(heaps)/2], heaps[len(heaps)-1])
}
