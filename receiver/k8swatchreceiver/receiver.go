package k8swatchreceiver

import (
	"context"
	"fmt"
	"slices"
	"sync"
	"sync/atomic"
	"time"

	"go.opentelemetry.io/collector/component"
	"go.opentelemetry.io/collector/consumer"
	"go.opentelemetry.io/collector/receiver"
	"go.opentelemetry.io/collector/receiver/receiverhelper"
	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/metric"
	"go.uber.org/zap"
	"k8s.io/client-go/dynamic"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/tools/cache"

	"github.com/kubestitch/kubestitch/internal/fragment"
	"github.com/kubestitch/kubestitch/receiver/k8swatchreceiver/internal/metadata"
)

type watchReceiver struct {
	cfg     *Config
	set     receiver.Settings
	next    consumer.Traces
	clients clientsProvider
	obsrecv *receiverhelper.ObsReport
	tel     *metadata.TelemetryBuilder
	tracker *tracker
	allow   map[string]bool
	// storage persists the tracker's states (nil: no storage).
	storage *persistence
	// retry holds fragments the next consumer refused (retry.go).
	retry   retryQueue
	version string
	// key signs every fragment, so that k8sstitch knows it came from here
	// (zero: fragments leave unsigned).
	key fragment.Key
	// health reports the informers' failures as the component's status.
	health *watchHealth
	// watching is true while the informers run (this replica holds the
	// Lease, or needs none): only then is anything reannounced.
	watching atomic.Bool
	cancel   context.CancelFunc
	wg       sync.WaitGroup
}

var _ receiver.Traces = (*watchReceiver)(nil)

func newWatchReceiver(set receiver.Settings, cfg *Config, next consumer.Traces, clients clientsProvider) (*watchReceiver, error) {
	obs, err := receiverhelper.NewObsReport(receiverhelper.ObsReportSettings{
		ReceiverID: set.ID, Transport: "watch", ReceiverCreateSettings: set,
	})
	if err != nil {
		return nil, err
	}
	tel, err := metadata.NewTelemetryBuilder(set.TelemetrySettings)
	if err != nil {
		return nil, err
	}
	allow := map[string]bool{}
	for _, a := range cfg.AnnotationAllowList {
		allow[a] = true
	}
	return &watchReceiver{
		cfg: cfg, set: set, next: next, clients: clients, obsrecv: obs, tel: tel,
		tracker: newTracker(), allow: allow, version: set.BuildInfo.Version,
	}, nil
}

func (r *watchReceiver) Start(ctx context.Context, host component.Host) error {
	if r.cfg.FragmentKeyFile != "" {
		k, err := fragment.ReadKey(r.cfg.FragmentKeyFile)
		if err != nil {
			return err
		}
		r.key = k
	} else {
		r.set.Logger.Info("k8swatch: fragments leave unsigned (no fragment_key_file): a k8sstitch processor with a fragment key takes them as app spans")
	}
	if r.cfg.Storage != nil {
		p, err := openPersistence(ctx, host, r.cfg, r.set, r.storageError)
		if err != nil {
			return err
		}
		if p != nil {
			r.storage = p
			p.load(ctx)
			r.tracker.trackChanges()
		}
	}
	kc, dc, err := r.clients(r.cfg)
	if err != nil {
		return err
	}
	r.health = newWatchHealth(host)
	runCtx, cancel := context.WithCancel(context.Background())
	r.cancel = cancel
	r.wg.Go(func() { r.quietLoop(runCtx) })
	if !r.cfg.LeaderElection.Enabled {
		r.wg.Go(func() { r.watch(runCtx, kc, dc) })
		return nil
	}
	le := newLeaderElector(r.cfg.LeaderElection, r.set.Logger)
	r.wg.Go(func() { le.run(runCtx, kc, func(ctx context.Context) { r.watch(ctx, kc, dc) }) })
	return nil
}

func (r *watchReceiver) Shutdown(ctx context.Context) error {
	if r.cancel != nil {
		r.cancel()
	}
	r.wg.Wait()
	if r.storage != nil {
		r.storage.persist(ctx, r.tracker)
		return r.storage.close(ctx)
	}
	return nil
}

