package deploy

import (
	"fmt"
	"maps"
	"os"
	"slices"
	"sort"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/utils/ptr"

	"github.com/kubestitch/kubestitch/localcluster"
	"github.com/kubestitch/kubestitch/test/stats"
)

// scaleSize is the workload of one TestScaleOnTheInstall run.
type scaleSize struct {
	name string
	// nodes are kwok nodes, each with an agent process.
	nodes int
	// rollout: one Deployment created, then rolled to a new image.
	rollout int
	// groups Deployments of groupReplicas, created at once, spread over
	// groupNamespaces namespaces.
	groups, groupNamespaces, groupReplicas int
	// scaleTo: a Deployment of 0 replicas scaled to scaleTo.
	scaleTo int
	// A Job of jobCompletions, jobParallelism at a time.
	jobCompletions, jobParallelism int
	// timeout for each step to converge.
	timeout time.Duration
}

// The run: 100 nodes, 2,000 + 3,000 + 1,000 pods alive at once
// before the Job and the deletion. KUBESTITCH_SCALE=full (make scale-test).
var fullScale = scaleSize{name: "full", nodes: 100, rollout: 2000, groups: 30, groupNamespaces: 10, groupReplicas: 100, scaleTo: 1000, jobCompletions: 500, jobParallelism: 100, timeout: 15 * time.Minute}

// The same shape at a tenth, for make test: under 10 minutes on 2 cores.
var ciScale = scaleSize{name: "ci", nodes: 10, rollout: 200, groups: 30, groupNamespaces: 10, groupReplicas: 10, scaleTo: 100, jobCompletions: 50, jobParallelism: 25, timeout: 5 * time.Minute}

func (o *scaleOp) String() string {
	return fmt.Sprintf("%s %s/%s %s", o.kind, o.ns, o.name, o.trigger)
}

