package k8sstitchprocessor

import (
	"context"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
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
	for range 20 { // the pull
		h.clock = h.clock.Add(time.Second)
		h.flush()
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
