package k8sstitchprocessor

import (
	"context"
	"encoding/binary"
	"fmt"
	"runtime"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"go.opentelemetry.io/collector/component/componenttest"
	"go.opentelemetry.io/collector/pdata/pcommon"
	"go.opentelemetry.io/collector/pdata/ptrace"
	"go.opentelemetry.io/collector/processor/processortest"
	"go.opentelemetry.io/otel/sdk/metric/metricdata"
)

// hugeResourceRequest is one OTLP request with a 2 MiB resource and n
// tiny spans, each the only span of a random trace: each waits the whole
// wait for a root or a hint that never comes.
func hugeResourceRequest(n int) ptrace.Traces {
	td := ptrace.NewTraces()
	rs := td.ResourceSpans().AppendEmpty()
	// A service that joins (a sender posing as the kubelet): an app's
	// spans would pass at once instead of waiting.
	rs.Resource().Attributes().PutStr("service.name", "kubelet")
	// 2 MiB in the shapes a copy cannot share: bytes (copied, where a
	// string's bytes are shared) and many small attributes (each one a
	// key-value entry of its own in every copy).
	ra := rs.Resource().Attributes()
	ra.PutEmptyBytes("padding").FromRaw([]byte(strings.Repeat("p", 1<<20)))
	for i := range 16 << 10 {
		ra.PutInt(fmt.Sprintf("a%05d", i), int64(i))
	}
	spans := rs.ScopeSpans().AppendEmpty().Spans()
	spans.EnsureCapacity(n)
	for i := range n {
		s := spans.AppendEmpty()
		var tid pcommon.TraceID
		binary.BigEndian.PutUint64(tid[:8], uint64(i)+1)
		binary.BigEndian.PutUint64(tid[8:], 0x5eed)
		s.SetTraceID(tid)
		s.SetSpanID(pcommon.SpanID{1})
		s.SetParentSpanID(pcommon.SpanID{2}) // its root never comes
		s.SetName("x")
		s.SetStartTimestamp(pcommon.Timestamp(1_700_000_000e9))
		s.SetEndTimestamp(pcommon.Timestamp(1_700_000_000e9 + 1000))
	}
	return td
}

// TestWaitingSpansShareTheirResource: the trust issue's request, one 2 MiB
// resource over 50,000 spans that all wait. Each waiting span held its
// own copy of the resource: ~100 GiB asked inside one ConsumeTraces call,
// before memory_limiter could react. Shared, the buffer holds one copy;
// bounded in bytes, what does not fit leaves early and is counted; and
// every span comes out, once.
func TestWaitingSpansShareTheirResource(t *testing.T) {
	const n = 50_000
	for _, tc := range []struct {
		name     string
		maxBytes int
		shed     bool
	}{
		{"default bounds", defaultMaxWaitingBytes, false},
		{"max_waiting_bytes 4 MiB", 4 << 20, true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			tel := componenttest.NewTelemetry()
			t.Cleanup(func() { _ = tel.Shutdown(context.Background()) })
			set := processortest.NewNopSettings(metadataType)
			set.TelemetrySettings = tel.NewTelemetrySettings()
			h := newHarnessWith(t, set, func(c *Config) { c.MaxWaitingBytes = tc.maxBytes })
			h.clock = time.Unix(1_700_000_000, 0)
			td := hugeResourceRequest(n)

			var before, after runtime.MemStats
			runtime.GC()
			runtime.ReadMemStats(&before)
			require.NoError(t, h.p.ConsumeTraces(context.Background(), td))
			td = ptrace.Traces{} // the request is gone once answered
			runtime.GC()
			runtime.ReadMemStats(&after)
			held := int64(after.HeapAlloc) - int64(before.HeapAlloc)
			t.Logf("%d spans under a 2 MiB resource: %d waiting, %d MiB held, buffer at %d of %d bytes", n, h.p.waiting.len(), held>>20, h.p.waiting.bytes, tc.maxBytes)
			assert.Less(t, held, int64(256<<20), "far below a 1 GiB gateway")
			assert.LessOrEqual(t, h.p.waiting.bytes, tc.maxBytes)

			m, err := tel.GetMetric("otelcol_k8sstitch_spans_shed")
			if tc.shed {
				require.NoError(t, err, "what did not fit is counted")
				assert.Positive(t, m.Data.(metricdata.Sum[int64]).DataPoints[0].Value)
			} else {
				assert.Error(t, err, "nothing shed")
				assert.Equal(t, n, h.p.waiting.len())
			}
			h.drain()
			assert.Equal(t, n, h.sink.SpanCount(), "every span came out")
			resources := 0
			for _, out := range h.sink.AllTraces() {
				resources += out.ResourceSpans().Len()
			}
			assert.LessOrEqual(t, resources, 4, "a released batch copies the resource once, not per span")
		})
	}
}
