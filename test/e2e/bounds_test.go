package e2e

import (
	"encoding/binary"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"go.opentelemetry.io/collector/pdata/pcommon"
	"go.opentelemetry.io/collector/pdata/ptrace"
	"go.opentelemetry.io/collector/pdata/ptrace/ptraceotlp"
	"google.golang.org/grpc"

	"github.com/kubestitch/kubestitch/internal/waterfall"
	"github.com/kubestitch/kubestitch/test/harness"
	"github.com/kubestitch/kubestitch/test/otlpsink"
)

// TestHugeResourceRequestKeepsTheGatewayBounded is the trust issue's
// request against a gateway process with 1 GiB for the Go runtime
// (GOMEMLIMIT, as deploy/ sets it): one OTLP request whose 2 MiB resource
// (1.5 MiB of bytes and 16,384 attributes) covers 50,000 tiny spans, each
// the only span of its trace, so each waits the whole wait. Copied per
// waiting span that was ~87 GiB; the gateway must take it and stay far
// below its limit, and every span must reach the backend.
func TestHugeResourceRequestKeepsTheGatewayBounded(t *testing.T) {
	const spans = 50_000
	e := harness.StartEnv(t, harness.EnvOptions{
		GatewayOverrides: []string{
			"yaml:receivers::otlp::protocols::grpc::max_recv_msg_size_mib: 16",
			"yaml:processors::memory_limiter::limit_mib: 1024",
			"yaml:processors::memory_limiter::spike_limit_mib: 256",
			// Every flood span names a parent that never comes: with the
			// default root_wait (2m) it would wait that long for it.
			"yaml:processors::k8s_stitch::root_wait: 10s",
		},
		GatewayEnv: []string{"GOMEMLIMIT=1GiB"},
	})
	td := ptrace.NewTraces()
	rs := td.ResourceSpans().AppendEmpty()
	ra := rs.Resource().Attributes()
	// A sender posing as the kubelet: an app's spans (a service not in
	// join_services) would pass at once, without waiting.
	ra.PutStr("service.name", "kubelet")
	ra.PutStr("flood", "yes")
	ra.PutEmptyBytes("padding").FromRaw([]byte(strings.Repeat("p", 3<<19)))
	for i := range 16 << 10 {
		ra.PutInt(fmt.Sprintf("a%05d", i), int64(i))
	}
	ss := rs.ScopeSpans().AppendEmpty().Spans()
	now := time.Now()
	for i := range spans {
		s := ss.AppendEmpty()
		var tid pcommon.TraceID
		binary.BigEndian.PutUint64(tid[:8], uint64(i)+1)
		binary.BigEndian.PutUint64(tid[8:], 0xf100d)
		s.SetTraceID(tid)
		s.SetSpanID(pcommon.SpanID{1})
		s.SetParentSpanID(pcommon.SpanID{2})
		s.SetName("x")
		s.SetStartTimestamp(pcommon.NewTimestampFromTime(now))
		s.SetEndTimestamp(pcommon.NewTimestampFromTime(now.Add(time.Millisecond)))
	}
	client := otlpsink.Client(t, e.Gateway.OTLPEndpoint, grpc.WithDefaultCallOptions(grpc.MaxCallSendMsgSize(16<<20)))
	before := vmHWM(t, e.Gateway.PID())
	_, err := client.Export(t.Context(), ptraceotlp.NewExportRequestFromTraces(td))
	require.NoError(t, err, "the gateway takes the request")

	e.WaitFor(t, "every flood span reaches the backend", 2*time.Minute, func() (bool, string) {
		out, err := waterfall.ReadTraces(e.Gateway.TracesFile)
		if err != nil {
			return false, err.Error()
		}
		n := 0
		for i := 0; i < out.ResourceSpans().Len(); i++ {
			if _, ok := out.ResourceSpans().At(i).Resource().Attributes().Get("flood"); ok {
				n += out.ResourceSpans().At(i).ScopeSpans().At(0).Spans().Len()
			}
		}
		return n == spans, fmt.Sprintf("%d of %d flood spans at the backend", n, spans)
	})
	hwm := vmHWM(t, e.Gateway.PID())
	metrics := scrape(t, e.Gateway.MetricsEndpoint)
	t.Logf("gateway VmHWM %d MiB before, %d MiB after the request; waited %s, shed %s", before>>20, hwm>>20,
		metric(metrics, "otelcol_k8sstitch_spans_waited"), metric(metrics, "otelcol_k8sstitch_spans_shed"))
	assert.Less(t, hwm, int64(512<<20), "far below the 1 GiB limit")
	assert.NotEqual(t, "0", metric(metrics, "otelcol_k8sstitch_spans_waited"), "the spans waited")
}
