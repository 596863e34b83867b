package k8swatchreceiver

import (
	"context"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"runtime"
	"strconv"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
	"go.opentelemetry.io/collector/component/componenttest"
	"go.opentelemetry.io/collector/consumer/consumertest"
	"go.opentelemetry.io/collector/processor/processortest"
	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/client-go/tools/cache"
	"k8s.io/utils/ptr"

	"github.com/kubestitch/kubestitch/internal/fragment"
	"github.com/kubestitch/kubestitch/processor/k8sstitchprocessor"
)

// BenchmarkGatewayMemory150kPods: the heap a gateway keeps for a cluster
// of 150,000 pods (1,500 Deployments of 100), after every rollout
// converged, as one process that watches everything holds it:
//   - cache: the informer caches (pods, ReplicaSets, Deployments) after
//     the transform, in a cache.Store as the informer's indexer holds them;
//   - tracker: k8swatch's per-object state;
//   - graph: k8sstitch's owner graph, learned from every fragment the
//     tracker emitted (signed, through ConsumeTraces, as in the gateway).
//
// Each is reported as retained heap per pod (B/pod-*), and the sum
// (B/pod). KUBESTITCH_BENCH_PODS sets another count.
func BenchmarkGatewayMemory150kPods(b *testing.B) {
	pods := 150_000
	if v := os.Getenv("KUBESTITCH_BENCH_PODS"); v != "" {
		var err error
		pods, err = strconv.Atoi(v)
		require.NoError(b, err)
	}
	const perDeployment = 100
	deployments := pods / perDeployment
	keyFile := filepath.Join(b.TempDir(), "key")
	secret := []byte("benchmark-fragment-key-0123456789abcdef")
	require.NoError(b, os.WriteFile(keyFile, secret, 0o600))
	key, err := fragment.NewKey(secret)
	require.NoError(b, err)
	podJSON := lifecycle("x")[3] // a ready pod, as the API has it

	for range b.N {
		heap := func() uint64 {
			runtime.GC()
			runtime.GC()
			var m runtime.MemStats
			runtime.ReadMemStats(&m)
			return m.HeapAlloc
		}
		base := heap()

		// The informer caches.
		transform := newTransform(nil, "")
		store := cache.NewStore(cache.MetaNamespaceKeyFunc)
		add := func(o any) any {
			t, err := transform(o)
			require.NoError(b, err)
			require.NoError(b, store.Add(t))
			return t
		}
		type workload struct {
			dep  *appsv1.Deployment
			rs   *appsv1.ReplicaSet
			pods []*corev1.Pod
		}
		var wls []workload
		for d := range deployments {
			ns := fmt.Sprintf("team-%d", d%100)
			dep, rs := benchWorkload(ns, d)
			w := workload{dep: add(dep).(*appsv1.Deployment), rs: add(rs).(*appsv1.ReplicaSet)}
			for i := range perDeployment {
				p := &corev1.Pod{}
				require.NoError(b, json.Unmarshal(podJSON, p))
				p.Namespace, p.Name = ns, fmt.Sprintf("web-%d-%d", d, i)
				p.UID = types.UID(fmt.Sprintf("pod-%d-%d", d, i))
				p.OwnerReferences[0].UID, p.OwnerReferences[0].Name = rs.UID, rs.Name
				w.pods = append(w.pods, add(p).(*corev1.Pod))
			}
			wls = append(wls, w)
		}
		afterCache := heap()

		// The tracker, seeing every rollout happen (each Deployment and
		// ReplicaSet created, its pods started, then both converged), and
		// the processor's owner graph, learned from the fragments it
		// emitted, signed, through ConsumeTraces as in the gateway. The
		// fragments go on at once; what stays is the tracker and graph.
		f := k8sstitchprocessor.NewFactory()
		cfg := f.CreateDefaultConfig().(*k8sstitchprocessor.Config)
		cfg.FragmentKeyFile = keyFile
		// Room for every object: at the default (100,000) the graph
		// would shed, and measure less than a gateway of this cluster
		// needs.
		cfg.MaxObjects = 2 * pods
		proc, err := f.CreateTraces(context.Background(), processortest.NewNopSettings(f.Type()), cfg, consumertest.NewNop())
		require.NoError(b, err)
		require.NoError(b, proc.Start(context.Background(), componenttest.NewNopHost()))
		tr := newTracker()
		spans := 0
		at := t0
		for _, w := range wls {
			at = at.Add(time.Millisecond)
			var frags []fragmentSpan
			frags = append(frags, tr.observe(viewDeployment(w.dep, nil), at, false)...)
			frags = append(frags, tr.observe(viewReplicaSet(w.rs, nil), at, false)...)
			for _, p := range w.pods {
				frags = append(frags, tr.observe(viewPod(p, nil), at, false)...)
			}
			frags = append(frags, tr.observe(viewReplicaSet(convergedReplicaSet(w.rs), nil), at.Add(time.Second), false)...)
			frags = append(frags, tr.observe(viewDeployment(convergedDeployment(w.dep), nil), at.Add(time.Second), false)...)
			td := toTraces(frags, "bench")
			signAll(td, key)
			spans += td.SpanCount()
			require.NoError(b, proc.ConsumeTraces(context.Background(), td))
		}
		afterAll := heap()
		tracked := tr.tracked()
		tr = nil // the tracker's share: what leaves with it
		afterGraph := heap()

		perPod := func(a, z uint64) float64 { return float64(int64(z)-int64(a)) / float64(pods) }
		b.ReportMetric(perPod(base, afterCache), "B/pod-cache")
		b.ReportMetric(perPod(afterGraph, afterAll), "B/pod-tracker")
		b.ReportMetric(perPod(afterCache, afterGraph), "B/pod-graph")
		b.ReportMetric(perPod(base, afterAll), "B/pod")
		b.ReportMetric(float64(spans)/float64(pods), "fragments/pod")
		require.Equal(b, pods+2*deployments, tracked, "every object tracked")
		runtime.KeepAlive(store)
		require.NoError(b, proc.Shutdown(context.Background()))
	}
}

