package deploy

import (
	"bytes"
	"context"
	"fmt"
	"maps"
	"os"
	"slices"
	"sort"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"go.opentelemetry.io/collector/pdata/pcommon"
	"go.opentelemetry.io/collector/pdata/ptrace"
	batchv1 "k8s.io/api/batch/v1"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/client-go/informers"
	"k8s.io/client-go/tools/cache"
	"k8s.io/utils/ptr"

	"github.com/kubestitch/kubestitch/internal/fragment"
	"github.com/kubestitch/kubestitch/localcluster"
	"github.com/kubestitch/kubestitch/test/podrunner"
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

// scaleOp is one operation the test started and waits to see whole.
type scaleOp struct {
	kind, ns, name, trigger string
	uid                     types.UID
	// pods the operation started: each must be in its trace.
	pods int
	// converged: when the test saw the object's status say done.
	converged time.Time
}

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
		len(report.freshness), quantile(report.freshness, 0.5), quantile(report.freshness, 0.99), quantile(report.freshness, 1))
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

// podTracker is the test's own watch of the workload pods: which ran, and
// which were ready, as the API reported them.
type podTracker struct {
	mu   sync.Mutex
	live map[types.UID]bool
	seen map[types.UID]*ranPod
}

type ranPod struct {
	ns, name string
	ready    bool
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

func watchWorkloadPods(t *testing.T, cluster *localcluster.Cluster) *podTracker {
	p := &podTracker{live: map[types.UID]bool{}, seen: map[types.UID]*ranPod{}}
	f := informers.NewSharedInformerFactory(cluster.Client, 0)
	inf := f.Core().V1().Pods().Informer()
	_, err := inf.AddEventHandler(cache.ResourceEventHandlerFuncs{
		AddFunc:    p.update,
		UpdateFunc: func(_, obj any) { p.update(obj) },
		DeleteFunc: func(obj any) {
			if d, ok := obj.(cache.DeletedFinalStateUnknown); ok {
				obj = d.Obj
			}
			if pod, ok := obj.(*corev1.Pod); ok {
				p.mu.Lock()
				delete(p.live, pod.UID)
				p.mu.Unlock()
			}
		},
	})
	require.NoError(t, err)
	ctx, cancel := context.WithCancel(context.Background())
	t.Cleanup(cancel)
	f.Start(ctx.Done())
	require.True(t, cache.WaitForCacheSync(ctx.Done(), inf.HasSynced))
	return p
}

func createNamespaces(t *testing.T, cluster *localcluster.Cluster, names ...string) {
	for _, ns := range names {
		_, err := cluster.Client.CoreV1().Namespaces().Create(t.Context(), &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: ns}}, metav1.CreateOptions{})
		require.NoError(t, err)
	}
}

// converge waits until ns/name's Deployment reports trigger done, and
// returns it as an operation with the moment the test saw that.
func converge(t *testing.T, cluster *localcluster.Cluster, ns, name, trigger string, pods int, timeout time.Duration) *scaleOp {
	op := &scaleOp{kind: "Deployment", ns: ns, name: name, trigger: trigger, pods: pods}
	gen, _ := strconv.ParseInt(strings.TrimPrefix(trigger, "gen:"), 10, 64)
	require.Eventually(t, func() bool {
		d, err := cluster.Client.AppsV1().Deployments(ns).Get(context.Background(), name, metav1.GetOptions{})
		if apierrors.IsNotFound(err) || err != nil {
			return false
		}
		require.Equal(t, gen, d.Generation, "%s: the generation the test expects", op)
		op.uid = d.UID
		want := *d.Spec.Replicas
		s := d.Status
		return s.ObservedGeneration == d.Generation && s.UpdatedReplicas == want && s.AvailableReplicas == want && s.Replicas == want
	}, timeout, 250*time.Millisecond, "%s converges", op)
	op.converged = time.Now()
	return op
}

