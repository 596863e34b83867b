package e2e

import (
	"bytes"
	"fmt"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/resource"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/utils/ptr"

	"github.com/kubestitch/kubestitch/internal/fragment"
	"github.com/kubestitch/kubestitch/internal/waterfall"
	"github.com/kubestitch/kubestitch/localcluster"
	"github.com/kubestitch/kubestitch/localcluster/criruntime"
	"github.com/kubestitch/kubestitch/test/harness"
)

// stuckDeadline is the progressDeadlineSeconds of the stuck Deployments:
// each ends there, as ProgressDeadlineExceeded, and its root span names
// the first cause.
const stuckDeadline = 20

// maxBlockedLatency bounds the time from a Warning to its blocked-step
// span in the gateway's output: k8sstitch's wait (3 s), the batches
// (1 s) and the file exporter's flush, with room for a loaded machine.
// Far below operation_timeout (10 min, the only way a stuck operation
// showed before).
const maxBlockedLatency = 15 * time.Second

// stuckCase is one way a rollout cannot progress.
type stuckCase struct {
	name, namespace string
	// step is the span the Warning blocks; reasons the Warnings that may
	// come first; message a part of the Event's message.
	step    string
	reasons []string
	message string
	// prepare changes the namespace or the Deployment.
	prepare func(t *testing.T, e *harness.Env, d *appsv1.Deployment)
}

// TestStuckRolloutsSayWhy: for each case, a Deployment that cannot
// progress. Within seconds of the first Warning, the rollout's trace holds
// an error span on the blocked step with the Warning's reason and message;
// at the progress deadline the rollout's root ends as an error naming
// ProgressDeadlineExceeded and the first cause.
func TestStuckRolloutsSayWhy(t *testing.T) {
	e := harness.StartEnv(t, harness.EnvOptions{Nodes: 3})
	runStuck(t, e, []stuckCase{
		{
			name: "unschedulable pod", namespace: "stuck-schedule",
			step: fragment.PhasePodSchedule, reasons: []string{"FailedScheduling"}, message: "0/3 nodes are available",
			prepare: func(t *testing.T, e *harness.Env, d *appsv1.Deployment) {
				d.Spec.Template.Spec.NodeSelector = map[string]string{"kubestitch.io/pool": "none"}
			},
		},
		{
			name: "creates refused by a ResourceQuota", namespace: "stuck-quota",
			step: fragment.PhaseReplicaSetScale, reasons: []string{"FailedCreate"}, message: "exceeded quota",
			prepare: func(t *testing.T, e *harness.Env, d *appsv1.Deployment) {
				q := &corev1.ResourceQuota{
					ObjectMeta: metav1.ObjectMeta{Name: "no-pods", Namespace: d.Namespace},
					Spec:       corev1.ResourceQuotaSpec{Hard: corev1.ResourceList{corev1.ResourcePods: resource.MustParse("0")}},
				}
				_, err := e.Cluster.Client.CoreV1().ResourceQuotas(d.Namespace).Create(t.Context(), q, metav1.CreateOptions{})
				require.NoError(t, err)
				// The quota controller must have counted before the
				// first create, or the admission refuses nothing.
				e.WaitFor(t, "quota status", 30*time.Second, func() (bool, string) {
					got, err := e.Cluster.Client.CoreV1().ResourceQuotas(d.Namespace).Get(t.Context(), q.Name, metav1.GetOptions{})
					return err == nil && got.Status.Hard != nil, fmt.Sprint(err)
				})
			},
		},
	})
}

