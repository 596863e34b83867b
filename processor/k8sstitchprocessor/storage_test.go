package k8sstitchprocessor

import (
	"context"
	"encoding/json"
	"fmt"
	"maps"
	"path/filepath"
	"slices"
	"sort"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"go.opentelemetry.io/collector/component"
	"go.opentelemetry.io/collector/component/componenttest"
	"go.opentelemetry.io/collector/consumer/consumertest"
	"go.opentelemetry.io/collector/extension/xextension/storage"
	"go.opentelemetry.io/collector/pdata/pcommon"
	"go.opentelemetry.io/collector/pdata/ptrace"
	"go.opentelemetry.io/collector/processor/processortest"
	"go.opentelemetry.io/otel/sdk/metric/metricdata"

	"github.com/kubestitch/kubestitch/internal/fragment"
	"github.com/kubestitch/kubestitch/internal/statestore"
	"github.com/kubestitch/kubestitch/internal/statestore/statestoretest"
)

// memStorage is a storage extension with one in-memory client that
// outlives the processors using it, as file_storage's file outlives a
// killed collector.
type memStorage struct {
	mu sync.Mutex
	kv map[string][]byte
}

func (m *memStorage) Start(context.Context, component.Host) error { return nil }
func (m *memStorage) Shutdown(context.Context) error              { return nil }
func (m *memStorage) GetClient(context.Context, component.Kind, component.ID, string) (storage.Client, error) {
	return memClient{m}, nil
}

type memClient struct{ m *memStorage }

func (c memClient) Get(_ context.Context, k string) ([]byte, error) {
	c.m.mu.Lock()
	defer c.m.mu.Unlock()
	return c.m.kv[k], nil
}
func (c memClient) Set(ctx context.Context, k string, v []byte) error {
	return c.Batch(ctx, storage.SetOperation(k, v))
}
func (c memClient) Delete(ctx context.Context, k string) error {
	return c.Batch(ctx, storage.DeleteOperation(k))
}
func (c memClient) Close(context.Context) error { return nil }
func (c memClient) Batch(_ context.Context, ops ...*storage.Operation) error {
	c.m.mu.Lock()
	defer c.m.mu.Unlock()
	for _, op := range ops {
		switch op.Type {
		case storage.Set:
			c.m.kv[op.Key] = op.Value
		case storage.Delete:
			delete(c.m.kv, op.Key)
		}
	}
	return nil
}
func (c memClient) Walk(_ context.Context, fn storage.WalkFunc) error {
	c.m.mu.Lock()
	keys := make([]string, 0, len(c.m.kv))
	for k := range c.m.kv {
		keys = append(keys, k)
	}
	c.m.mu.Unlock()
	sort.Strings(keys)
	var ops []*storage.Operation
	for _, k := range keys {
		o, err := fn(k, c.m.kv[k])
		if err != nil {
			return err
		}
		ops = append(ops, o...)
	}
	// As file_storage does: the operations the walk returned, applied.
	return c.Batch(context.Background(), ops...)
}

func (m *memStorage) keys(prefix string) int {
	m.mu.Lock()
	defer m.mu.Unlock()
	n := 0
	for k := range m.kv {
		if strings.HasPrefix(k, prefix) {
			n++
		}
	}
	return n
}

type storageHost struct {
	id  component.ID
	ext component.Component
}

func (h storageHost) GetExtensions() map[component.ID]component.Component {
	return map[component.ID]component.Component{h.id: h.ext}
}