// TestScaleOnTheInstall runs the scale workload against the
// install topology (startInstall: an agent process per kwok node, 3
// sharded gateways, kube-apiserver tracing to an agent), with
// kube-controller-manager's and kube-scheduler's client QPS raised as a big
// cluster raises them. It asserts what a user checks: every pod that ran
// is in its operation's trace with every phase, every operation's trace is
// whole at one gateway; and it logs the figures deploy/README.md's sizing
// table is made of: apiserver write requests in the traces against those
// kube-apiserver counted, freshness, memory and CPU per process, and the
// Lease holder's watch events per second.
func TestScaleOnTheInstall(t *testing.T) {
	if testing.Short() {
		t.Skip("needs the local control plane; `make test` runs it")
	}
	if os.Geteuid() != 0 {
		t.Fatal("runs the install's pods in namespaces of their own: needs root (and iptables)")
	}
	size := ciScale
	if os.Getenv("KUBESTITCH_SCALE") == "full" {
		size = fullScale
	}
	t.Logf("scale run %q: %+v", size.name, size)
	ctx := t.Context()
	cluster, runner, be := startInstall(t, localcluster.Options{Nodes: size.nodes, ClientQPS: 100})
	client := cluster.Client

	pods := watchWorkloadPods(t, cluster)
	heapBefore := heaps(runner)
	before := apiserverWrites(t, cluster)
	cpuBefore := cpuSeconds(runner)
	holder := leaseHolder(t, cluster, runner)
	eventsBefore := counter(runner, holder, "otelcol_k8swatch_watch_events")
	began := time.Now()
	var ops []*scaleOp

	// 1. A big Deployment created, then rolled to a new image.
	createNamespaces(t, cluster, "big")
	deployWeb(t, cluster, "big", int32(size.rollout))
	ops = append(ops, converge(t, cluster, "big", "web", "gen:1", size.rollout, size.timeout))
	setImage(t, cluster, "big", "registry.example/web:2")
	ops = append(ops, converge(t, cluster, "big", "web", "gen:2", size.rollout, size.timeout))
	t.Logf("1. %d-replica Deployment created and rolled: %v", size.rollout, time.Since(began).Round(time.Second))

	// 2. Deployments created at once in several namespaces.
	var groupNS []string
	for i := range size.groupNamespaces {
		groupNS = append(groupNS, fmt.Sprintf("group-%d", i))
	}
	createNamespaces(t, cluster, groupNS...)
	step := time.Now()
	var wg sync.WaitGroup
	var mu sync.Mutex
	for i := range size.groups {
		ns, name := groupNS[i%len(groupNS)], fmt.Sprintf("web-%d", i/len(groupNS))
		wg.Go(func() {
			d := localcluster.DemoDeployment(name, int32(size.groupReplicas))
			d.Namespace = ns
			_, err := client.AppsV1().Deployments(ns).Create(ctx, d, metav1.CreateOptions{})
			assert.NoError(t, err)
		})
	}
	wg.Wait()
	for i := range size.groups {
		ns, name := groupNS[i%len(groupNS)], fmt.Sprintf("web-%d", i/len(groupNS))
		wg.Go(func() {
			op := converge(t, cluster, ns, name, "gen:1", size.groupReplicas, size.timeout)
			mu.Lock()
			ops = append(ops, op)
			mu.Unlock()
		})
	}
	wg.Wait()
	t.Logf("2. %d Deployments of %d in %d namespaces: %v; pods alive: %d", size.groups, size.groupReplicas, len(groupNS), time.Since(step).Round(time.Second), pods.alive())

	// 3. A scale from 0.
	createNamespaces(t, cluster, "scale")
	step = time.Now()
	deployWeb(t, cluster, "scale", 0)
	converge(t, cluster, "scale", "web", "gen:1", 0, size.timeout)
	_, err := client.AppsV1().Deployments("scale").Patch(ctx, "web", types.MergePatchType, fmt.Appendf(nil, `{"spec":{"replicas":%d}}`, size.scaleTo), metav1.PatchOptions{})
	require.NoError(t, err)
	ops = append(ops, converge(t, cluster, "scale", "web", "gen:2", size.scaleTo, size.timeout))
	peak := pods.alive()
	t.Logf("3. scale 0 -> %d: %v; pods alive: %d", size.scaleTo, time.Since(step).Round(time.Second), peak)
	logMemory(t, runner, fmt.Sprintf("with %d pods alive", peak))
	logHeap(t, runner, heapBefore, peak)
	for _, p := range runner.Pods() {
		if p.Namespace != "kubestitch" {
			continue
		}
		h, err := gatewayHeap(runner, p)
		if assert.NoError(t, err, "%s's heap profile", p.Name) {
			t.Logf("%s with %d pods alive, after a GC: %v; largest sites: k8sstitch: %s; rest: %s", p.Name, peak, h, h.topSites("stitch", 4), h.topSites("other", 6))
		}
	}

	// 4. A Job.
	createNamespaces(t, cluster, "batch")
	step = time.Now()
	ops = append(ops, runJob(t, cluster, "batch", "work", size))
	t.Logf("4. Job of %d completions: %v", size.jobCompletions, time.Since(step).Round(time.Second))

	// 5. Everything deleted.
	step = time.Now()
	for _, op := range ops {
		if op.trigger != "gen:1" && op.kind == "Deployment" {
			continue
		}
		del := metav1.DeleteOptions{PropagationPolicy: ptr.To(metav1.DeletePropagationBackground)}
		if op.kind == "Job" {
			require.NoError(t, client.BatchV1().Jobs(op.ns).Delete(ctx, op.name, del))
		} else {
			require.NoError(t, client.AppsV1().Deployments(op.ns).Delete(ctx, op.name, del))
		}
	}
	require.NoError(t, client.AppsV1().Deployments("scale").Delete(ctx, "web", metav1.DeleteOptions{PropagationPolicy: ptr.To(metav1.DeletePropagationBackground)}))
	require.Eventually(t, func() bool { return pods.alive() == 0 }, size.timeout, time.Second, "every pod deleted")
	t.Logf("5. everything deleted: %v", time.Since(step).Round(time.Second))
	elapsed := time.Since(began)
	require.NoError(t, runner.Err())

	// The figures, once the last operations had time to leave the gateways.
	ran := pods.ran()
	report, ok := awaitComplete(t, be, ops, ran)
	after := apiserverWrites(t, cluster)
	for _, c := range writeClasses {
		served := after[c] - before[c]
		t.Logf("apiserver %s: %.0f served (apiserver_request_total), %d exported as spans, %d of them in operation traces", c, served, report.exported[c], report.joined[c])
	}
	for _, k := range slices.Sorted(maps.Keys(report.outside)) {
		t.Logf("apiserver request outside operation traces: %s: %d", k, report.outside[k])
	}
	t.Logf("freshness, convergence to root span at the backend, over %d operations: p50 %v, p99 %v, max %v",
		len(report.freshness), stats.Percentile(report.freshness, 0.5).Round(time.Millisecond), stats.Percentile(report.freshness, 0.99).Round(time.Millisecond), stats.Percentile(report.freshness, 1).Round(time.Millisecond))
	cpuAfter := cpuSeconds(runner)
	var lines []string
	for _, p := range runner.Pods() {
		used := cpuAfter[p.Name] - cpuBefore[p.Name]
		lines = append(lines, fmt.Sprintf("%s/%s: %.1f CPU-s, %.2f CPU-s per 1,000 pod startups", p.Namespace, p.Name, used, used*1000/float64(len(ran))))
	}
	sort.Strings(lines)
	t.Logf("CPU over the run (%v, %d pod startups):\n  %s", elapsed.Round(time.Second), len(ran), strings.Join(lines, "\n  "))
	events := counter(runner, holder, "otelcol_k8swatch_watch_events") - eventsBefore
	t.Logf("Lease holder %s: %.0f watch events, %.0f per second over the run", holder.Name, events, events/elapsed.Seconds())
	require.True(t, ok, "every pod that ran in its operation's trace with every phase, every operation whole at one gateway")
}

func (p *podTracker) update(obj any) {
	pod, ok := obj.(*corev1.Pod)
	if !ok || strings.HasPrefix(pod.Namespace, "kubestitch") {
		return
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	p.live[pod.UID] = true
	r := p.seen[pod.UID]
	if r == nil && (pod.Status.Phase == corev1.PodRunning || pod.Status.Phase == corev1.PodSucceeded) {
		r = &ranPod{ns: pod.Namespace, name: pod.Name}
		p.seen[pod.UID] = r
	}
	if r != nil {
		for _, c := range pod.Status.Conditions {
			if c.Type == corev1.PodReady && c.Status == corev1.ConditionTrue {
				r.ready = true
			}
		}
	}
}

func (p *podTracker) alive() int {
	p.mu.Lock()
	defer p.mu.Unlock()
	return len(p.live)
}

func (p *podTracker) ran() map[types.UID]ranPod {
	p.mu.Lock()
	defer p.mu.Unlock()
	out := make(map[types.UID]ranPod, len(p.seen))
	for uid, r := range p.seen {
		out[uid] = *r
	}
	return out
}

func (r *scaleReport) missing() int { return r.wantPods - r.completePods + r.wantOps - r.wholeOps }