// benchWorkload is the d-th Deployment of a namespace and its ReplicaSet,
// as the API has them (managedFields, labels, a pod template).
func benchWorkload(ns string, d int) (*appsv1.Deployment, *appsv1.ReplicaSet) {
	tmpl := realisticPod("template")
	labels := map[string]string{"app": fmt.Sprintf("web-%d", d)}
	dep := &appsv1.Deployment{
		ObjectMeta: metav1.ObjectMeta{Name: fmt.Sprintf("web-%d", d), Namespace: ns, UID: types.UID(fmt.Sprintf("dep-%d", d)), Generation: 1, ResourceVersion: "1",
			CreationTimestamp: metav1.NewTime(t0), Labels: labels, ManagedFields: tmpl.ManagedFields[:1]},
		Spec: appsv1.DeploymentSpec{Replicas: ptr.To(int32(100)), Selector: &metav1.LabelSelector{MatchLabels: labels},
			Template: corev1.PodTemplateSpec{ObjectMeta: metav1.ObjectMeta{Labels: labels}, Spec: tmpl.Spec}},
	}
	rs := &appsv1.ReplicaSet{
		ObjectMeta: metav1.ObjectMeta{Name: fmt.Sprintf("web-%d-7c9cb467c4", d), Namespace: ns, UID: types.UID(fmt.Sprintf("rs-%d", d)), Generation: 1, ResourceVersion: "1",
			CreationTimestamp: metav1.NewTime(t0), Labels: labels, ManagedFields: tmpl.ManagedFields[:1],
			OwnerReferences: []metav1.OwnerReference{{APIVersion: "apps/v1", Kind: "Deployment", Name: dep.Name, UID: dep.UID, Controller: ptr.To(true)}}},
		Spec: appsv1.ReplicaSetSpec{Replicas: ptr.To(int32(100)), Template: dep.Spec.Template},
	}
	return dep, rs
}

func convergedReplicaSet(rs *appsv1.ReplicaSet) *appsv1.ReplicaSet {
	rs = rs.DeepCopy()
	rs.ResourceVersion += "x"
	r := *rs.Spec.Replicas
	rs.Status = appsv1.ReplicaSetStatus{ObservedGeneration: rs.Generation, Replicas: r, ReadyReplicas: r, AvailableReplicas: r}
	return rs
}
