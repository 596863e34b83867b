package k8swatchreceiver

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"go.opentelemetry.io/collector/component"
	"go.opentelemetry.io/collector/component/componenttest"
	"go.opentelemetry.io/collector/consumer/consumertest"
	"go.opentelemetry.io/collector/pdata/ptrace"
	"go.opentelemetry.io/collector/receiver/receivertest"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/dynamic"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/kubernetes/fake"
	k8stesting "k8s.io/client-go/testing"
	"k8s.io/client-go/tools/cache"

	"github.com/kubestitch/kubestitch/internal/fragment"
	"github.com/kubestitch/kubestitch/internal/spans"
	"github.com/kubestitch/kubestitch/internal/statestore/statestoretest"
	"github.com/kubestitch/kubestitch/receiver/k8swatchreceiver/internal/metadata"
)

func spanNames(td []ptrace.Traces) map[string]int {
	out := map[string]int{}
	for _, t := range td {
		rss := t.ResourceSpans()
		for i := 0; i < rss.Len(); i++ {
			sss := rss.At(i).ScopeSpans()
			for j := 0; j < sss.Len(); j++ {
				spans := sss.At(j).Spans()
				for k := 0; k < spans.Len(); k++ {
					out[spans.At(k).Name()]++
				}
			}
		}
	}
	return out
}

func startWithFake(t *testing.T, cfg *Config, client kubernetes.Interface) *consumertest.TracesSink {
	sink := &consumertest.TracesSink{}
	r, err := newWatchReceiver(receivertest.NewNopSettings(metadata.Type), cfg, sink, func(*Config) (kubernetes.Interface, dynamic.Interface, error) {
		return client, nil, nil
	})
	require.NoError(t, err)
	require.NoError(t, r.Start(t.Context(), componenttest.NewNopHost()))
	t.Cleanup(func() { require.NoError(t, r.Shutdown(t.Context())) })
	return sink
}

const testKeySecret = "0123456789abcdef0123456789abcdef"

// The fake clientset serves no streaming list (it never sends the
// initial-events bookmark), so informers on it must list and watch.
// client-go reads its feature gates once, at first use, which may be any
// test of the package (the generated lifecycle test): set before all.
func init() { _ = os.Setenv("KUBE_FEATURE_WatchListClient", "false") }

// forEachFragment calls fn for every span of td.
func forEachFragment(td ptrace.Traces, fn func(ptrace.Span)) {
	for _, s := range spans.All(td) {
		fn(s)
	}
}

// TestNodeModeWatchesItsNodesPods runs the real informers on a client-go
// fake: the pod watch asks for this node's pods only (the fake does not
// apply field selectors, the e2e tests on the real apiserver do), and a pod
// going through its startup yields its fragments, each signed with the
// fragment key.
func TestNodeModeWatchesItsNodesPods(t *testing.T) {
	client := fake.NewClientset()
	cfg := createDefaultConfig().(*Config)
	cfg.Mode, cfg.NodeName, cfg.Kinds = ModeNode, "node-1", []string{"Pod"}
	cfg.FragmentKeyFile = filepath.Join(t.TempDir(), "key")
	require.NoError(t, os.WriteFile(cfg.FragmentKeyFile, []byte(testKeySecret), 0o600))
	sink := startWithFake(t, cfg, client)

	p := scheduled(testPod("pod-mine"), time.Now())
	p.Spec.NodeName = "node-1"
	_, err := client.CoreV1().Pods("default").Create(t.Context(), p, metav1.CreateOptions{})
	require.NoError(t, err)
	// The informer sees the pod before it becomes ready (a pod first
	// listed when already ready is history: nothing to emit).
	require.Eventually(t, func() bool { return spanNames(sink.AllTraces())[fragment.PhaseTrigger] == 1 }, 30*time.Second, 20*time.Millisecond)
	_, err = client.CoreV1().Pods("default").UpdateStatus(t.Context(), running(p, time.Now()), metav1.UpdateOptions{})
	require.NoError(t, err)
	require.Eventually(t, func() bool { return spanNames(sink.AllTraces())[fragment.PhasePodStartup] == 1 }, 30*time.Second, 20*time.Millisecond)

	key, err := fragment.NewKey([]byte(testKeySecret))
	require.NoError(t, err)
	n := 0
	for _, td := range sink.AllTraces() {
		for res, s := range spans.All(td) {
			n++
			assert.True(t, key.Verify(res, s), "%s is signed with the fragment key, over its resource", s.Name())
		}
	}
	assert.Positive(t, n)

	var selectors []string
	for _, a := range client.Actions() {
		if l, ok := a.(k8stesting.ListAction); ok && a.GetResource().Resource == "pods" {
			selectors = append(selectors, l.GetListRestrictions().Fields.String())
		}
	}
	assert.Contains(t, selectors, "spec.nodeName=node-1")
}

