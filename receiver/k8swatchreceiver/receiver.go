package k8swatchreceiver

import (
	"context"
	"errors"
	"fmt"
	"os"
	"slices"
	"sync"
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
	"k8s.io/client-go/rest"
	"k8s.io/client-go/tools/cache"
	"k8s.io/client-go/tools/clientcmd"
	"k8s.io/client-go/tools/leaderelection"
	"k8s.io/client-go/tools/leaderelection/resourcelock"

	"github.com/kubestitch/kubestitch/internal/fragment"
	"github.com/kubestitch/kubestitch/internal/statestore"
	"github.com/kubestitch/kubestitch/receiver/k8swatchreceiver/internal/metadata"
)

// maxRetrySpans bounds the fragments kept for another try after the
// pipeline refused them (memory_limiter under load); beyond it the oldest
// are dropped, logged and counted.
const maxRetrySpans = 20_000

// maxContainers bounds the containers of one pod that get steps; a pod
// beyond it is logged and counted, and its first maxContainers are used.
const maxContainers = 256

// clientsProvider builds the API clients; tests pass fakes.
type clientsProvider func(cfg *Config) (kubernetes.Interface, dynamic.Interface, error)

func makeClients(cfg *Config) (kubernetes.Interface, dynamic.Interface, error) {
	var rc *rest.Config
	var err error
	switch cfg.AuthType {
	case AuthTypeServiceAccount:
		rc, err = rest.InClusterConfig()
	case AuthTypeKubeConfig:
		rules := clientcmd.NewDefaultClientConfigLoadingRules()
		if cfg.KubeConfig != "" {
			rules.ExplicitPath = cfg.KubeConfig
		}
		rc, err = clientcmd.NewNonInteractiveDeferredLoadingClientConfig(rules,
			&clientcmd.ConfigOverrides{CurrentContext: cfg.Context}).ClientConfig()
	case AuthTypeNone:
		rc = &rest.Config{Host: os.Getenv("KUBERNETES_SERVICE_HOST")}
	}
	if err != nil {
		return nil, nil, fmt.Errorf("k8swatch: auth_type %s: %w", cfg.AuthType, err)
	}
	rc.UserAgent = "kubestitch-k8swatch"
	kc, err := kubernetes.NewForConfig(rc)
	if err != nil {
		return nil, nil, err
	}
	dc, err := dynamic.NewForConfig(rc)
	return kc, dc, err
}

type watchReceiver struct {
	cfg     *Config
	set     receiver.Settings
	next    consumer.Traces
	clients clientsProvider
	obsrecv *receiverhelper.ObsReport
	tel     *metadata.TelemetryBuilder
	tracker *tracker
	allow   map[string]bool
	storage *statestore.Store
	// restored are the stored states read at start, by UID, until their
	// object is first listed.
	restoredMu sync.Mutex
	restored   map[string][]byte
	version    string
	// key signs every fragment, so that k8sstitch knows it came from here
	// (zero: fragments leave unsigned).
	key      fragment.Key
	cancel   context.CancelFunc
	wg       sync.WaitGroup
	watching sync.Mutex

	// retry holds fragments the next consumer refused: the tracker already
	// counts them as emitted, so they must not be lost.
	retryMu sync.Mutex
	retry   []fragmentSpan
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
		c, err := statestore.Open(ctx, host, *r.cfg.Storage, component.KindReceiver, r.set.ID)
		var damaged *statestore.DamagedError
		switch {
		case errors.As(err, &damaged):
			r.storageError("open")
			r.set.Logger.Error("k8swatch: storage "+r.cfg.Storage.String()+": "+damaged.Error()+"; steps already emitted may be emitted again", zap.Error(damaged.Err))
		case err != nil:
			return fmt.Errorf("k8swatch: %w", err)
		default:
			r.storage = statestore.NewStore(c, storedVersion)
			r.loadStored(ctx)
			r.tracker.trackChanges()
		}
	}
	kc, dc, err := r.clients(r.cfg)
	if err != nil {
		return err
	}
	runCtx, cancel := context.WithCancel(context.Background())
	r.cancel = cancel
	r.wg.Go(func() { r.quietLoop(runCtx) })
	if !r.cfg.LeaderElection.Enabled {
		r.wg.Go(func() { r.watch(runCtx, kc, dc) })
		return nil
	}
	r.wg.Go(func() { r.leaderLoop(runCtx, kc, dc) })
	return nil
}

func (r *watchReceiver) Shutdown(ctx context.Context) error {
	if r.cancel != nil {
		r.cancel()
	}
	r.wg.Wait()
	if r.storage != nil {
		r.persistChanges(ctx)
		return r.storage.Close(ctx)
	}
	return nil
}

