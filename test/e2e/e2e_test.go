// Package e2e runs the built otelcol-kubestitch binary, as an agent and a
// gateway process configured in YAML, against the real local control plane
// and checks the operation traces a user would look at.
package e2e

import (
	"bytes"
	"flag"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	batchv1 "k8s.io/api/batch/v1"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/utils/ptr"

	"github.com/kubestitch/kubestitch/internal/fragment"
	"github.com/kubestitch/kubestitch/internal/waterfall"
	"github.com/kubestitch/kubestitch/localcluster"
	"github.com/kubestitch/kubestitch/test/harness"
	"github.com/kubestitch/kubestitch/test/tracecheck"
)

var update = flag.Bool("update", false, "rewrite golden waterfalls (review the diff by hand)")

const traceTimeout = 60 * time.Second

var (
	expectPodServices = []string{"apiserver", "kube-controller-manager", "kube-scheduler", "kwok"}
	jobServices       = []string{"apiserver", "kube-controller-manager", "kube-scheduler"}
	deleteServices    = []string{"apiserver", "kube-controller-manager"}
	podServices       = []string{"apiserver", "kube-scheduler", "kwok"}
)

func check(t *testing.T, tr *waterfall.Trace, root string, services []string) {
	t.Helper()
	problems := tracecheck.Check(tr, tracecheck.Expect{Root: root, Services: services, ClockTolerance: time.Second})
	if len(problems) > 0 {
		var b bytes.Buffer
		waterfall.Render(&b, tr, waterfall.Options{Collapse: waterfall.CollapseAPIRequests})
		t.Errorf("trace problems: %v\n%s", problems, b.String())
	}
}

// golden compares the operation's skeleton (fragments, names masked,
// identical siblings merged with their count) with a reviewed file.
// maskCounts is for operations whose number of steps depends on timing.
func golden(t *testing.T, name string, tr *waterfall.Trace, maskCounts bool) {
	t.Helper()
	var b bytes.Buffer
	// The skeleton is the operation's steps; the SLI spans are
	// measurements, checked against an independent watcher by
	// TestPodStartupSLIAgreesWithAnIndependentWatcher (and they may come
	// a few seconds after the last step: sli.go).
	waterfall.Render(&b, tr, waterfall.Options{MaskDurations: true, MaskNames: true, FragmentsOnly: true, MergeSiblings: true, MaskCounts: maskCounts, NoSLI: true})
	path := filepath.Join("testdata", name+".txt")
	if *update {
		require.NoError(t, os.WriteFile(path, b.Bytes(), 0o644))
	}
	want, err := os.ReadFile(path)
	require.NoError(t, err)
	if !assert.Equal(t, string(want), b.String(), "skeleton differs from the reviewed %s", path) {
		var full bytes.Buffer
		waterfall.Render(&full, tr, waterfall.Options{Collapse: waterfall.CollapseAPIRequests})
		t.Logf("the whole trace:\n%s", full.String())
	}
}

// onFailureListSpans logs, when t fails, where every span that match
// accepts went in the gateway's output: its trace, root and parent.
func onFailureListSpans(t *testing.T, e *harness.Env, match func(*waterfall.Node) bool) {
	t.Cleanup(func() {
		if !t.Failed() {
			return
		}
		td, err := waterfall.ReadTraces(e.Gateway.TracesFile)
		if err != nil {
			return
		}
		for _, tr := range waterfall.Build(td) {
			for _, s := range tr.Spans {
				if !match(s) {
					continue
				}
				root, parent := "-", "-"
				if tr.Root != nil {
					root = tr.Root.Name + " " + tr.Root.Object
				}
				if s.Parent != nil {
					parent = s.Parent.Name
				}
				t.Logf("%s %s (%s, %d children): trace %s, root %s, parent %s, %d orphans", s.Name, s.Object, s.End.Sub(s.Start), len(s.Children), tr.ID, root, parent, len(tr.Orphans))
			}
		}
		t.Logf("gateway log tail:\n%s", localcluster.LogTail(e.Gateway.Log, 40))
	})
}

func podsUnder(tr *waterfall.Trace) int { return tracecheck.Count(tr, fragment.PhasePodStartup) }

// complete: every pod.startup has its three steps and the root ended.
func complete(pods int) func(*waterfall.Trace) bool {
	return func(tr *waterfall.Trace) bool {
		return podsUnder(tr) == pods && tracecheck.Count(tr, fragment.PhasePodReady) == pods &&
			tracecheck.Count(tr, fragment.PhasePodSchedule) == pods && len(tr.Orphans) == 0 && len(tr.Roots) == 1
	}
}