func runJob(t *testing.T, cluster *localcluster.Cluster, ns, name string, size scaleSize) *scaleOp {
	labels := map[string]string{"job": name}
	job := &batchv1.Job{
		ObjectMeta: metav1.ObjectMeta{Name: name, Namespace: ns},
		Spec: batchv1.JobSpec{
			Completions: ptr.To(int32(size.jobCompletions)), Parallelism: ptr.To(int32(size.jobParallelism)),
			Template: corev1.PodTemplateSpec{
				ObjectMeta: metav1.ObjectMeta{Labels: labels},
				Spec: corev1.PodSpec{
					RestartPolicy: corev1.RestartPolicyNever,
					Containers:    []corev1.Container{{Name: "work", Image: "registry.example/work:1"}},
				},
			},
		},
	}
	require.Eventually(t, func() bool {
		_, err := cluster.Client.CoreV1().ServiceAccounts(ns).Get(t.Context(), "default", metav1.GetOptions{})
		return err == nil
	}, 30*time.Second, 100*time.Millisecond)
	created, err := cluster.Client.BatchV1().Jobs(ns).Create(t.Context(), job, metav1.CreateOptions{})
	require.NoError(t, err)
	op := &scaleOp{kind: "Job", ns: ns, name: name, trigger: "gen:1", uid: created.UID, pods: size.jobCompletions}
	require.Eventually(t, func() bool {
		j, err := cluster.Client.BatchV1().Jobs(ns).Get(context.Background(), name, metav1.GetOptions{})
		return err == nil && j.Status.Succeeded == int32(size.jobCompletions) && j.Status.CompletionTime != nil
	}, size.timeout, 250*time.Millisecond, "%s completes", op)
	op.converged = time.Now()
	return op
}

// writeClasses are the apiserver writes a pod start makes.
var writeClasses = []string{"pod create", "pod binding", "pod status"}

// writeClass classifies a request by verb, resource and subresource.
func writeClass(verb, resource, subresource string) string {
	if resource != "pods" {
		return ""
	}
	switch {
	case verb == "POST" && subresource == "":
		return "pod create"
	case verb == "POST" && subresource == "binding":
		return "pod binding"
	case (verb == "PATCH" || verb == "PUT") && subresource == "status":
		return "pod status"
	}
	return ""
}

// apiserverWrites reads kube-apiserver's apiserver_request_total for the
// write classes.
func apiserverWrites(t *testing.T, cluster *localcluster.Cluster) map[string]float64 {
	body, err := cluster.Client.CoreV1().RESTClient().Get().AbsPath("/metrics").DoRaw(t.Context())
	require.NoError(t, err)
	out := map[string]float64{}
	for _, l := range strings.Split(string(body), "\n") {
		if !strings.HasPrefix(l, "apiserver_request_total{") {
			continue
		}
		labels := promLabels(l)
		if c := writeClass(labels["verb"], labels["resource"], labels["subresource"]); c != "" {
			v, err := strconv.ParseFloat(l[strings.LastIndex(l, " ")+1:], 64)
			require.NoError(t, err)
			out[c] += v
		}
	}
	return out
}

func promLabels(line string) map[string]string {
	out := map[string]string{}
	inner := line[strings.Index(line, "{")+1 : strings.LastIndex(line, "}")]
	for _, kv := range strings.Split(inner, ",") {
		k, v, ok := strings.Cut(kv, "=")
		if ok {
			out[k] = strings.Trim(v, `"`)
		}
	}
	return out
}

// namespaceOf is the namespace of a namespaced request path.
func namespaceOf(target string) string {
	parts := strings.Split(strings.Trim(target, "/"), "/")
	if len(parts) > 3 && parts[2] == "namespaces" {
		return parts[3]
	}
	return ""
}

// podOf is the pod of a pod request path (api/v1/namespaces/NS/pods/NAME/...).
func podOf(target string) string {
	path, _, _ := strings.Cut(target, "?")
	parts := strings.Split(strings.Trim(path, "/"), "/")
	if len(parts) > 5 && parts[4] == "pods" {
		return parts[5]
	}
	return ""
}

// podOp is one of a pod's operations, by its object span: a request
// outside every operation's trace is told by when it came against them.
type podOp struct {
	trigger    string
	start, end time.Time
}

