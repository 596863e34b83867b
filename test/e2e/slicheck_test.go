package e2e

import (
	"context"
	"sync"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	eventsv1 "k8s.io/api/events/v1"
	"k8s.io/client-go/informers"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/rest"
	"k8s.io/client-go/tools/cache"

	"github.com/kubestitch/kubestitch/internal/fragment"
	"github.com/kubestitch/kubestitch/internal/waterfall"
)

// podPhases are the four phases of clusterloader2's PodStartupLatency.
type podPhases struct {
	create, schedule, run, watch time.Time
}

// transitions computes clusterloader2's transitions from the phases, each
// clamped at zero as a span's duration is.
func (p podPhases) transitions() map[string]time.Duration {
	d := func(a, b time.Time) time.Duration { return max(b.Sub(a), 0) }
	return map[string]time.Duration{
		fragment.SLICreateToSchedule: d(p.create, p.schedule),
		fragment.SLIScheduleToRun:    d(p.schedule, p.run),
		fragment.SLIRunToWatch:       d(p.run, p.watch),
		fragment.SLIScheduleToWatch:  d(p.schedule, p.watch),
		fragment.SLIPodStartup:       d(p.create, p.watch),
	}
}

// cl2Watcher measures pod starts the way clusterloader2's
// PodStartupLatency does, independently of Kubestitch: its own client,
// informers and receive times. create is the pod's creationTimestamp;
// schedule the scheduler's Scheduled Event; run the last container's
// startedAt and watch the moment this informer delivered the pod in phase
// Running, both taken once, at the first such delivery.
type cl2Watcher struct {
	mu     sync.Mutex
	phases map[string]*podPhases
}

func startCL2Watcher(t *testing.T, cfg *rest.Config, namespace string) *cl2Watcher {
	t.Helper()
	cfg = rest.CopyConfig(cfg)
	cfg.QPS, cfg.Burst = 100, 200
	client, err := kubernetes.NewForConfig(cfg)
	if err != nil {
		t.Fatal(err)
	}
	w := &cl2Watcher{phases: map[string]*podPhases{}}
	f := informers.NewSharedInformerFactoryWithOptions(client, 0, informers.WithNamespace(namespace))
	onPod := func(obj any) {
		now := time.Now()
		p, ok := obj.(*corev1.Pod)
		if !ok || p.Status.Phase != corev1.PodRunning {
			return
		}
		w.mu.Lock()
		defer w.mu.Unlock()
		ph := w.get(string(p.UID))
		if !ph.watch.IsZero() {
			return
		}
		ph.create, ph.watch = p.CreationTimestamp.Time, now
		for _, cs := range p.Status.ContainerStatuses {
			if cs.State.Running != nil && cs.State.Running.StartedAt.After(ph.run) {
				ph.run = cs.State.Running.StartedAt.Time
			}
		}
	}
	_, _ = f.Core().V1().Pods().Informer().AddEventHandler(cache.ResourceEventHandlerFuncs{
		AddFunc: onPod, UpdateFunc: func(_, obj any) { onPod(obj) },
	})
	onEvent := func(obj any) {
		e, ok := obj.(*eventsv1.Event)
		if !ok || e.Reason != "Scheduled" || e.Regarding.Kind != "Pod" {
			return
		}
		at := e.EventTime.Time
		if at.IsZero() {
			at = e.DeprecatedFirstTimestamp.Time
		}
		w.mu.Lock()
		defer w.mu.Unlock()
		if ph := w.get(string(e.Regarding.UID)); ph.schedule.IsZero() {
			ph.schedule = at
		}
	}
	_, _ = f.Events().V1().Events().Informer().AddEventHandler(cache.ResourceEventHandlerFuncs{AddFunc: onEvent})
	ctx, cancel := context.WithCancel(context.Background())
	t.Cleanup(func() { cancel(); f.Shutdown() })
	f.Start(ctx.Done())
	f.WaitForCacheSync(ctx.Done())
	return w
}

func (w *cl2Watcher) get(uid string) *podPhases {
	ph := w.phases[uid]
	if ph == nil {
		ph = &podPhases{}
		w.phases[uid] = ph
	}
	return ph
}

// measured returns the transitions of every pod seen scheduled and running.
func (w *cl2Watcher) measured() map[string]map[string]time.Duration {
	w.mu.Lock()
	defer w.mu.Unlock()
	out := map[string]map[string]time.Duration{}
	for uid, ph := range w.phases {
		if !ph.schedule.IsZero() && !ph.watch.IsZero() {
			out[uid] = ph.transitions()
		}
	}
	return out
}

// watchTimes returns when the watcher saw each pod Running.
func (w *cl2Watcher) watchTimes() map[string]time.Time {
	w.mu.Lock()
	defer w.mu.Unlock()
	out := map[string]time.Time{}
	for uid, ph := range w.phases {
		if !ph.watch.IsZero() {
			out[uid] = ph.watch
		}
	}
	return out
}

// sliOfTrace reads the SLI spans of a stitched trace: pod UID ->
// transition -> duration, with each span's schedule source and what
// pod_startup left out (image pulls).
func sliOfTrace(tr *waterfall.Trace) (map[string]map[string]time.Duration, map[string]string, map[string]time.Duration) {
	out := map[string]map[string]time.Duration{}
	sources := map[string]string{}
	excluded := map[string]time.Duration{}
	for _, s := range tr.Spans {
		if !s.IsSLI() {
			continue
		}
		uid, _ := s.Attributes.Get(fragment.KeyPodUID)
		if out[uid.Str()] == nil {
			out[uid.Str()] = map[string]time.Duration{}
		}
		out[uid.Str()][s.Name] = s.End.Sub(s.Start)
		src, _ := s.Attributes.Get(fragment.KeySLIScheduleSource)
		sources[uid.Str()] = src.Str()
		if ex, ok := s.Attributes.Get(fragment.KeySLIExcluded); ok {
			excluded[uid.Str()] = time.Duration(ex.Int())
		}
	}
	return out, sources, excluded
}
