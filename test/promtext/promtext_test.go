package promtext

import (
	"math"
	"net/http"
	"net/http/httptest"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

const exposition = `# HELP apiserver_request_total Counter of apiserver requests.
# TYPE apiserver_request_total counter
apiserver_request_total{code="201",resource="pods",subresource="",verb="POST"} 3
apiserver_request_total{code="201",resource="pods",subresource="binding",verb="POST"} 2
apiserver_request_total{code="200",resource="pods",subresource="status",verb="PATCH"} 7
# a comment that is no HELP or TYPE
# TYPE otelcol_k8sstitch_spans_shed counter
otelcol_k8sstitch_spans_shed{reason="bytes"} 1
otelcol_k8sstitch_spans_shed{reason="age"} 4
# TYPE otelcol_process_runtime_heap_alloc_bytes gauge
otelcol_process_runtime_heap_alloc_bytes 1.5e+07
# TYPE quoted gauge
quoted{path="C:\\tmp",msg="say \"hi\"\nbye"} 1
# TYPE odd gauge
odd{v="nan"} NaN
odd{v="inf"} +Inf
odd{v="-inf"} -Inf
# TYPE request_duration_seconds histogram
request_duration_seconds_bucket{op="get",le="0.1"} 2
request_duration_seconds_bucket{op="get",le="1"} 5
request_duration_seconds_bucket{op="get",le="+Inf"} 6
request_duration_seconds_sum{op="get"} 3.25
request_duration_seconds_count{op="get"} 6
untyped_one 42 1700000000000
`

func TestParse(t *testing.T) {
	ss, err := Parse(exposition)
	require.NoError(t, err)

	assert.Equal(t, 12.0, ss.Sum("apiserver_request_total"))
	assert.Equal(t, 3.0, ss.Sum("apiserver_request_total", "verb", "POST", "subresource", ""))
	assert.Equal(t, 2.0, ss.Sum("apiserver_request_total", "subresource", "binding"))
	assert.Zero(t, ss.Sum("apiserver_request_total", "verb", "DELETE"))

	// A counter is found by its name and by its _total name.
	assert.Equal(t, 5.0, ss.Sum("otelcol_k8sstitch_spans_shed"))
	assert.Equal(t, 12.0, ss.Sum("apiserver_request"))
	assert.Len(t, ss.Values("otelcol_k8sstitch_spans_shed"), 2)

	v, ok := ss.Value("otelcol_process_runtime_heap_alloc_bytes")
	assert.True(t, ok)
	assert.Equal(t, 1.5e7, v)
	_, ok = ss.Value("absent")
	assert.False(t, ok)

	// Escaped quotes, backslashes and newlines in label values.
	q := ss.Of("quoted")
	require.Len(t, q, 1)
	assert.Equal(t, `C:\tmp`, q[0].Labels["path"])
	assert.Equal(t, "say \"hi\"\nbye", q[0].Labels["msg"])

	v, _ = ss.Value("odd", "v", "nan")
	assert.True(t, math.IsNaN(v))
	v, _ = ss.Value("odd", "v", "inf")
	assert.True(t, math.IsInf(v, 1))
	v, _ = ss.Value("odd", "v", "-inf")
	assert.True(t, math.IsInf(v, -1))

	// A histogram's lines come back as they were served.
	assert.Equal(t, []float64{2, 5, 6}, ss.Values("request_duration_seconds_bucket", "op", "get"))
	v, _ = ss.Value("request_duration_seconds_bucket", "le", "+Inf")
	assert.Equal(t, 6.0, v)
	v, _ = ss.Value("request_duration_seconds_bucket", "le", "0.1")
	assert.Equal(t, 2.0, v)
	assert.Equal(t, 3.25, ss.Sum("request_duration_seconds_sum"))
	assert.Equal(t, 6.0, ss.Sum("request_duration_seconds_count"))
	assert.Empty(t, ss.Of("request_duration_seconds"), "no sample carries the family's bare name")

	// A timestamp is read past, comments are no samples.
	assert.Equal(t, 42.0, ss.Sum("untyped_one"))
	names := ss.Names()
	assert.True(t, names["request_duration_seconds_bucket"])
	assert.False(t, names["a"])
	assert.Len(t, names, 9)
}

func TestSampleString(t *testing.T) {
	s := Sample{Name: "x_total", Labels: map[string]string{"b": `q"`, "a": "1"}, Value: math.Inf(1)}
	assert.Equal(t, `x_total{a="1",b="q\""} +Inf`, s.String())
	assert.Equal(t, "y 0.5", Sample{Name: "y", Value: 0.5}.String())
}

func TestParseRejectsMalformed(t *testing.T) {
	_, err := Parse("metric{a=\"1\" 3\n")
	assert.Error(t, err)
}

func TestScrape(t *testing.T) {
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
		_, _ = w.Write([]byte(exposition))
	}))
	defer srv.Close()
	ss, err := Scrape(t.Context(), nil, srv.URL+"/metrics")
	require.NoError(t, err)
	assert.Equal(t, 5.0, ss.Sum("otelcol_k8sstitch_spans_shed"))

	_, err = Scrape(t.Context(), nil, srv.URL+"\x00")
	assert.Error(t, err)
}