// TestWaitingFragmentSurvivesAKill: a pod's fragment waits for its
// ReplicaSet's operation when the gateway is killed; it was acknowledged
// upstream, so the next run must have it and place it when the owner
// shows up.
func TestWaitingFragmentSurvivesAKill(t *testing.T) {
	store := &memStorage{kv: map[string][]byte{}}
	id := component.MustNewID("file_storage")
	host := storageHost{id, store}
	newProc := func(sink *consumertest.TracesSink) *stitchProcessor {
		cfg := createDefaultConfig().(*Config)
		cfg.Storage = &id
		cfg.AcceptUnsignedFragments = true
		p, err := newStitchProcessor(processortest.NewNopSettings(metadataType), cfg, sink)
		require.NoError(t, err)
		require.NoError(t, p.Start(context.Background(), host))
		return p
	}
	t0 := time.Date(2026, 11, 25, 10, 0, 0, 0, time.UTC)
	pod := newSpanMaker()
	fragmentSpan(pod, "kube-scheduler", "Pod", "pod-1", "web-1-a", "rs-1", fragment.PhasePodSchedule, fragment.LevelStep, t0, t0, time.Millisecond)

	first := newProc(&consumertest.TracesSink{})
	require.NoError(t, first.ConsumeTraces(context.Background(), pod.td))
	assert.Equal(t, 1, first.waiting.len(), "the pod's owner is not known: it waits")
	assert.Equal(t, 1, store.keys(waitingKeyPrefix), "and its copy is stored")
	first.cancel() // killed: no Shutdown, nothing released
	first.wg.Wait()

	sink := &consumertest.TracesSink{}
	second := newProc(sink)
	t.Cleanup(func() { _ = second.Shutdown(context.Background()) })
	assert.Equal(t, 1, second.waiting.len(), "restored into the wait buffer")
	owner := newSpanMaker()
	fragmentSpan(owner, "kube-controller-manager", "ReplicaSet", "rs-1", "web-1", "", fragment.PhaseTrigger, fragment.LevelTrigger, t0, t0, 0)
	require.NoError(t, second.ConsumeTraces(context.Background(), owner.td))

	var placed ptrace.Span
	for _, td := range sink.AllTraces() {
		forEachSpan(td, func(_ pcommon.Map, s ptrace.Span) {
			if s.Name() == fragment.PhasePodSchedule {
				placed = s
			}
		})
	}
	require.NotEqual(t, ptrace.Span{}, placed, "the restored fragment left")
	assert.Equal(t, fragment.TraceID("rs-1", "gen:1"), placed.TraceID(), "placed in its owner's operation")
	assert.Equal(t, 0, second.waiting.len())
	assert.Equal(t, 0, store.keys(waitingKeyPrefix), "its stored copy is deleted once it left")
}

// TestDamagedStoreStartsEmpty: a truncated file_storage file (it survives
// container restarts in an emptyDir) must not fail Start, or the pod
// crash-loops: the processor logs, counts and goes on without it.
func TestDamagedStoreStartsEmpty(t *testing.T) {
	dir := t.TempDir()
	cfg := createDefaultConfig().(*Config)
	cfg.Storage = &statestoretest.ID
	cfg.AcceptUnsignedFragments = true
	start := func() (*stitchProcessor, *componenttest.Telemetry) {
		tel := componenttest.NewTelemetry()
		t.Cleanup(func() { _ = tel.Shutdown(context.Background()) })
		set := processortest.NewNopSettings(metadataType)
		set.ID = component.NewID(metadataType) // the same store on restart
		set.TelemetrySettings = tel.NewTelemetrySettings()
		p, err := newStitchProcessor(set, cfg, &consumertest.TracesSink{})
		require.NoError(t, err)
		require.NoError(t, p.Start(context.Background(), statestoretest.FileStorage(t, dir)), "Start with a damaged store")
		return p, tel
	}
	p, _ := start()
	require.NoError(t, p.Shutdown(context.Background()))
	statestoretest.Damage(t, dir)

	p, tel := start()
	assert.Nil(t, p.storage, "it goes on without storage")
	require.NoError(t, p.ConsumeTraces(context.Background(), ptrace.NewTraces()))
	require.NoError(t, p.Shutdown(context.Background()))
	m, err := tel.GetMetric("otelcol_k8sstitch_storage_errors")
	require.NoError(t, err, "the damage is counted")
	assert.NotNil(t, m)
}

