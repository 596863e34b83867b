package e2e

import (
	"context"
	"encoding/binary"
	"fmt"
	"os"
	"regexp"
	"strconv"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"go.opentelemetry.io/collector/pdata/pcommon"
	"go.opentelemetry.io/collector/pdata/ptrace"
	"go.opentelemetry.io/collector/pdata/ptrace/ptraceotlp"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/kubestitch/kubestitch/internal/fragment"
	"github.com/kubestitch/kubestitch/localcluster"
	"github.com/kubestitch/kubestitch/test/harness"
	"github.com/kubestitch/kubestitch/test/otlpsink"
	"github.com/kubestitch/kubestitch/test/promtext"
)

const loadLimitMiB = 100

// noiseRequest is 1,000 spans shaped like kube-apiserver lease renewals:
// traffic that joins no operation.
func noiseRequest(seq uint64) ptraceotlp.ExportRequest {
	td := ptrace.NewTraces()
	rs := td.ResourceSpans().AppendEmpty()
	// As the kube-apiserver sends them: an app's spans would pass without
	// a look at their hints.
	rs.Resource().Attributes().PutStr("service.name", "apiserver")
	spans := rs.ScopeSpans().AppendEmpty().Spans()
	now := time.Now()
	for i := range uint64(250) {
		var tid pcommon.TraceID
		binary.BigEndian.PutUint64(tid[:8], seq)
		binary.BigEndian.PutUint64(tid[8:], i+1)
		var parent pcommon.SpanID
		for j := range uint64(4) {
			s := spans.AppendEmpty()
			s.SetTraceID(tid)
			var sid pcommon.SpanID
			binary.BigEndian.PutUint64(sid[:], i*4+j+1)
			s.SetSpanID(sid)
			s.SetParentSpanID(parent)
			parent = sid
			s.SetName("PUT /apis/coordination.k8s.io/v1/namespaces/{:namespace}/leases/{:name}")
			s.SetStartTimestamp(pcommon.NewTimestampFromTime(now))
			s.SetEndTimestamp(pcommon.NewTimestampFromTime(now.Add(time.Millisecond)))
			s.Attributes().PutStr("http.target", "/apis/coordination.k8s.io/v1/namespaces/kube-node-lease/leases/node-1")
		}
	}
	return ptraceotlp.NewExportRequestFromTraces(td)
}

// TestRolloutUnderLoad: a 50-replica rollout while a generator sends the
// gateway far more spans than the rollout itself (~10x): memory_limiter
// refuses what does not fit and counts it, the gateway's memory stays
// bounded, and the operation trace is still whole, because the receiver
// retries refused fragments.
func TestRolloutUnderLoad(t *testing.T) {
	e := harness.StartEnv(t, harness.EnvOptions{
		GatewayOverrides: []string{
			fmt.Sprintf("yaml:processors::memory_limiter::limit_mib: %d", loadLimitMiB),
			"yaml:processors::memory_limiter::spike_limit_mib: 25",
		},
		// As in deploy/: the Go runtime returns memory to keep the
		// process, not only the heap memory_limiter watches, near the limit.
		GatewayEnv: []string{fmt.Sprintf("GOMEMLIMIT=%dMiB", loadLimitMiB)},
	})
	ctx := t.Context()
	client := otlpsink.Client(t, e.Gateway.OTLPEndpoint)

	loadCtx, stopLoad := context.WithCancel(ctx)
	var sent, refused atomic.Int64
	var wg sync.WaitGroup
	for g := range 2 {
		wg.Go(func() {
			for seq := uint64(g) << 40; loadCtx.Err() == nil; seq++ {
				_, err := client.Export(loadCtx, noiseRequest(seq))
				switch {
				case loadCtx.Err() != nil:
					// Cancelled by the end of the load, not refused.
				case err != nil:
					refused.Add(1000)
				default:
					sent.Add(1000)
				}
			}
		})
	}
	start := time.Now()
	_, err := e.Cluster.Client.AppsV1().Deployments("default").Create(ctx, localcluster.DemoDeployment("busy", 50), metav1.CreateOptions{})
	require.NoError(t, err)
	tr, _ := e.WaitTrace(t, 3*traceTimeout, byRoot(fragment.PhaseDeploymentRollout, "Deployment default/busy", "gen:1"), complete(50))
	// Keep the pressure on for a while after the rollout too.
	time.Sleep(time.Until(start.Add(10 * time.Second)))
	stopLoad()
	wg.Wait()
	elapsed := time.Since(start)

	hwm := vmHWM(t, e.Gateway.PID())
	metrics := scrape(t, e.Gateway.MetricsEndpoint)
	opSpans := len(tr.Spans)
	t.Logf("load: %d spans accepted, %d refused in %s (%.0f spans/s offered); rollout trace %d spans; gateway VmHWM %d MiB (memory_limiter limit %d MiB); refused by memory_limiter: %s",
		sent.Load(), refused.Load(), elapsed.Round(time.Second), float64(sent.Load()+refused.Load())/elapsed.Seconds(), opSpans, hwm>>20, loadLimitMiB, metric(metrics, "otelcol_receiver_refused_spans"))
	assert.Greater(t, float64(sent.Load()+refused.Load()), 10*float64(opSpans), "the generator offered at least 10x the operation's spans")
	if refused.Load() > 0 {
		assert.NotEqual(t, "0", metric(metrics, "otelcol_receiver_refused_spans"), "what was refused is counted")
	}
	assert.Less(t, hwm>>20, int64(3*loadLimitMiB), "gateway memory bounded near the limit")
	// Whole, not silently wrong: every pod has its phases and one root.
	assert.Len(t, tr.Roots, 1)
	assert.Empty(t, tr.Orphans)
	assert.Zero(t, tr.Duplicates)
}

func vmHWM(t *testing.T, pid int) int64 {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid))
	require.NoError(t, err)
	m := regexp.MustCompile(`VmHWM:\s+(\d+) kB`).FindSubmatch(b)
	require.NotNil(t, m)
	kb, _ := strconv.ParseInt(string(m[1]), 10, 64)
	return kb << 10
}

// scrape reads the collector's own telemetry served on endpoint.
func scrape(t *testing.T, endpoint string) promtext.Samples {
	samples, err := promtext.Scrape(t.Context(), nil, "http://"+endpoint+"/metrics")
	require.NoError(t, err)
	return samples
}

// metric sums the samples of a Prometheus metric, formatted.
func metric(samples promtext.Samples, name string) string {
	return strconv.FormatFloat(samples.Sum(name), 'f', 0, 64)
}
