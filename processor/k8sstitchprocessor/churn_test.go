package k8sstitchprocessor

import (
	"fmt"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"go.opentelemetry.io/collector/component/componenttest"
	"go.opentelemetry.io/collector/pdata/pcommon"
	"go.opentelemetry.io/collector/pdata/ptrace"
	"go.opentelemetry.io/collector/processor/processortest"
	"go.opentelemetry.io/otel/sdk/metric/metricdata"

	"github.com/kubestitch/kubestitch/internal/fragment"
)

// churnFragment adds one fragment of a Job's operation for trigger.
func churnFragment(m *spanMaker, uid, trigger, level string, at time.Time) {
	opFragment(m, "Job", uid, "", trigger, level, "", at, at, at.Add(time.Millisecond))
}

// TestDeletedObjectsLeaveTheGraph: ordinary churn must not fill the owner
// graph. 200,000 Jobs are created, complete and are deleted, a Job every
// 2 ms (400 s of churn), with max_objects 100,000: a deleted object leaves
// once its deletion closed and late spans had their time, so nothing live
// is ever shed.
func TestDeletedObjectsLeaveTheGraph(t *testing.T) {
	const jobs, maxObjects = 200_000, 100_000
	tel := componenttest.NewTelemetry()
	t.Cleanup(func() { _ = tel.Shutdown(t.Context()) })
	set := processortest.NewNopSettings(metadataType)
	set.TelemetrySettings = tel.NewTelemetrySettings()
	h := newHarnessWith(t, set, func(c *Config) { c.MaxObjects = maxObjects })
	t0 := time.Date(2026, 12, 1, 0, 0, 0, 0, time.UTC)
	const perBatch = 500
	most := 0
	for first := 0; first < jobs; first += perBatch {
		m := newSpanMaker()
		for i := first; i < first+perBatch; i++ {
			uid := fmt.Sprintf("job-%07d", i)
			at := t0.Add(time.Duration(i) * 2 * time.Millisecond)
			churnFragment(m, uid, "gen:1", fragment.LevelTrigger, at)
			churnFragment(m, uid, "gen:1", fragment.LevelObject, at.Add(500*time.Microsecond))
			churnFragment(m, uid, fragment.TriggerDelete, fragment.LevelTrigger, at.Add(time.Millisecond))
			churnFragment(m, uid, fragment.TriggerDelete, fragment.LevelObject, at.Add(1500*time.Microsecond))
		}
		h.feed(t, m.td)
		most = max(most, h.p.graph.len())
	}
	h.drain()

	_, err := tel.GetMetric("otelcol_k8sstitch_objects_shed")
	assert.Error(t, err, "no object was ever shed")
	m, err := tel.GetMetric("otelcol_k8sstitch_operations_opened")
	require.NoError(t, err)
	opened := int64(0)
	for _, dp := range m.Data.(metricdata.Sum[int64]).DataPoints {
		opened += dp.Value
	}
	assert.Equal(t, int64(2*jobs), opened, "every create and delete was an operation")
	assert.Less(t, most, maxObjects, "the graph never reached max_objects")
	t.Logf("%d Jobs created and deleted: at most %d objects in the graph (max_objects %d), %d after", jobs, most, maxObjects, h.p.graph.len())
}

// TestReplayAfterRetirementBringsNothingBack (trust finding 3): a Job is
// created and deleted and leaves the graph; a replay of its create
// trigger afterwards is dropped, so the object does not come back and no
// operation_timeout error root appears 10 minutes later in a trace that
// had finished fine.
func TestReplayAfterRetirementBringsNothingBack(t *testing.T) {
	h := newHarness(t, nil)
	t0 := time.Date(2026, 12, 1, 0, 0, 0, 0, time.UTC)
	m := newSpanMaker()
	churnFragment(m, "job-1", "gen:1", fragment.LevelTrigger, t0)
	churnFragment(m, "job-1", "gen:1", fragment.LevelObject, t0.Add(time.Second))
	churnFragment(m, "job-1", fragment.TriggerDelete, fragment.LevelTrigger, t0.Add(2*time.Second))
	churnFragment(m, "job-1", fragment.TriggerDelete, fragment.LevelObject, t0.Add(3*time.Second))
	h.feed(t, m.td)
	h.drain()
	h.drain()
	require.Nil(t, h.p.graph.get("job-1"), "retired")
	before := h.sink.SpanCount()

	replay := newSpanMaker()
	churnFragment(replay, "job-1", "gen:1", fragment.LevelTrigger, t0)
	require.NoError(t, h.p.ConsumeTraces(t.Context(), replay.td))
	h.clock = h.clock.Add(h.p.cfg.OperationTimeout + time.Minute)
	h.flush()
	h.drain()
	assert.Nil(t, h.p.graph.get("job-1"), "the replay brings nothing back")
	timedOut := 0
	forEachSpan(h.output(), func(_ pcommon.Map, s ptrace.Span) {
		if r, _ := s.Attributes().Get(fragment.KeyReason); r.Str() == "operation_timeout" {
			timedOut++
		}
	})
	assert.Zero(t, timedOut, "no operation_timeout root")
	assert.Equal(t, before, h.sink.SpanCount(), "nothing more leaves")
}