// whenAgainst says when a request at came against its pod's operations:
// inside one, or how long after the last that ended before it.
func whenAgainst(at time.Time, ops []podOp) string {
	var last string
	var lastEnd time.Time
	for _, op := range ops {
		if !at.Before(op.start) && !at.After(op.end) {
			return "inside its pod's " + op.trigger
		}
		if op.end.Before(at) && op.end.After(lastEnd) {
			last, lastEnd = op.trigger, op.end
		}
	}
	switch gap := at.Sub(lastEnd); {
	case last == "" && len(ops) == 0:
		return "its pod has no operation"
	case last == "":
		return "before its pod's operations"
	case gap < time.Second:
		return "under 1 s after its pod's " + last + " ended"
	case gap < 10*time.Second:
		return "1-10 s after its pod's " + last + " ended"
	default:
		return "over 10 s after its pod's " + last + " ended"
	}
}

// requestClass classifies an apiserver server span by its method and path.
func requestClass(method, target string) string {
	path, _, _ := strings.Cut(target, "?")
	parts := strings.Split(strings.Trim(path, "/"), "/")
	// api/v1/namespaces/NS/pods[/NAME[/SUB]]
	if len(parts) < 5 || parts[0] != "api" || parts[2] != "namespaces" || parts[4] != "pods" {
		return ""
	}
	sub := ""
	if len(parts) == 7 {
		sub = parts[6]
	}
	if len(parts) == 5 || len(parts) == 7 {
		return writeClass(method, "pods", sub)
	}
	return ""
}

// awaitComplete waits, up to 3 minutes, until every pod that ran is in
// its operation's trace with every phase and every operation is whole at
// one gateway, and logs how far it got (and what is missing, if not).
func awaitComplete(t *testing.T, be *backends, ops []*scaleOp, ran map[types.UID]ranPod) (*scaleReport, bool) {
	var report *scaleReport
	ok := assert.Eventually(t, func() bool {
		report = analyze(be, ops, ran)
		return report.missing() == 0
	}, 3*time.Minute, 5*time.Second)
	if !ok {
		for _, l := range report.problems {
			t.Log(l)
		}
	}
	t.Logf("completeness: %d of %d pods that ran are in their operation's trace with every phase; %d of %d operations whole at one gateway",
		report.completePods, len(ran), report.wholeOps, len(ops))
	return report, ok
}

// scaleReport is what the backends hold about the run's operations.
type scaleReport struct {
	completePods, wholeOps int
	exported, joined       map[string]int
	// outside itemises the requests not in an operation's trace: class,
	// namespace (the workload's or the install's own) and what their
	// trace holds.
	outside           map[string]int
	freshness         []time.Duration
	problems          []string
	wantPods, wantOps int
}

func (r *scaleReport) missing() int { return r.wantPods - r.completePods + r.wantOps - r.wholeOps }

