package k8sstitchprocessor

import (
	"context"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"go.opentelemetry.io/collector/pdata/pcommon"
	"go.opentelemetry.io/collector/pdata/ptrace"
)

// TestCRISpansWaitForTheirSyncPodWhileOtherTrafficFlows: as
// TestCRISpansWaitForTheirSyncPodPastWait, but other traces keep arriving
// during the pull (a gateway is never idle), so the kept filter rotates
// (every keepJoinedFor*wait = 9 s) while the CRI spans wait. Their trace
// must stay known until its root comes, however long root_wait lets it
// wait; seen in e2e TestRealKubelet: the third pod's RunPodSandbox and
// PodSandboxStatus, 12.6 s before their syncPod, never joined it.
func TestCRISpansWaitForTheirSyncPodWhileOtherTrafficFlows(t *testing.T) {
	h := newHarness(t, func(c *Config) { c.Wait = 3 * time.Second })
	batches := loadBatches(t, filepath.Join("testdata", "deployment_create", "input.json"))
	roots := ptrace.NewTraces()
	cri := 0
	for _, b := range batches {
		b.ResourceSpans().RemoveIf(func(rs ptrace.ResourceSpans) bool {
			rs.ScopeSpans().RemoveIf(func(ss ptrace.ScopeSpans) bool {
				ss.Spans().RemoveIf(func(s ptrace.Span) bool {
					if strings.HasPrefix(s.Name(), "runtime.v1.") {
						cri++
					}
					if s.Name() != "syncPod" {
						return false
					}
					s.SetEndTimestamp(s.EndTimestamp() + 20e9)
					out := roots.ResourceSpans().AppendEmpty()
					rs.Resource().CopyTo(out.Resource())
					s.CopyTo(out.ScopeSpans().AppendEmpty().Spans().AppendEmpty())
					return true
				})
				return ss.Spans().Len() == 0
			})
			return rs.ScopeSpans().Len() == 0
		})
	}
	require.Positive(t, cri)
	for _, b := range batches {
		h.feed(t, b)
	}
	for i := range 20 { // the pull, with the cluster's idle traffic
		h.clock = h.clock.Add(time.Second)
		noise := ptrace.NewTraces()
		tr := randomTrace(uint64(1000 + i))
		root := appSpan(noise, tr, pcommon.SpanID{}, pcommon.SpanID{1}, h.clock)
		appSpan(noise, tr, root.SpanID(), pcommon.SpanID{2}, h.clock)
		h.feed(t, noise)
	}
	h.feed(t, roots)
	require.NoError(t, h.p.ConsumeTraces(context.Background(), ptrace.NewTraces()))
	h.drain()

	tr := operationTrace(t, h.output(), "deployment.rollout")
	joined := 0
	for _, s := range tr.Spans {
		if strings.HasPrefix(s.Name, "runtime.v1.") && underSyncPod(s) {
			joined++
		}
	}
	assert.Equal(t, cri, joined, "every CRI span is in the operation, under its syncPod")
}
