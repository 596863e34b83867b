package k8swatchreceiver

import (
	"context"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"runtime"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
	"go.opentelemetry.io/collector/component/componenttest"
	"go.opentelemetry.io/collector/consumer/consumertest"
	"go.opentelemetry.io/collector/pdata/ptrace"
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
// converged, as one process that watches everything holds it. Every
// object goes the informer's way: the transform, into a cache.Store as
// the informer's indexer holds it, the handler's take of its view into
// the tracker, whose fragments go, signed, through the processor's
// ConsumeTraces as in the gateway. Retained heap per pod (B/pod), and its
// shares, found by letting each go in turn:
//   - tracker: k8swatch's per-object state;
//   - cache: the informer caches (pods, ReplicaSets, Deployments), with
//     the object names and UIDs the tracker shared with them;
//   - graph: k8sstitch's owner graph, learned from the fragments.
//
// KUBESTITCH_BENCH_PODS sets another count.
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

		transform := newTransform(nil, "")
		store := cache.NewStore(cache.MetaNamespaceKeyFunc)
		tr := newTracker()
		var frags []fragmentSpan
		// observe is the informer and its handler for one watch event.
		observe := func(obj any, at time.Time) {
			t, err := transform(obj)
			require.NoError(b, err)
			require.NoError(b, store.Update(t))
			ob := t.(*cachedObject).take()
			v, bad := ob.view, ob.bad
			require.Empty(b, bad)
			frags = append(frags, tr.observe(*v, at, false)...)
		}
		spans := 0
		at := t0
		for d := range deployments {
			at = at.Add(time.Millisecond)
			ns := fmt.Sprintf("team-%d", d%100)
			dep, rs := benchWorkload(ns, d)
			frags = frags[:0]
			observe(dep.DeepCopy(), at)
			observe(rs.DeepCopy(), at)
			for i := range perDeployment {
				p := &corev1.Pod{}
				require.NoError(b, json.Unmarshal(podJSON, p))
				// Each string its own, as a decoded watch event has it.
				p.Namespace, p.Name = strings.Clone(ns), fmt.Sprintf("web-%d-7c9cb467c4-%05d", d, i)
				p.UID = types.UID(fmt.Sprintf("00000000-0000-4000-8000-%06x%06x", d, i)) // as long as a real UID
				p.OwnerReferences[0].UID, p.OwnerReferences[0].Name = types.UID(strings.Clone(string(rs.UID))), strings.Clone(rs.Name)
				observe(p, at)
			}
			observe(convergedReplicaSet(rs), at.Add(time.Second))
			observe(convergedDeployment(dep), at.Add(time.Second))
			td := toTraces(frags, "bench")
			signAll(td, key)
			spans += td.SpanCount()
			// Through OTLP's encoding, as the gateway receives them.
			raw, err := (&ptrace.ProtoMarshaler{}).MarshalTraces(td)
			require.NoError(b, err)
			td, err = (&ptrace.ProtoUnmarshaler{}).UnmarshalTraces(raw)
			require.NoError(b, err)
			require.NoError(b, proc.ConsumeTraces(context.Background(), td))
		}
		frags = nil
		afterAll := heap()
		tracked := tr.tracked()
		require.Equal(b, pods+2*deployments, tracked, "every object tracked")
		require.Len(b, store.ListKeys(), pods+2*deployments, "every object cached")
		tr = nil
		afterTracker := heap()
		runtime.KeepAlive(store) // until here: the tracker goes first
		store = nil
		afterCache := heap()

		perPod := func(a, z uint64) float64 { return float64(int64(z)-int64(a)) / float64(pods) }
		b.ReportMetric(perPod(afterTracker, afterAll), "B/pod-tracker")
		b.ReportMetric(perPod(afterCache, afterTracker), "B/pod-cache")
		b.ReportMetric(perPod(base, afterCache), "B/pod-graph")
		b.ReportMetric(perPod(base, afterAll), "B/pod")
		b.ReportMetric(float64(spans)/float64(pods), "fragments/pod")
		require.NoError(b, proc.Shutdown(context.Background()))
	}
}

// benchWorkload is the d-th Deployment of a namespace and its ReplicaSet,
// as the API has them (managedFields, labels, a pod template).
func benchWorkload(ns string, d int) (*appsv1.Deployment, *appsv1.ReplicaSet) {
	tmpl := realisticPod("template")
	labels := map[string]string{"app": fmt.Sprintf("web-%d", d)}
	dep := &appsv1.Deployment{
		ObjectMeta: metav1.ObjectMeta{Name: fmt.Sprintf("web-%d", d), Namespace: ns, UID: types.UID(fmt.Sprintf("00000000-0000-4000-a000-%012x", d)), Generation: 1, ResourceVersion: "1",
			CreationTimestamp: metav1.NewTime(t0), Labels: labels, ManagedFields: tmpl.ManagedFields[:1]},
		Spec: appsv1.DeploymentSpec{Replicas: ptr.To(int32(100)), Selector: &metav1.LabelSelector{MatchLabels: labels},
			Template: corev1.PodTemplateSpec{ObjectMeta: metav1.ObjectMeta{Labels: labels}, Spec: tmpl.Spec}},
	}
	rs := &appsv1.ReplicaSet{
		ObjectMeta: metav1.ObjectMeta{Name: fmt.Sprintf("web-%d-7c9cb467c4", d), Namespace: ns, UID: types.UID(fmt.Sprintf("00000000-0000-4000-9000-%012x", d)), Generation: 1, ResourceVersion: "1",
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
