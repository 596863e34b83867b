package deploy

import (
	"context"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
	batchv1 "k8s.io/api/batch/v1"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/client-go/informers"
	"k8s.io/client-go/tools/cache"
	"k8s.io/utils/ptr"

	"github.com/kubestitch/kubestitch/localcluster"
)

// The scale workload's pieces, shared by TestScaleOnTheInstall and
// TestGatewayMemoryGrowth: namespaces, Deployments and Jobs driven to
// convergence, and a watch of every workload pod that ran.

// scaleOp is one operation the test started and waits to see whole.
type scaleOp struct {
	kind, ns, name, trigger string
	uid                     types.UID
	// pods the operation started: each must be in its trace.
	pods int
	// converged: when the test saw the object's status say done.
	converged time.Time
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