// watch runs the informers until ctx ends.
func (r *watchReceiver) watch(ctx context.Context, kc kubernetes.Interface, dc dynamic.Interface) {
	var sources []source
	for _, k := range r.cfg.Kinds {
		if r.cfg.Mode == ModeNode && k != "Pod" && k != "Event" {
			continue
		}
		sources = append(sources, builtinSource(kc, k))
	}
	for _, cr := range r.cfg.CustomResources {
		sources = append(sources, dynamicSource(dc, cr))
	}
	namespaces := r.cfg.Namespaces
	if len(namespaces) == 0 {
		namespaces = []string{""}
	}
	var informers []cache.SharedIndexInformer
	for _, s := range sources {
		for _, ns := range namespaces {
			if !s.namespaced && ns != namespaces[0] {
				continue
			}
			inf := cache.NewSharedIndexInformer(s.listWatch(ns, r.cfg), s.example, 0, cache.Indexers{})
			_ = inf.SetTransform(newTransform(r.allow, r.transformNode()))
			kind := s.kind
			_ = inf.SetWatchErrorHandlerWithContext(func(ctx context.Context, _ *cache.Reflector, err error) {
				if ctx.Err() != nil {
					return // stopping: leadership lost or shutdown, not a failure
				}
				r.tel.K8swatchWatchErrors.Add(ctx, 1, metric.WithAttributes(attribute.String("kind", kind)))
				r.health.failed(kind, ns, inf, err)
				r.set.Logger.Warn("k8swatch: list/watch failed; retrying with backoff (check RBAC: get/list/watch on this kind)",
					zap.String("kind", kind), zap.String("namespace", ns), zap.Error(err))
			})
			if _, err := inf.AddEventHandler(r.handler(kind)); err != nil {
				r.set.Logger.Error("k8swatch: cannot add handler", zap.String("kind", kind), zap.Error(err))
				continue
			}
			informers = append(informers, inf)
		}
	}
	var wg sync.WaitGroup
	for _, inf := range informers {
		wg.Go(func() { inf.RunWithContext(ctx) })
	}
	r.watching.Store(true)
	wg.Wait()
	// A replica that lost the Lease keeps its tracker, frozen: what it
	// would reannounce is no longer true.
	r.watching.Store(false)
	r.health.forget(informers)
}

func (r *watchReceiver) handler(kind string) cache.ResourceEventHandler {
	count := metric.WithAttributes(attribute.String("kind", kind))
	return cache.ResourceEventHandlerDetailedFuncs{
		AddFunc: func(obj any, initial bool) {
			r.tel.K8swatchWatchEvents.Add(context.Background(), 1, count)
			r.onObject(obj, initial, false)
		},
		UpdateFunc: func(_, obj any) {
			r.tel.K8swatchWatchEvents.Add(context.Background(), 1, count)
			r.onObject(obj, false, false)
		},
		DeleteFunc: func(obj any) {
			r.tel.K8swatchWatchEvents.Add(context.Background(), 1, count)
			if d, ok := obj.(cache.DeletedFinalStateUnknown); ok {
				obj = d.Obj
			}
			r.onObject(obj, false, true)
		},
	}
}

// onObject is the data path: watch event -> view -> tracker -> fragments.
// obj is what the informer's transform made of the watched object.
func (r *watchReceiver) onObject(obj any, initial, deleted bool) {
	now := time.Now()
	var frags []fragmentSpan
	switch o := obj.(type) {
	case *cachedObject:
		ob := o.take()
		v := ob.view
		if ob.bad != "" {
			r.bad(ob.bad, o)
		}
		switch {
		case ob.event != nil:
			frags = r.tracker.event(r.redact(seenAt(*ob.event, now)))
		case deleted && v == nil:
			// A tombstone after a missed watch: the cache had only the
			// key; the tracker has the last view. (Or an Event's
			// deletion, which the tracker has nothing of.)
			frags = r.tracker.goneByUID(o.uid, now)
		case v == nil:
			return
		case deleted:
			frags = r.tracker.gone(*v, now)
		default:
			if initial {
				r.storage.restore(v.uid, r.tracker)
			}
			frags = r.tracker.observe(*v, now, initial)
			if ob.quiet {
				r.tracker.markQuiet(v.uid)
			}
		}
	default:
		r.bad(fmt.Sprintf("unexpected_type_%T", obj), obj)
		return
	}
	r.emit(frags)
}