// whole: cond holds and the shared checker finds nothing wrong; apiserver
// spans arrive up to 5 s after the fragments, so tests wait for both.
func whole(root string, services []string, cond func(*waterfall.Trace) bool) func(*waterfall.Trace) bool {
	return func(tr *waterfall.Trace) bool {
		return cond(tr) && len(tracecheck.Check(tr, tracecheck.Expect{Root: root, Services: services, ClockTolerance: time.Second})) == 0
	}
}

func byRoot(root, object, trigger string) func([]*waterfall.Trace) *waterfall.Trace {
	return func(all []*waterfall.Trace) *waterfall.Trace { return tracecheck.Find(all, root, object, trigger) }
}

// TestOperations walks a Deployment through its life, then a Job and a bare
// Pod, with an agent and a gateway process.
func TestOperations(t *testing.T) {
	e := harness.StartEnv(t, harness.EnvOptions{Agent: true})
	c := e.Cluster.Client
	ctx := t.Context()
	deps := c.AppsV1().Deployments("default")

	t.Run("1 deployment create, 5 replicas", func(t *testing.T) {
		_, err := deps.Create(ctx, localcluster.DemoDeployment("web", 5), metav1.CreateOptions{})
		require.NoError(t, err)
		tr, _ := e.WaitTrace(t, traceTimeout, byRoot(fragment.PhaseDeploymentRollout, "Deployment default/web", "gen:1"), whole(fragment.PhaseDeploymentRollout, expectPodServices, func(tr *waterfall.Trace) bool {
			return complete(5)(tr) && hasAPIRequest(tr, "POST /apis/apps/v1/namespaces/{:namespace}/deployments", fragment.PhaseDeploymentRollout)
		}))
		check(t, tr, fragment.PhaseDeploymentRollout, expectPodServices)
		assert.Equal(t, 1, tracecheck.Count(tr, fragment.PhaseReplicaSetScale))
		for _, s := range tr.Spans {
			if s.Name == "POST /api/v1/namespaces/{:namespace}/pods/{:name}/binding" {
				assert.Equal(t, fragment.PhasePodSchedule, s.Parent.Name, "binding under pod.schedule")
			}
			if s.Name == "PATCH /api/v1/namespaces/{:namespace}/pods/{:name}/status" {
				assert.Equal(t, fragment.PhasePodStartup, unwrap(s.Parent).Name, "status writes under the pod")
			}
		}
		golden(t, "1_deployment_create", tr, false)
	})

	t.Run("2 image update", func(t *testing.T) {
		patch := `{"spec":{"template":{"spec":{"containers":[{"name":"app","image":"registry.example/web:2"}]}}}}`
		_, err := deps.Patch(ctx, "web", types.StrategicMergePatchType, []byte(patch), metav1.PatchOptions{})
		require.NoError(t, err)
		tr, all := e.WaitTrace(t, traceTimeout, byRoot(fragment.PhaseDeploymentRollout, "Deployment default/web", "gen:2"), whole(fragment.PhaseDeploymentRollout, expectPodServices, func(tr *waterfall.Trace) bool {
			return complete(5)(tr) && tracecheck.Count(tr, fragment.PhaseDelete) >= 5
		}))
		check(t, tr, fragment.PhaseDeploymentRollout, expectPodServices)
		assert.Len(t, objectsOf(tr, fragment.PhaseReplicaSetScale), 2, "the new ReplicaSet's scale-up and the old one's scale-down (in steps)")
		assert.Equal(t, 5, tracecheck.Count(tr, fragment.PhaseDelete), "the old pods' deletions")
		first := tracecheck.Find(all, fragment.PhaseDeploymentRollout, "Deployment default/web", "gen:1")
		require.NotNil(t, first)
		assert.NotEqual(t, first.ID, tr.ID, "a new trace")
		golden(t, "2_image_update", tr, true)
	})

	t.Run("3 scale 5 to 8", func(t *testing.T) {
		_, err := deps.Patch(ctx, "web", types.MergePatchType, []byte(`{"spec":{"replicas":8}}`), metav1.PatchOptions{})
		require.NoError(t, err)
		tr, _ := e.WaitTrace(t, traceTimeout, byRoot(fragment.PhaseDeploymentRollout, "Deployment default/web", "gen:3"), whole(fragment.PhaseDeploymentRollout, expectPodServices, complete(3)))
		check(t, tr, fragment.PhaseDeploymentRollout, expectPodServices)
		assert.Equal(t, 3, podsUnder(tr), "only the 3 new pods")
		golden(t, "3_scale", tr, false)
	})

	t.Run("4 job with 3 completions", func(t *testing.T) {
		job := &batchv1.Job{
			ObjectMeta: metav1.ObjectMeta{Name: "batch", Namespace: "default"},
			Spec: batchv1.JobSpec{
				Completions: ptr.To(int32(3)), Parallelism: ptr.To(int32(3)),
				Template: corev1.PodTemplateSpec{Spec: corev1.PodSpec{
					RestartPolicy: corev1.RestartPolicyNever,
					Containers:    []corev1.Container{{Name: "work", Image: "registry.example/work:1"}},
				}},
			},
		}
		_, err := c.BatchV1().Jobs("default").Create(ctx, job, metav1.CreateOptions{})
		require.NoError(t, err)
		tr, _ := e.WaitTrace(t, traceTimeout, byRoot(fragment.PhaseJobRun, "Job default/batch", "gen:1"), whole(fragment.PhaseJobRun, jobServices, func(tr *waterfall.Trace) bool {
			return podsUnder(tr) == 3 && tr.Root != nil && tr.Root.Name == fragment.PhaseJobRun
		}))
		check(t, tr, fragment.PhaseJobRun, jobServices)
		conv, _ := tr.Root.Attributes.Get(fragment.KeyConverged)
		assert.True(t, conv.Bool(), "job.run ends at Complete")
		golden(t, "4_job", tr, false)
	})

	t.Run("5 foreground deletion", func(t *testing.T) {
		require.NoError(t, deps.Delete(ctx, "web", metav1.DeleteOptions{PropagationPolicy: ptr.To(metav1.DeletePropagationForeground)}))
		tr, _ := e.WaitTrace(t, traceTimeout, byRoot(fragment.PhaseDelete, "Deployment default/web", fragment.TriggerDelete), whole(fragment.PhaseDelete, deleteServices, func(tr *waterfall.Trace) bool {
			// 8 pods and 2 ReplicaSets, each deleted, under the Deployment's.
			return tracecheck.Count(tr, fragment.PhaseDelete) == 1+2+8
		}))
		check(t, tr, fragment.PhaseDelete, deleteServices)
		golden(t, "5_foreground_delete", tr, false)
	})

	t.Run("6 bare pod", func(t *testing.T) {
		pod := &corev1.Pod{
			ObjectMeta: metav1.ObjectMeta{Name: "solo", Namespace: "default"},
			Spec:       corev1.PodSpec{Containers: []corev1.Container{{Name: "app", Image: "registry.example/solo:1"}}},
		}
		_, err := c.CoreV1().Pods("default").Create(ctx, pod, metav1.CreateOptions{})
		require.NoError(t, err)
		tr, _ := e.WaitTrace(t, traceTimeout, byRoot(fragment.PhasePodStartup, "Pod default/solo", "gen:1"), whole(fragment.PhasePodStartup, podServices, func(tr *waterfall.Trace) bool {
			return complete(1)(tr) && hasAPIRequest(tr, "POST /api/v1/namespaces/{:namespace}/pods", fragment.PhasePodStartup)
		}))
		check(t, tr, fragment.PhasePodStartup, podServices)
		assert.True(t, hasAPIRequest(tr, "POST /api/v1/namespaces/{:namespace}/pods", fragment.PhasePodStartup), "the create request is the pod's first child")
		golden(t, "6_bare_pod", tr, false)
	})
}

// unwrap skips kube-apiserver's authentication span, which wraps some
// requests.
func unwrap(n *waterfall.Node) *waterfall.Node {
	if n.Name == "authentication" && n.Parent != nil {
		return n.Parent
	}
	return n
}

func objectsOf(tr *waterfall.Trace, name string) map[string]bool {
	out := map[string]bool{}
	for _, s := range tr.Spans {
		if s.Name == name {
			out[s.Object] = true
		}
	}
	return out
}

// hasAPIRequest: a kube-apiserver request span of that name hangs (maybe
// through its authentication wrapper) under a span named parent.
func hasAPIRequest(tr *waterfall.Trace, name, parent string) bool {
	for _, s := range tr.Spans {
		if s.Name != name || s.Parent == nil {
			continue
		}
		if unwrap(s.Parent).Name == parent {
			return true
		}
	}
	return false
}