// analyze reads every span the gateways exported.
func analyze(be *backends, ops []*scaleOp, ran map[types.UID]ranPod) *scaleReport {
	r := &scaleReport{exported: map[string]int{}, joined: map[string]int{}, outside: map[string]int{}, wantPods: len(ran), wantOps: len(ops)}
	type opKey struct{ uid, trigger string }
	type podSeen struct {
		phases map[string]bool
		trace  pcommon.TraceID
	}
	opTrace := map[pcommon.TraceID]opKey{}
	opAt := map[opKey][]string{} // the gateways with its root span
	arrived := map[opKey]time.Time{}
	podsIn := map[opKey]int{} // pod.ready (or pod object spans for a Job) in its trace
	pods := map[string]*podSeen{}
	objects := map[string]string{} // UID -> "Kind ns/name", for the problems
	type request struct {
		class, ns, pod, status string
		trace                  pcommon.TraceID
		at                     time.Time
	}
	podOps := map[string][]podOp{}         // "ns/name"
	rootOf := map[pcommon.TraceID]string{} // "Kind trigger" of a trace's root fragment
	var requests []request
	be.mu.Lock()
	for gw, s := range be.sinks {
		s.Each(func(at time.Time, service string, sp ptrace.Span) {
			a := sp.Attributes()
			level, isFrag := a.Get(fragment.KeyLevel)
			if !isFrag {
				if service != "apiserver" {
					return
				}
				m, ok1 := a.Get("http.request.method")
				tg, ok2 := a.Get("http.target")
				if ok1 && ok2 {
					if c := requestClass(m.Str(), tg.Str()); c != "" {
						status := "status ?"
						for _, k := range []string{"http.response.status_code", "http.status_code"} {
							if v, ok := a.Get(k); ok {
								status = "status " + v.AsString()
							}
						}
						requests = append(requests, request{c, namespaceOf(tg.Str()), podOf(tg.Str()), status, sp.TraceID(), sp.StartTimestamp().AsTime()})
					}
				}
				return
			}
			uid, _ := a.Get(fragment.KeyUID)
			kind, _ := a.Get(fragment.KeyKind)
			trig, _ := a.Get(fragment.KeyTrigger)
			if _, ok := objects[uid.Str()]; !ok {
				ns, _ := a.Get(fragment.KeyNamespace)
				name, _ := a.Get(fragment.KeyName)
				objects[uid.Str()] = kind.Str() + " " + ns.Str() + "/" + name.Str()
			}
			if level.Str() == fragment.LevelObject && kind.Str() == "Pod" {
				ns, _ := a.Get(fragment.KeyNamespace)
				name, _ := a.Get(fragment.KeyName)
				k := ns.Str() + "/" + name.Str()
				podOps[k] = append(podOps[k], podOp{trig.Str(), sp.StartTimestamp().AsTime(), sp.EndTimestamp().AsTime()})
			}
			if sp.ParentSpanID().IsEmpty() {
				t := trig.Str()
				if strings.HasPrefix(t, "gen:") {
					t = "gen"
				}
				rootOf[sp.TraceID()] = kind.Str() + " " + t
			}
			if level.Str() == fragment.LevelObject && sp.ParentSpanID().IsEmpty() && kind.Str() != "Pod" {
				k := opKey{uid.Str(), trig.Str()}
				opTrace[sp.TraceID()] = k
				opAt[k] = append(opAt[k], gw)
				if t, ok := arrived[k]; !ok || at.Before(t) {
					arrived[k] = at
				}
			}
			if kind.Str() != "Pod" || trig.Str() != "gen:1" {
				return
			}
			p := pods[uid.Str()]
			if p == nil {
				p = &podSeen{phases: map[string]bool{}}
				pods[uid.Str()] = p
			}
			p.phases[sp.Name()] = true
			if level.Str() == fragment.LevelObject {
				p.trace = sp.TraceID()
			}
		})
	}
	be.mu.Unlock()
	for _, q := range requests {
		r.exported[q.class]++
		if _, ok := opTrace[q.trace]; ok {
			r.joined[q.class]++
			continue
		}
		ns := q.ns
		if strings.HasPrefix(ns, "group-") {
			ns = "group-*"
		}
		where := "no fragment in its trace"
		if root, ok := rootOf[q.trace]; ok {
			where = "trace rooted at " + root
		}
		where += ", " + whenAgainst(q.at, podOps[q.ns+"/"+q.pod])
		r.outside[q.class+" ("+q.status+"), "+ns+", "+where]++
	}
	for uid, want := range ran {
		p := pods[string(uid)]
		var missing []string
		if p == nil {
			missing = append(missing, "every span")
		} else {
			need := []string{fragment.PhasePodStartup, fragment.PhasePodSchedule}
			if want.ready {
				need = append(need, fragment.PhasePodReady)
			}
			for _, ph := range need {
				if !p.phases[ph] {
					missing = append(missing, ph)
				}
			}
			if k, ok := opTrace[p.trace]; !ok {
				missing = append(missing, "an operation's trace")
			} else if p.phases[fragment.PhasePodStartup] {
				podsIn[k]++
			}
		}
		if len(missing) == 0 {
			r.completePods++
		} else if len(r.problems) < 20 {
			r.problems = append(r.problems, fmt.Sprintf("pod %s/%s (%s): no %s", want.ns, want.name, uid, strings.Join(missing, ", ")))
		}
	}
	// where each namespace's pods went, for an operation short of its pods
	wentTo := map[string]map[string]int{}
	for uid, want := range ran {
		if p := pods[string(uid)]; p != nil {
			k, ok := opTrace[p.trace]
			where := "a trace of its own"
			if ok {
				where = objects[k.uid] + " " + k.trigger
			}
			if wentTo[want.ns] == nil {
				wentTo[want.ns] = map[string]int{}
			}
			wentTo[want.ns][where]++
		}
	}
	for _, op := range ops {
		k := opKey{string(op.uid), op.trigger}
		at := opAt[k]
		switch {
		case len(at) != 1:
			r.problems = append(r.problems, fmt.Sprintf("%s: root span at %d gateways %v", op, len(at), at))
		case podsIn[k] < op.pods:
			r.problems = append(r.problems, fmt.Sprintf("%s: %d of its %d pods in its trace; the pods of %s went to %v", op, podsIn[k], op.pods, op.ns, wentTo[op.ns]))
		default:
			r.wholeOps++
		}
		if t, ok := arrived[k]; ok {
			r.freshness = append(r.freshness, t.Sub(op.converged))
		}
	}
	return r
}