func TestBadObjectsAreCountedNotFatal(t *testing.T) {
	tel := componenttest.NewTelemetry()
	t.Cleanup(func() { _ = tel.Shutdown(t.Context()) })
	set := receivertest.NewNopSettings(metadata.Type)
	set.TelemetrySettings = tel.NewTelemetrySettings()
	sink := &consumertest.TracesSink{}
	r, err := newWatchReceiver(set, createDefaultConfig().(*Config), sink, nil)
	require.NoError(t, err)

	noUID := testPod("")
	huge := scheduled(testPod("pod-huge"), t0)
	for i := range 10_000 {
		huge.Status.ContainerStatuses = append(huge.Status.ContainerStatuses, corev1.ContainerStatus{
			Name: "c" + strings.Repeat("x", i%7), State: corev1.ContainerState{Running: &corev1.ContainerStateRunning{StartedAt: metav1.NewTime(t0)}},
		})
	}
	badUTF8 := testPod("pod-utf8")
	badUTF8.Name = "web-\xff\xfe"
	badUTF8.OwnerReferences[0].UID = badUTF8.UID // a pod owning itself

	cached := func(o any) any {
		c, err := newTransform(nil, "")(o)
		require.NoError(t, err)
		return c
	}
	assert.NotPanics(t, func() {
		r.onObject(cached(noUID), false, false)
		r.onObject(cached(huge), false, false)
		r.onObject(cached(badUTF8), false, false)
		r.onObject(cached("not an object"), false, false)
		r.onObject("not an object", false, false)
		r.onObject(cached(&corev1.Pod{}), false, true)
	})

	_, err = tel.GetMetric("otelcol_k8swatch_bad_objects")
	require.NoError(t, err, "bad objects are counted")
	steps := spanNames(sink.AllTraces())
	assert.LessOrEqual(t, steps[fragment.PhaseContainerStart], maxContainers, "container steps are bounded")
	var m ptrace.ProtoMarshaler
	for _, td := range sink.AllTraces() {
		_, err := m.MarshalTraces(td)
		require.NoError(t, err, "every emitted batch encodes as OTLP")
		rss := td.ResourceSpans()
		for i := 0; i < rss.Len(); i++ {
			spans := rss.At(i).ScopeSpans().At(0).Spans()
			for k := 0; k < spans.Len(); k++ {
				name, _ := spans.At(k).Attributes().Get(fragment.KeyName)
				assert.True(t, isValidUTF8(name.Str()), "names are valid UTF-8")
			}
		}
	}
}

func isValidUTF8(s string) bool { return strings.ToValidUTF8(s, "") == s }