// leaderLoop watches only while this replica holds the Lease, and goes back
// to campaigning when it loses it, until shutdown.
func (r *watchReceiver) leaderLoop(ctx context.Context, kc kubernetes.Interface, dc dynamic.Interface) {
	le := r.cfg.LeaderElection
	id := le.Identity
	if id == "" {
		id, _ = os.Hostname()
	}
	for ctx.Err() == nil {
		lock := &resourcelock.LeaseLock{
			LeaseMeta:  metav1ObjectMeta(le.LeaseName, le.LeaseNamespace),
			Client:     kc.CoordinationV1(),
			LockConfig: resourcelock.ResourceLockConfig{Identity: id},
		}
		leaderelection.RunOrDie(ctx, leaderelection.LeaderElectionConfig{
			Lock:            lock,
			LeaseDuration:   le.LeaseDuration,
			RenewDeadline:   le.RenewDeadline,
			RetryPeriod:     le.RetryPeriod,
			ReleaseOnCancel: true,
			Name:            le.LeaseName,
			Callbacks: leaderelection.LeaderCallbacks{
				OnStartedLeading: func(lctx context.Context) {
					r.set.Logger.Info("k8swatch: leading, watching", zap.String("identity", id))
					r.watch(lctx, kc, dc)
				},
				OnStoppedLeading: func() {
					r.set.Logger.Info("k8swatch: lease lost, stopped watching", zap.String("identity", id))
				},
			},
		})
	}
}

// watch runs the informers until ctx ends.
func (r *watchReceiver) watch(ctx context.Context, kc kubernetes.Interface, dc dynamic.Interface) {
	// One watcher at a time even across leader terms.
	r.watching.Lock()
	defer r.watching.Unlock()
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
				r.tel.K8swatchWatchErrors.Add(ctx, 1, metric.WithAttributes(attribute.String("kind", kind)))
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
	wg.Wait()
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
				r.restore(v.uid)
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
	r.persistChanges(ctx)
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
			r.retryMu.Lock()
			again := r.retry
			r.retry = nil
			r.retryMu.Unlock()
			r.emit(again)
			r.emit(r.tracker.quiet(now, r.cfg.QuietPeriod))
			if n := r.tracker.takeDroppedEvents(); n > 0 {
				r.tel.K8swatchEventsDropped.Add(ctx, n)
			}
			// Changes that emitted nothing (an object gone quietly).
			r.persistChanges(ctx)
		}
	}
}

// storedVersion is the version of the stored object states: raise it
// when objectState's stored form changes.
const storedVersion = 1

// loadStored reads every stored state once, by walking the store, for
// restore to hand out as objects are first listed.
func (r *watchReceiver) loadStored(ctx context.Context) {
	r.restored = map[string][]byte{}
	err := r.storage.Walk(ctx, func(uid string, value []byte) bool {
		r.restored[uid] = value
		return false
	})
	if err != nil {
		r.set.Logger.Warn("k8swatch: cannot read the stored states; steps already emitted may be emitted again", zap.Error(err))
	}
}

// persistChanges writes the states changed since the last call in one
// batch: after the fragments they emitted went on, so a crash in between
// repeats a step (which k8sstitch drops as a duplicate) rather than lose
// one.
func (r *watchReceiver) persistChanges(ctx context.Context) {
	if r.storage == nil {
		return
	}
	r.tracker.takeChanges(func(uid string, st *objectState) {
		if st == nil {
			r.storage.Delete(uid)
			return
		}
		if err := r.storage.Put(uid, st); err != nil {
			r.set.Logger.Warn("k8swatch: cannot encode object state", zap.String("uid", uid), zap.Error(err))
		}
	})
	if err := r.storage.Flush(ctx); err != nil {
		r.set.Logger.Warn("k8swatch: cannot persist object states; a restart may repeat their steps", zap.Error(err))
	}
}

func (r *watchReceiver) restore(uid string) {
	if r.storage == nil {
		return
	}
	r.restoredMu.Lock()
	b, ok := r.restored[uid]
	delete(r.restored, uid)
	r.restoredMu.Unlock()
	if !ok {
		return
	}
	st := &objectState{}
	if err := r.storage.Decode(b, st); err != nil {
		r.storageError(statestore.Reason(err))
		r.set.Logger.Warn("k8swatch: ignoring stored state it cannot read", zap.String("uid", uid), zap.Error(err))
		return
	}
	r.tracker.restore(uid, st)
}

func (r *watchReceiver) storageError(reason string) {
	r.tel.K8swatchStorageErrors.Add(context.Background(), 1, metric.WithAttributes(attribute.String("reason", reason)))
}

func (r *watchReceiver) keepForRetry(frags []fragmentSpan) {
	r.retryMu.Lock()
	defer r.retryMu.Unlock()
	r.retry = append(r.retry, frags...)
	if over := len(r.retry) - maxRetrySpans; over > 0 {
		r.retry = append(r.retry[:0], r.retry[over:]...)
		r.tel.K8swatchFragmentsDropped.Add(context.Background(), int64(over))
		r.set.Logger.Error("k8swatch: fragments dropped: the pipeline refused them for too long; their operations' traces will miss these steps", zap.Int("dropped", over))
	}
}