// TestStaleStoreYieldsTheConvergedSpan: a gateway comes back (or takes
// the Lease over) with a store whose open operations are an hour old. The
// time it was away is not time it watched: the operation must not time
// out on the first tick, and the genuine converged root, arriving after
// the relist, must leave, not an operation_timeout error.
func TestStaleStoreYieldsTheConvergedSpan(t *testing.T) {
	store := &memStorage{kv: map[string][]byte{}}
	id := component.MustNewID("file_storage")
	host := storageHost{id, store}
	withStore := func(c *Config) { c.Storage = &id }
	batches := loadBatches(t, filepath.Join("testdata", "deployment_create", "input.json"))
	// The first run ends before the batch that closes the rollout.
	split := slices.IndexFunc(batches, func(td ptrace.Traces) bool {
		closes := false
		forEachSpan(td, func(_ pcommon.Map, s ptrace.Span) {
			closes = closes || s.Name() == fragment.PhaseDeploymentRollout
		})
		return closes
	})
	require.Positive(t, split)

	first := newHarness(t, withStore)
	require.NoError(t, first.p.openStorage(context.Background(), host))
	for _, b := range batches[:split] {
		first.feed(t, b)
	}
	require.NotEmpty(t, first.p.openRoots, "the rollout is open when the first run ends")
	first.p.flushStorage(context.Background()) // killed: no Shutdown
	saved := maps.Clone(store.kv)

	second := newHarness(t, withStore)
	second.clock = first.clock.Add(time.Hour)
	require.NoError(t, second.p.openStorage(context.Background(), host))
	require.NotEmpty(t, second.p.openRoots, "restored open")
	second.flush()
	for _, b := range batches[split:] {
		second.feed(t, b)
	}
	second.flush()

	var converged, timedOut int
	forEachSpan(second.output(), func(_ pcommon.Map, s ptrace.Span) {
		if s.Name() != fragment.PhaseDeploymentRollout {
			return
		}
		if r, _ := s.Attributes().Get(fragment.KeyReason); r.Str() == "operation_timeout" {
			timedOut++
			return
		}
		if c, ok := s.Attributes().Get(fragment.KeyConverged); ok && c.Bool() {
			converged++
		}
	})
	assert.Zero(t, timedOut, "no operation_timeout for the time the gateway was away")
	assert.Equal(t, 1, converged, "the genuine converged root left")

	// A restored operation still times out, operation_timeout after the
	// restore, when nothing more comes.
	third := newHarness(t, withStore)
	third.clock = first.clock.Add(time.Hour)
	require.NoError(t, third.p.openStorage(context.Background(), storageHost{id, &memStorage{kv: saved}}))
	third.clock = third.clock.Add(third.p.cfg.OperationTimeout - time.Minute)
	third.flush()
	assert.Zero(t, third.sink.SpanCount(), "not before operation_timeout since the restore")
	third.clock = third.clock.Add(2 * time.Minute)
	third.flush()
	timedOut = 0
	forEachSpan(third.output(), func(_ pcommon.Map, s ptrace.Span) {
		if r, _ := s.Attributes().Get(fragment.KeyReason); s.Name() == fragment.PhaseDeploymentRollout && r.Str() == "operation_timeout" {
			timedOut++
		}
	})
	assert.Equal(t, 1, timedOut, "the restored rollout times out in the end")
}

// TestStoredRecordOfAnotherVersionIsSkipped: a store written by another
// release (a rollback) is not read as this one's: the record is skipped,
// deleted and counted, and the processor starts without it.
func TestStoredRecordOfAnotherVersionIsSkipped(t *testing.T) {
	id := component.MustNewID("file_storage")
	cur, err := statestore.Encode(storedVersion, &object{UID: "rs-1", Kind: "ReplicaSet", Name: "web-1"})
	require.NoError(t, err)
	next, err := statestore.Encode(storedVersion+1, &object{UID: "rs-2", Kind: "ReplicaSet", Name: "web-2"})
	require.NoError(t, err)
	store := &memStorage{kv: map[string][]byte{"rs-1": cur, "rs-2": next}}
	tel := componenttest.NewTelemetry()
	t.Cleanup(func() { _ = tel.Shutdown(context.Background()) })
	set := processortest.NewNopSettings(metadataType)
	set.TelemetrySettings = tel.NewTelemetrySettings()
	h := newHarnessWith(t, set, func(c *Config) { c.Storage = &id })
	require.NoError(t, h.p.openStorage(context.Background(), storageHost{id, store}))

	assert.NotNil(t, h.p.graph.get("rs-1"), "this version's record is read")
	assert.Nil(t, h.p.graph.get("rs-2"), "another version's is not")
	assert.Equal(t, 1, store.keys("rs-"), "and it is deleted")
	m, err := tel.GetMetric("otelcol_k8sstitch_storage_errors")
	require.NoError(t, err)
	dp := m.Data.(metricdata.Sum[int64]).DataPoints[0]
	reason, _ := dp.Attributes.Value("reason")
	assert.Equal(t, "version", reason.AsString())
	assert.Equal(t, int64(1), dp.Value)
}