func TestNothingSecretLeaves(t *testing.T) {
	p := running(scheduled(testPod("pod-1"), t0), t0)
	p.Annotations = map[string]string{"secret-token": "s3cr3t", "team": "blue", fragment.AnnotationTraceparent: "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01"}
	p.Spec.Containers[0].Env = []corev1.EnvVar{{Name: "PASSWORD", Value: "hunter2"}}
	p.Spec.Containers[0].Args = []string{"--token=abc"}
	allow := map[string]bool{"team": true}
	obj, err := newTransform(allow, "")(p)
	require.NoError(t, err)
	frags := newTracker().observe(*obj.(*cachedObject).take().view, t0, false)
	td := toTraces(frags, "test")
	var m ptrace.JSONMarshaler
	b, err := m.MarshalTraces(td)
	require.NoError(t, err)
	out := string(b)
	for _, secret := range []string{"s3cr3t", "hunter2", "--token=abc", "PASSWORD", "secret-token"} {
		assert.NotContains(t, out, secret)
	}
	assert.Contains(t, out, "blue", "allow-listed annotations are kept")
}

// TestRefusedFragmentsAreRetried: a pipeline that refuses (memory_limiter
// under load) loses no fragment; they go out once it accepts again.
func TestRefusedFragmentsAreRetried(t *testing.T) {
	sink := &refusingSink{}
	r, err := newWatchReceiver(receivertest.NewNopSettings(metadata.Type), createDefaultConfig().(*Config), sink, nil)
	require.NoError(t, err)
	sink.refuse.Store(true)
	obj, err := newTransform(nil, "")(running(scheduled(testPod("pod-1"), t0), t0))
	require.NoError(t, err)
	r.onObject(obj, false, false)
	assert.Zero(t, sink.TracesSink.SpanCount())
	sink.refuse.Store(false)
	r.emit(r.retry.take())
	assert.Equal(t, 5, sink.TracesSink.SpanCount(), "trigger, schedule, container start, ready, startup")
}

type refusingSink struct {
	consumertest.TracesSink
	refuse atomic.Bool
}

func (s *refusingSink) ConsumeTraces(ctx context.Context, td ptrace.Traces) error {
	if s.refuse.Load() {
		return errors.New("data refused due to high memory usage")
	}
	return s.TracesSink.ConsumeTraces(ctx, td)
}

// TestDamagedStoreStartsEmpty: a truncated file_storage file must not fail
// Start (the pod would crash-loop on it): logged, counted, no storage.
func TestDamagedStoreStartsEmpty(t *testing.T) {
	t.Setenv("KUBE_FEATURE_WatchListClient", "false")
	dir := t.TempDir()
	cfg := createDefaultConfig().(*Config)
	cfg.Storage = &statestoretest.ID
	start := func() (*watchReceiver, *componenttest.Telemetry) {
		tel := componenttest.NewTelemetry()
		t.Cleanup(func() { _ = tel.Shutdown(context.Background()) })
		set := receivertest.NewNopSettings(metadata.Type)
		set.ID = component.NewID(metadata.Type) // the same store on restart
		set.TelemetrySettings = tel.NewTelemetrySettings()
		r, err := newWatchReceiver(set, cfg, &consumertest.TracesSink{}, func(*Config) (kubernetes.Interface, dynamic.Interface, error) {
			return fake.NewClientset(), nil, nil
		})
		require.NoError(t, err)
		require.NoError(t, r.Start(t.Context(), statestoretest.FileStorage(t, dir)), "Start with a damaged store")
		return r, tel
	}
	r, _ := start()
	require.NoError(t, r.Shutdown(t.Context()))
	statestoretest.Damage(t, dir)

	r, tel := start()
	assert.Nil(t, r.storage, "it goes on without storage")
	require.NoError(t, r.Shutdown(t.Context()))
	_, err := tel.GetMetric("otelcol_k8swatch_storage_errors")
	require.NoError(t, err, "the damage is counted")
}