// TestStuckOnTheRealKubelet: the cases only a node's runtime makes: an
// image whose pull fails, a container that exits non-zero.
func TestStuckOnTheRealKubelet(t *testing.T) {
	faults := criruntime.Faults{
		PullFails: []string{"registry.example/missing:1"},
		// Exits at once: a container that dies at start-up never makes
		// its pod Ready (one that ran long enough to be Ready would have
		// completed the rollout: its crash loop is no rollout's step).
		Exits: []string{"registry.example/crash:1"},
	}
	e := harness.StartEnv(t, harness.EnvOptions{Kubelet: true, KubeletFaults: faults})
	onKubelet := func(image string) func(*testing.T, *harness.Env, *appsv1.Deployment) {
		return func(t *testing.T, e *harness.Env, d *appsv1.Deployment) {
			d.Spec.Template.Spec.NodeSelector = map[string]string{"kubernetes.io/hostname": e.Cluster.KubeletNode}
			d.Spec.Template.Spec.Containers[0].Image = image
		}
	}
	runStuck(t, e, []stuckCase{
		{
			name: "image pull failure", namespace: "stuck-pull",
			step: fragment.PhaseImagePull, reasons: []string{"Failed", "BackOff"}, message: "registry.example/missing:1",
			prepare: onKubelet("registry.example/missing:1"),
		},
		{
			name: "crash loop", namespace: "stuck-crash",
			step: fragment.PhaseContainerStart, reasons: []string{"BackOff"}, message: "Back-off restarting failed container",
			prepare: onKubelet("registry.example/crash:1"),
		},
	})
}

func runStuck(t *testing.T, e *harness.Env, cases []stuckCase) {
	ctx := t.Context()
	c := e.Cluster.Client
	// All cases at once: each has its namespace and Deployment.
	for _, sc := range cases {
		_, err := c.CoreV1().Namespaces().Create(ctx, &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: sc.namespace}}, metav1.CreateOptions{})
		require.NoError(t, err)
		d := localcluster.DemoDeployment("web", 1)
		d.Namespace = sc.namespace
		d.Spec.ProgressDeadlineSeconds = ptr.To(int32(stuckDeadline))
		sc.prepare(t, e, d)
		_, err = c.AppsV1().Deployments(sc.namespace).Create(ctx, d, metav1.CreateOptions{})
		require.NoError(t, err)
	}
	// One watcher of the gateway's output for all cases, from the start:
	// when each case's first blocked-step span left the gateway.
	seen := newFirstSeen(t, e, cases)
	for _, sc := range cases {
		t.Run(sc.name, func(t *testing.T) {
			deployment := "Deployment " + sc.namespace + "/web"
			var blocked *waterfall.Node
			var blockedTrace *waterfall.Trace
			var at time.Time
			e.WaitFor(t, sc.name+": a blocked-step span", 90*time.Second, func() (bool, string) {
				blocked, blockedTrace, at = seen.get(sc.namespace)
				return blocked != nil, "none yet"
			})
			reason, _ := blocked.Attributes.Get(fragment.KeyEventReason)
			assert.Equal(t, fragment.Blocked(sc.step), blocked.Name, "the Warning blocks this step")
			assert.Contains(t, sc.reasons, reason.Str())
			assert.True(t, blocked.Error, "a backend shows the blocked step as an error")
			assert.Contains(t, blocked.Status, sc.message, "the status carries the Warning's message")
			assert.Contains(t, objectsOfTrace(blockedTrace), deployment, "the blocked step is in the rollout's trace, while the rollout is stuck")
			warned := firstWarning(t, e, sc.namespace, reason.Str())
			latency := at.Sub(warned)
			t.Logf("%s: %s %s (error: %s); Warning at %s, span out of the gateway %s later",
				sc.name, blocked.Name, blocked.Object, blocked.Status, warned.Format(time.RFC3339Nano), latency.Round(time.Millisecond))
			assert.Less(t, latency, maxBlockedLatency, "the cause shows within seconds of the Warning")

			// At the deadline the rollout ends; its root names the first
			// cause.
			tr, _ := e.WaitTrace(t, time.Duration(stuckDeadline)*time.Second+traceTimeout, byRoot(fragment.PhaseDeploymentRollout, deployment, "gen:1"), func(tr *waterfall.Trace) bool {
				return tr.Root.Error
			})
			rootSeen := time.Now()
			assert.Equal(t, blockedTrace.ID, tr.ID, "one trace: the blocked step and the rollout's end")
			assert.Contains(t, tr.Root.Status, "ProgressDeadlineExceeded")
			cause, _ := tr.Root.Attributes.Get(fragment.KeyCause)
			assert.True(t, strings.HasPrefix(cause.Str(), reason.Str()), "the root names the first cause: %q", cause.Str())
			assert.Empty(t, tr.Orphans, "whole at the deadline: the operations below the rollout end with it")
			deadlineAt := progressDeadlineAt(t, e, sc.namespace)
			t.Logf("%s: ProgressDeadlineExceeded at %s (whole seconds), root span out %s later; cause %q",
				sc.name, deadlineAt.Format(time.RFC3339), rootSeen.Sub(deadlineAt).Round(time.Millisecond), cause.Str())
			assert.Less(t, rootSeen.Sub(deadlineAt), maxBlockedLatency+time.Second, "the deadline shows within seconds of the condition")
			var b bytes.Buffer
			waterfall.Render(&b, tr, waterfall.Options{Collapse: waterfall.CollapseAPIRequests})
			t.Logf("the stuck rollout:\n%s", b.String())
		})
	}
}