func quantile(ds []time.Duration, q float64) time.Duration {
	if len(ds) == 0 {
		return 0
	}
	s := slices.Clone(ds)
	slices.Sort(s)
	return s[min(len(s)-1, int(q*float64(len(s))))].Round(time.Millisecond)
}

// cpuSeconds is each install process's CPU time so far, its children's
// included (utime, stime, cutime, cstime of /proc/PID/stat).
func cpuSeconds(runner *podrunner.Runner) map[string]float64 {
	out := map[string]float64{}
	for _, p := range runner.Pods() {
		b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", p.PID))
		if err != nil {
			continue
		}
		f := strings.Fields(string(b[bytes.LastIndexByte(b, ')')+2:]))
		var ticks float64
		for _, i := range []int{11, 12, 13, 14} { // fields 14-17, after pid and comm
			v, _ := strconv.ParseFloat(f[i], 64)
			ticks += v
		}
		out[p.Name] = ticks / 100 // USER_HZ
	}
	return out
}

// counter sums a counter of a collector pod's own telemetry over its labels.
func counter(runner *podrunner.Runner, p *podrunner.Pod, name string) float64 {
	var sum float64
	for _, v := range metricValues(runner, p, name) {
		sum += v
	}
	return sum
}

func leaseHolder(t *testing.T, cluster *localcluster.Cluster, runner *podrunner.Runner) *podrunner.Pod {
	l, err := cluster.Client.CoordinationV1().Leases("kubestitch").Get(t.Context(), "kubestitch-k8swatch", metav1.GetOptions{})
	require.NoError(t, err)
	for _, p := range runner.Pods() {
		if p.Name == ptr.Deref(l.Spec.HolderIdentity, "") {
			return p
		}
	}
	t.Fatalf("the Lease holder %q runs here", ptr.Deref(l.Spec.HolderIdentity, ""))
	return nil
}

// heaps is each process's Go heap in use (the collector's own
// otelcol_process_runtime_heap_alloc_bytes).
func heaps(runner *podrunner.Runner) map[string]float64 {
	out := map[string]float64{}
	for _, p := range runner.Pods() {
		if heap, ok := gauge(runner, p, "otelcol_process_runtime_heap_alloc_bytes"); ok {
			out[p.Name] = heap
		}
	}
	return out
}

// logHeap logs each process's heap now, and its growth since before the
// workload per 1,000 pods alive.
func logHeap(t *testing.T, runner *podrunner.Runner, before map[string]float64, alive int) {
	var lines []string
	for _, p := range runner.Pods() {
		heap, ok := gauge(runner, p, "otelcol_process_runtime_heap_alloc_bytes")
		if !ok {
			continue
		}
		grew := heap - before[p.Name]
		lines = append(lines, fmt.Sprintf("%s/%s: heap %.1f MiB, %+.1f MiB since before the workload, %+.2f MiB per 1,000 pods alive",
			p.Namespace, p.Name, heap/(1<<20), grew/(1<<20), grew/(1<<20)*1000/float64(max(alive, 1))))
	}
	sort.Strings(lines)
	t.Logf("heap with %d pods alive (a heap gauge is a moment: garbage not yet collected counts):\n  %s", alive, strings.Join(lines, "\n  "))
}