// TestRestartWithStoreEmitsNoStepTwice: the receiver on a real
// file_storage, a pod scheduled, a restart (a new receiver on the same
// store, the same cluster): the relisted pod's trigger and schedule step
// are not emitted again, and its later steps are.
func TestRestartWithStoreEmitsNoStepTwice(t *testing.T) {
	dir := t.TempDir()
	client := fake.NewClientset()
	cfg := createDefaultConfig().(*Config)
	cfg.Storage = &statestoretest.ID
	cfg.Mode, cfg.NodeName, cfg.Kinds = ModeNode, "node-1", []string{"Pod"}
	start := func() (*watchReceiver, *consumertest.TracesSink) {
		sink := &consumertest.TracesSink{}
		set := receivertest.NewNopSettings(metadata.Type)
		set.ID = component.NewID(metadata.Type) // the same store on restart
		r, err := newWatchReceiver(set, cfg, sink, func(*Config) (kubernetes.Interface, dynamic.Interface, error) {
			return client, nil, nil
		})
		require.NoError(t, err)
		require.NoError(t, r.Start(t.Context(), statestoretest.FileStorage(t, dir)))
		return r, sink
	}
	r, sink := start()
	p := scheduled(testPod("pod-restart"), time.Now())
	p.Spec.NodeName = "node-1"
	_, err := client.CoreV1().Pods("default").Create(t.Context(), p, metav1.CreateOptions{})
	require.NoError(t, err)
	require.Eventually(t, func() bool { return spanNames(sink.AllTraces())[fragment.PhasePodSchedule] == 1 }, 30*time.Second, 20*time.Millisecond)
	require.NoError(t, r.Shutdown(t.Context()))

	r, sink = start()
	t.Cleanup(func() { require.NoError(t, r.Shutdown(context.Background())) })
	_, err = client.CoreV1().Pods("default").UpdateStatus(t.Context(), running(p, time.Now()), metav1.UpdateOptions{})
	require.NoError(t, err)
	require.Eventually(t, func() bool { return spanNames(sink.AllTraces())[fragment.PhasePodStartup] == 1 }, 30*time.Second, 20*time.Millisecond)
	names := spanNames(sink.AllTraces())
	assert.Zero(t, names[fragment.PhaseTrigger], "the trigger was emitted before the restart")
	assert.Zero(t, names[fragment.PhasePodSchedule], "so was the schedule step")
}

// TestTombstoneEndsTheDeletionFromTheTrackersView: a deletion the watch
// missed comes, at the relist, as a tombstone of what the cache held,
// which is the object's key only once the handler took its view. The
// deletion still ends, as the object it was.
func TestTombstoneEndsTheDeletionFromTheTrackersView(t *testing.T) {
	sink := &consumertest.TracesSink{}
	r, err := newWatchReceiver(receivertest.NewNopSettings(metadata.Type), createDefaultConfig().(*Config), sink, nil)
	require.NoError(t, err)
	h := r.handler("Pod")
	cached, err := newTransform(nil, "")(running(scheduled(testPod("pod-1"), t0), t0))
	require.NoError(t, err)
	h.OnAdd(cached, false)
	require.Nil(t, cached.(*cachedObject).untaken, "the cache keeps the key, not the view")

	h.OnDelete(cache.DeletedFinalStateUnknown{Key: "default/web-1", Obj: cached})

	var deleted []ptrace.Span
	for _, td := range sink.AllTraces() {
		forEachFragment(td, func(s ptrace.Span) {
			if tr, _ := s.Attributes().Get(fragment.KeyTrigger); tr.Str() == fragment.TriggerDelete {
				deleted = append(deleted, s)
			}
		})
	}
	require.NotEmpty(t, deleted, "the deletion has its spans")
	for _, s := range deleted {
		kind, _ := s.Attributes().Get(fragment.KeyKind)
		uid, _ := s.Attributes().Get(fragment.KeyUID)
		assert.Equal(t, "Pod", kind.Str())
		assert.Equal(t, "pod-1", uid.Str())
	}
	assert.Zero(t, r.tracker.tracked(), "and the object is forgotten")
}