// firstSeen polls the gateway's output and keeps, per case namespace, the
// first blocked-step span of one of the case's reasons, its trace and when
// the poll saw it.
type firstSeen struct {
	mu    sync.Mutex
	spans map[string]*waterfall.Node
	trs   map[string]*waterfall.Trace
	at    map[string]time.Time
}

func newFirstSeen(t *testing.T, e *harness.Env, cases []stuckCase) *firstSeen {
	f := &firstSeen{spans: map[string]*waterfall.Node{}, trs: map[string]*waterfall.Trace{}, at: map[string]time.Time{}}
	done := make(chan struct{})
	stopped := make(chan struct{})
	t.Cleanup(func() { close(done); <-stopped })
	go func() {
		defer close(stopped)
		tick := time.NewTicker(250 * time.Millisecond)
		defer tick.Stop()
		for {
			select {
			case <-done:
				return
			case <-tick.C:
			}
			td, err := waterfall.ReadTraces(e.Gateway.TracesFile)
			if err != nil {
				continue
			}
			now := time.Now()
			for _, tr := range waterfall.Build(td) {
				for _, s := range tr.Spans {
					if s.Level() != fragment.LevelBlocked {
						continue
					}
					reason, _ := s.Attributes.Get(fragment.KeyEventReason)
					for _, sc := range cases {
						if strings.HasPrefix(objectNamespace(s), sc.namespace+"/") && slices.Contains(sc.reasons, reason.Str()) {
							f.mu.Lock()
							if f.spans[sc.namespace] == nil {
								f.spans[sc.namespace], f.trs[sc.namespace], f.at[sc.namespace] = s, tr, now
							}
							f.mu.Unlock()
						}
					}
				}
			}
		}
	}()
	return f
}

func (f *firstSeen) get(ns string) (*waterfall.Node, *waterfall.Trace, time.Time) {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.spans[ns], f.trs[ns], f.at[ns]
}

func objectNamespace(s *waterfall.Node) string {
	if _, rest, ok := strings.Cut(s.Object, " "); ok {
		return rest
	}
	return ""
}

func objectsOfTrace(tr *waterfall.Trace) []string {
	var out []string
	for _, s := range tr.Spans {
		if s.Object != "" {
			out = append(out, s.Object)
		}
	}
	return out
}

// firstWarning is the time of the namespace's first Warning of reason, as
// the API has it.
func firstWarning(t *testing.T, e *harness.Env, namespace, reason string) time.Time {
	evs, err := e.Cluster.Client.EventsV1().Events(namespace).List(t.Context(), metav1.ListOptions{})
	require.NoError(t, err)
	var first time.Time
	for _, ev := range evs.Items {
		if ev.Type != corev1.EventTypeWarning || ev.Reason != reason {
			continue
		}
		at := ev.EventTime.Time
		if at.IsZero() {
			at = ev.DeprecatedFirstTimestamp.Time
		}
		if first.IsZero() || at.Before(first) {
			first = at
		}
	}
	require.False(t, first.IsZero(), "a %s Warning in %s", reason, namespace)
	return first
}

func progressDeadlineAt(t *testing.T, e *harness.Env, namespace string) time.Time {
	d, err := e.Cluster.Client.AppsV1().Deployments(namespace).Get(t.Context(), "web", metav1.GetOptions{})
	require.NoError(t, err)
	for _, c := range d.Status.Conditions {
		if c.Type == appsv1.DeploymentProgressing && c.Reason == "ProgressDeadlineExceeded" {
			return c.LastUpdateTime.Time
		}
	}
	t.Fatalf("no ProgressDeadlineExceeded on %s/web: %+v", namespace, d.Status.Conditions)
	return time.Time{}
}
