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

	"github.com/kubestitch/kubestitch/internal/waterfall"
)

// TestCRISpansWaitForTheirSyncPodPastWait: the kubelet exports a pod
// start's CRI client spans as each call ends, and their root, syncPod, when
// the pod has started: after an image pull that can take longer than wait.
// Spans whose trace's root has not come, and which name no object, keep
// waiting for it (up to root_wait) and join the operation with it, rather
// than leave after wait as a trace of their own.
func TestCRISpansWaitForTheirSyncPodPastWait(t *testing.T) {
	criSpansWaitForTheirSyncPod(t, func(h *stitchHarness, _ int) { h.flush() })
}

// TestCRISpansWaitForTheirSyncPodWhileOtherTrafficFlows: the same, but
// other traces keep arriving during the pull (a gateway is never idle), so
// the kept filter rotates (every keepJoinedFor*wait = 9 s) while the CRI
// spans wait. Their trace must stay known until its root comes, however
// long root_wait lets it wait; seen in e2e TestRealKubelet: the third
// pod's RunPodSandbox and PodSandboxStatus, 12.6 s before their syncPod,
// never joined it.
func TestCRISpansWaitForTheirSyncPodWhileOtherTrafficFlows(t *testing.T) {
	criSpansWaitForTheirSyncPod(t, func(h *stitchHarness, i int) {
		noise := ptrace.NewTraces()
		tr := randomTrace(uint64(1000 + i))
		root := appSpan(noise, tr, pcommon.SpanID{}, pcommon.SpanID{1}, h.clock)
		appSpan(noise, tr, root.SpanID(), pcommon.SpanID{2}, h.clock)
		h.feed(t, noise)
	})
}

// criSpansWaitForTheirSyncPod feeds deployment_create's spans with every
// syncPod held back 20 s (a pull), calling duringPull each second of it,
// and checks that every CRI span joined the operation under its syncPod.
func criSpansWaitForTheirSyncPod(t *testing.T, duringPull func(h *stitchHarness, second int)) {
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
					// The root leaves the kubelet 20 s after its children.
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
	for i := range 20 { // the pull
		h.clock = h.clock.Add(time.Second)
		duringPull(h, i)
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
	assert.Equal(t, cri, joined, "every CRI client span is in the operation, under its syncPod")
	for _, other := range waterfall.Build(h.output()) {
		if other.ID != tr.ID {
			for _, s := range other.Spans {
				assert.False(t, strings.HasPrefix(s.Name, "runtime.v1."), "%s left as a trace of its own", s.Name)
			}
		}
	}
}

// underSyncPod: the span hangs (through the runtime's server span, for
// those) under a syncPod.
func underSyncPod(s *waterfall.Node) bool {
	for p := s.Parent; p != nil; p = p.Parent {
		if p.Name == "syncPod" {
			return true
		}
	}
	return false
}
