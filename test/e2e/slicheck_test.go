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
// PodStartupLatency does now (kubernetes/perf-tests#3889), independently
// of Kubestitch: its own client, informers and receive times, never the
// API's second-precision timestamps. create is when it received the new
// pod; schedule the scheduler's Scheduled Event (eventTime, µs); run when
// it received the pod with every container started; watch when it
// received the pod in phase Running; each taken once, at the first such
// delivery. The truncated creationTimestamp is kept beside, to show what
// it would have read.
type cl2Watcher struct {
	mu     sync.Mutex
	phases map[string]*podPhases
	// created is each pod's creationTimestamp (whole seconds).
	created map[string]time.Time
}

func startCL2Watcher(t *testing.T, cfg *rest.Config, namespace string) *cl2Watcher {
	t.Helper()
	cfg = rest.CopyConfig(cfg)
	cfg.QPS, cfg.Burst = 100, 200
	client, err := kubernetes.NewForConfig(cfg)
	if err != nil {
		t.Fatal(err)
	}
	w := &cl2Watcher{phases: map[string]*podPhases{}, created: map[string]time.Time{}}
	f := informers.NewSharedInformerFactoryWithOptions(client, 0, informers.WithNamespace(namespace))
	onPod := func(obj any, added bool) {
		now := time.Now()
		p, ok := obj.(*corev1.Pod)
		if !ok {
			return
		}
		w.mu.Lock()
		defer w.mu.Unlock()
		ph := w.get(string(p.UID))
		if added && p.Spec.NodeName == "" && ph.create.IsZero() {
			ph.create = now
			w.created[string(p.UID)] = p.CreationTimestamp.Time
		}
		started := len(p.Status.ContainerStatuses) > 0
		for _, cs := range p.Status.ContainerStatuses {
			started = started && cs.State.Running != nil
		}
		if started && ph.run.IsZero() {
			ph.run = now
		}
		if p.Status.Phase == corev1.PodRunning && ph.watch.IsZero() {
			ph.watch = now
		}
	}
	_, _ = f.Core().V1().Pods().Informer().AddEventHandler(cache.ResourceEventHandlerFuncs{
		AddFunc: func(obj any) { onPod(obj, true) }, UpdateFunc: func(_, obj any) { onPod(obj, false) },
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
		if !ph.create.IsZero() && !ph.schedule.IsZero() && !ph.watch.IsZero() {
			out[uid] = ph.transitions()
		}
	}
	return out
}

// createdAt returns, per pod, when the watcher received it new and its
// creationTimestamp.
func (w *cl2Watcher) createdAt() (received, stamped map[string]time.Time) {
	w.mu.Lock()
	defer w.mu.Unlock()
	received, stamped = map[string]time.Time{}, map[string]time.Time{}
	for uid, ph := range w.phases {
		if !ph.create.IsZero() {
			received[uid], stamped[uid] = ph.create, w.created[uid]
		}
	}
	return received, stamped
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

// sliStarts is, per pod UID, where its pod_startup SLI span starts: the
// create boundary.
func sliStarts(tr *waterfall.Trace) map[string]time.Time {
	out := map[string]time.Time{}
	for _, s := range tr.Spans {
		if s.IsSLI() && s.Name == fragment.SLIPodStartup {
			uid, _ := s.Attributes.Get(fragment.KeyPodUID)
			out[uid.Str()] = s.Start
		}
	}
	return out
}