// TestShedAndRetiredObjectsLeaveTheStore: an object shed at max_objects,
// or retired after its deletion, has its stored record deleted at the next
// flush, and no other object's record is written in its name (its slot
// holds another object by then).
func TestShedAndRetiredObjectsLeaveTheStore(t *testing.T) {
	id := component.MustNewID("file_storage")
	store := &memStorage{kv: map[string][]byte{}}
	h := newHarness(t, func(c *Config) { c.Storage = &id; c.MaxObjects = 2 })
	require.NoError(t, h.p.openStorage(context.Background(), storageHost{id, store}))
	t0 := time.Date(2026, 12, 1, 0, 0, 0, 0, time.UTC)
	m := newSpanMaker()
	for i, uid := range []string{"job-a", "job-b", "job-c"} {
		churnFragment(m, uid, "gen:1", fragment.LevelTrigger, t0.Add(time.Duration(i)*time.Second))
	}
	h.feed(t, m.td)
	h.p.flushStorage(context.Background())
	assert.Equal(t, 2, store.keys("job-"), "the shed object's record is gone")
	for k, v := range store.kv {
		var o object
		require.NoError(t, statestore.Decode(v, storedVersion, &o))
		assert.Equal(t, k, o.UID, "each record is its own object's")
	}

	m = newSpanMaker()
	churnFragment(m, "job-c", fragment.TriggerDelete, fragment.LevelTrigger, t0.Add(time.Minute))
	churnFragment(m, "job-c", fragment.TriggerDelete, fragment.LevelObject, t0.Add(time.Minute+time.Second))
	h.feed(t, m.td)
	h.clock = h.clock.Add(time.Hour)
	h.flush()
	h.p.flushStorage(context.Background())
	_, kept := store.kv["job-c"]
	assert.False(t, kept, "a retired object's record is gone")
}

// TestStoredRecordsBreakingInvariantsAreDropped (trust finding 11): records
// that parse but break what the graph relies on (an empty operation, a
// UID that is not the key, more operations than an object keeps, a placed
// operation without a trace, a waiting record whose one span is not in its
// first resource) are skipped, deleted and counted at start, never a
// panic; a sound record beside them is read.
func TestStoredRecordsBreakingInvariantsAreDropped(t *testing.T) {
	id := component.MustNewID("file_storage")
	raw := func(js string) []byte {
		b, err := statestore.Encode(storedVersion, json.RawMessage(js))
		require.NoError(t, err)
		return b
	}
	good, err := statestore.Encode(storedVersion, &object{UID: "rs-1", Kind: "ReplicaSet", Name: "web-1"})
	require.NoError(t, err)
	many := make([]string, maxOpsPerObject+1)
	for i := range many {
		many[i] = fmt.Sprintf(`{"t":"gen:%d","s":"2026-01-01T00:00:00Z","ti":"","pa":""}`, i)
	}
	td := ptrace.NewTraces()
	td.ResourceSpans().AppendEmpty() // a resource without spans first
	s := td.ResourceSpans().AppendEmpty().ScopeSpans().AppendEmpty().Spans().AppendEmpty()
	s.SetName(fragment.PhasePodSchedule)
	var pm ptrace.ProtoMarshaler
	waiting, err := pm.MarshalTraces(td)
	require.NoError(t, err)
	store := &memStorage{kv: map[string][]byte{
		"rs-1":                                good,
		"bad-1":                               raw(`{"u":"bad-1","k":"Pod","m":"a","p":[null]}`),
		"bad-2":                               raw(`{"u":"someone-else","k":"Pod","m":"a"}`),
		"bad-3":                               raw(`{"u":"bad-3","k":"Pod","m":"a","p":[` + strings.Join(many, ",") + `]}`),
		"bad-4":                               raw(`{"u":"bad-4","k":"Pod","m":"a","p":[{"t":"gen:1","s":"2026-01-01T00:00:00Z","ti":"","pa":"","pl":true,"r":true}]}`),
		waitingKeyPrefix + "0102030405060708": waiting,
	}}
	tel := componenttest.NewTelemetry()
	t.Cleanup(func() { _ = tel.Shutdown(context.Background()) })
	set := processortest.NewNopSettings(metadataType)
	set.TelemetrySettings = tel.NewTelemetrySettings()
	h := newHarnessWith(t, set, func(c *Config) { c.Storage = &id })
	require.NotPanics(t, func() {
		require.NoError(t, h.p.openStorage(context.Background(), storageHost{id, store}))
	})
	assert.NotNil(t, h.p.graph.get("rs-1"), "the sound record is read")
	for _, uid := range []string{"bad-1", "bad-2", "someone-else", "bad-3", "bad-4"} {
		assert.Nil(t, h.p.graph.get(uid), uid)
	}
	assert.Equal(t, 0, store.keys("bad-"), "the broken records are deleted")
	assert.Equal(t, 0, store.keys(waitingKeyPrefix), "and the odd waiting record")
	m, err := tel.GetMetric("otelcol_k8sstitch_storage_errors")
	require.NoError(t, err)
	var counted int64
	for _, dp := range m.Data.(metricdata.Sum[int64]).DataPoints {
		counted += dp.Value
	}
	assert.Equal(t, int64(5), counted, "each broken record counted (the waiting one: its one span is found, and is no fragment)")
}
