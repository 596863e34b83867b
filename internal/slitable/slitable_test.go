package slitable

import (
	"bytes"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"go.opentelemetry.io/collector/pdata/pcommon"
	"go.opentelemetry.io/collector/pdata/pmetric"
)

// line is one flush of the connector: a histogram point per (span name,
// namespace) with bounds 100/200/500 ms.
func line(t *testing.T, at int64, points map[[2]string][]uint64) []byte {
	return lineWith(t, at, points, true)
}

func lineWith(t *testing.T, at int64, points map[[2]string][]uint64, exemplars bool) []byte {
	md := pmetric.NewMetrics()
	m := md.ResourceMetrics().AppendEmpty().ScopeMetrics().AppendEmpty().Metrics().AppendEmpty()
	m.SetName(DurationMetric)
	m.SetUnit("ms")
	h := m.SetEmptyHistogram()
	for k, counts := range points {
		dp := h.DataPoints().AppendEmpty()
		dp.SetTimestamp(pcommon.Timestamp(at))
		dp.Attributes().PutStr("span.name", k[0])
		dp.Attributes().PutStr("k8s.namespace.name", k[1])
		dp.ExplicitBounds().FromRaw([]float64{100, 200, 500})
		dp.BucketCounts().FromRaw(counts)
		var n uint64
		for _, c := range counts {
			n += c
		}
		dp.SetCount(n)
		if !exemplars {
			continue
		}
		ex := dp.Exemplars().AppendEmpty()
		ex.SetDoubleValue(150)
		ex.SetTraceID(pcommon.TraceID{1, 2, 3})
	}
	b, err := (&pmetric.JSONMarshaler{}).MarshalMetrics(md)
	require.NoError(t, err)
	return append(b, '\n')
}

func TestQuantilesFromTheNewestPointOfEachSeries(t *testing.T) {
	var f bytes.Buffer
	f.Write(line(t, 1, map[[2]string][]uint64{{"pod_startup", "a"}: {0, 4, 0, 0}}))
	// Cumulative: the next flush repeats and grows the same series; a
	// second namespace adds a series of its own.
	f.Write(line(t, 2, map[[2]string][]uint64{{"pod_startup", "a"}: {0, 10, 0, 0}, {"pod_startup", "b"}: {0, 0, 10, 0}, {"image.pull", "a"}: {1, 0, 0, 0}}))

	// A later flush without new spans: the same counts, no exemplars.
	f.Write(lineWith(t, 3, map[[2]string][]uint64{{"pod_startup", "a"}: {0, 10, 0, 0}, {"pod_startup", "b"}: {0, 0, 10, 0}, {"image.pull", "a"}: {1, 0, 0, 0}}, false))

	rows, err := Read(&f, []string{"pod_startup"})
	require.NoError(t, err)
	require.Len(t, rows, 2)
	r := rows[0]
	assert.Equal(t, "pod_startup", r.Name, "the names asked for first")
	assert.Equal(t, uint64(20), r.Count, "newest point per series, summed over series")
	assert.Equal(t, 200*time.Millisecond, r.P50, "rank 10 of 20 ends the 100-200 ms bucket")
	assert.Equal(t, 494*time.Millisecond, r.P99, "rank 19.8: 98% into the 200-500 ms bucket")
	assert.Equal(t, pcommon.TraceID{1, 2, 3}.String(), r.Exemplar, "exemplars outlive the flush that sent them")
	assert.Equal(t, "image.pull", rows[1].Name)
	assert.Equal(t, 50*time.Millisecond, rows[1].P50)
}
