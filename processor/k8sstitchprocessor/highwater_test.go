package k8sstitchprocessor

import (
	"context"
	"runtime"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"go.opentelemetry.io/collector/component/componenttest"
	"go.opentelemetry.io/collector/consumer/consumertest"
	"go.opentelemetry.io/collector/pdata/pcommon"
	"go.opentelemetry.io/collector/pdata/ptrace"
	"go.opentelemetry.io/collector/processor/processortest"
)

// TestHugeBatchLeavesNoHighWater (trust finding 10): one OTLP request of
// 400,000 tiny spans (16.8 MB on the wire) needs scratch for each span
// while it is processed; once ordinary batches follow, that scratch is
// given back, not kept for good (82 MiB of scratch and 13 MiB of per-span
// state stayed, counted by no bound).
func TestHugeBatchLeavesNoHighWater(t *testing.T) {
	cfg := createDefaultConfig().(*Config)
	cfg.AcceptUnsignedFragments = true
	p, err := newStitchProcessor(processortest.NewNopSettings(metadataType), cfg, consumertest.NewNop())
	require.NoError(t, err)
	require.NoError(t, p.Start(context.Background(), componenttest.NewNopHost()))
	t.Cleanup(func() { _ = p.Shutdown(context.Background()) })
	batch := func(n int) ptrace.Traces {
		td := ptrace.NewTraces()
		spans := td.ResourceSpans().AppendEmpty().ScopeSpans().AppendEmpty().Spans()
		spans.EnsureCapacity(n)
		now := pcommon.NewTimestampFromTime(time.Now())
		// Traces of a root and its child, with no hint: they pass.
		for i := range n / 2 {
			tid := pcommon.TraceID{byte(i), byte(i >> 8), byte(i >> 16), 1}
			for j := byte(1); j <= 2; j++ {
				s := spans.AppendEmpty()
				s.SetTraceID(tid)
				s.SetSpanID(pcommon.SpanID{byte(i), byte(i >> 8), byte(i >> 16), j})
				if j == 2 {
					s.SetParentSpanID(pcommon.SpanID{byte(i), byte(i >> 8), byte(i >> 16), 1})
				}
				s.SetStartTimestamp(now)
				s.SetEndTimestamp(now)
			}
		}
		return td
	}
	consume := func(td ptrace.Traces) {
		require.NoError(t, p.ConsumeTraces(context.Background(), td))
		p.tick()
	}
	heap := func() uint64 {
		runtime.GC()
		var m runtime.MemStats
		runtime.ReadMemStats(&m)
		return m.HeapAlloc
	}
	consume(batch(100))
	base := heap()
	consume(batch(400_000))
	for range 3 {
		consume(batch(100))
	}
	after := heap()
	grown := int64(after) - int64(base)
	t.Logf("heap after a 400,000-span batch and three of 100: %+d KiB", grown>>10)
	assert.Less(t, grown, int64(16<<20), "what a huge batch needed is given back")
	runtime.KeepAlive(p)
}