// redact drops an Event's message unless event_messages lets it into
// spans; its duration (image.pull) was read from it already.
func (r *watchReceiver) redact(ev eventView) eventView {
	switch r.cfg.EventMessages {
	case EventMessagesNone:
		ev.note = ""
	case EventMessagesReasons:
		if !slices.Contains(r.cfg.EventMessageReasons, ev.reason) {
			ev.note = ""
		}
	}
	return ev
}

func (r *watchReceiver) bad(reason string, obj any) {
	r.tel.K8swatchBadObjects.Add(context.Background(), 1, metric.WithAttributes(attribute.String("reason", reason)))
	what := fmt.Sprintf("%T", obj)
	if c, ok := obj.(*cachedObject); ok {
		what = c.namespace + "/" + c.name
	}
	r.set.Logger.Warn("k8swatch: object not turned into fragments, or only in part", zap.String("reason", reason), zap.String("object", what))
}

func (r *watchReceiver) emit(frags []fragmentSpan) {
	if len(frags) == 0 {
		return
	}
	ctx := r.obsrecv.StartTracesOp(context.Background())
	td := toTraces(frags, r.version)
	if !r.key.IsZero() {
		signAll(td, r.key)
	}
	err := r.next.ConsumeTraces(ctx, td)
	r.obsrecv.EndTracesOp(ctx, "k8s", len(frags), err)
	r.storage.persist(ctx, r.tracker)
	if err != nil {
		r.set.Logger.Warn("k8swatch: next consumer refused fragments; retrying every second", zap.Int("spans", len(frags)), zap.Error(err))
		r.keepForRetry(frags)
		return
	}
	for i := range frags {
		r.tel.K8swatchFragmentsEmitted.Add(ctx, 1, metric.WithAttributes(attribute.String("phase", frags[i].name)))
	}
	r.tel.K8swatchObjectsTracked.Record(ctx, int64(r.tracker.tracked()))
}

func (r *watchReceiver) quietLoop(ctx context.Context) {
	tick := time.NewTicker(time.Second)
	defer tick.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case now := <-tick.C:
			r.emit(r.retry.take())
			r.emit(r.tracker.quiet(now, r.cfg.QuietPeriod, r.reannounceInterval()))
			if n := r.tracker.takeDroppedEvents(); n > 0 {
				r.tel.K8swatchEventsDropped.Add(ctx, n)
			}
			// Changes that emitted nothing (an object gone quietly).
			r.storage.persist(ctx, r.tracker)
			r.health.check()
		}
	}
}

// reannounceInterval is the configured interval while this receiver
// watches, 0 (none) otherwise.
func (r *watchReceiver) reannounceInterval() time.Duration {
	if !r.watching.Load() {
		return 0
	}
	return r.cfg.ReannounceInterval
}

func (r *watchReceiver) storageError(reason string) {
	r.tel.K8swatchStorageErrors.Add(context.Background(), 1, metric.WithAttributes(attribute.String("reason", reason)))
}

func (r *watchReceiver) keepForRetry(frags []fragmentSpan) {
	if over := r.retry.add(frags); over > 0 {
		r.tel.K8swatchFragmentsDropped.Add(context.Background(), int64(over))
		r.set.Logger.Error("k8swatch: fragments dropped: the pipeline refused them for too long; their operations' traces will miss these steps", zap.Int("dropped", over))
	}
}

// transformNode is the node whose kubelet's Events a node-mode receiver
// keeps whole.
func (r *watchReceiver) transformNode() string {
	if r.cfg.Mode == ModeNode {
		return r.cfg.NodeName
	}
	return ""
}
