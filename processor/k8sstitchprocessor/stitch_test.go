package k8sstitchprocessor

import (
	"context"
	"fmt"
	"math/rand/v2"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"go.opentelemetry.io/collector/pdata/ptrace"

	"github.com/kubestitch/kubestitch/internal/waterfall"
)

// TestDeploymentCreateStitchesIntoOneTrace runs a recorded Deployment
// create (3 replicas, real kube-apiserver spans and k8swatch fragments from
// the local control plane, plus kubelet syncPod traces in the recorded
// kubelet shape) through the processor.
func TestDeploymentCreateStitchesIntoOneTrace(t *testing.T) {
	// prepare
	h := newHarness(t, nil)
	batches := loadBatches(t, filepath.Join("testdata", "deployment_create", "input.json"))
	in := 0
	for _, b := range batches {
		in += b.SpanCount()
	}

	// test
	for _, b := range batches {
		h.feed(t, b)
	}
	h.drain()
	out := h.output()

	// verify
	assert.Equal(t, in, out.SpanCount(), "nothing lost, nothing doubled")
	tr := operationTrace(t, out, "deployment.rollout")
	assert.Len(t, tr.Roots, 1, "one root")
	assert.Equal(t, "deployment.rollout", tr.Root.Name)
	assert.Empty(t, tr.Orphans, "every parent is in the trace")
	assert.Zero(t, tr.Duplicates)
	for _, svc := range []string{"apiserver", "kube-scheduler", "kubelet", "cri-runtime", "kube-controller-manager"} {
		assert.Contains(t, tr.Services(), svc)
	}
	syncs := 0
	for _, s := range tr.Spans {
		if s.Name == "syncPod" {
			syncs++
			require.NotNil(t, s.Parent)
			assert.Equal(t, "pod.startup", s.Parent.Name, "the kubelet's syncPod hangs under its pod")
			assert.Len(t, s.Children, 4, "with its CRI client calls")
			for _, c := range s.Children {
				assert.Len(t, c.Children, 1, "each with the runtime's server span")
			}
		}
		if strings.HasSuffix(s.Object, "/binding") {
			assert.Equal(t, "pod.schedule", s.Parent.Name, "the scheduler's binding hangs under pod.schedule")
		}
	}
	assert.Equal(t, 3, syncs)
	checkGolden(t, filepath.Join("testdata", "deployment_create", "tree.txt"), renderTree(tr))
}

func TestPeriodicSyncOutsideOperationsPassesThrough(t *testing.T) {
	h := newHarness(t, nil)
	batches := loadBatches(t, filepath.Join("testdata", "deployment_create", "input.json"))
	late := lateSync(t, batches[len(batches)-1])
	for _, b := range batches {
		h.feed(t, b)
	}
	h.drain()
	for _, tr := range waterfall.Build(h.output()) {
		for _, s := range tr.Spans {
			if s.SpanID == late.SpanID() {
				assert.Equal(t, late.TraceID(), s.TraceID, "unchanged")
				assert.True(t, s.ParentID.IsEmpty())
				_, rewritten := s.Attributes.Get("kubestitch.original.trace_id")
				assert.False(t, rewritten)
				return
			}
		}
	}
	t.Fatal("the late syncPod was lost")
}

func lateSync(t testing.TB, td ptrace.Traces) ptrace.Span {
	var late ptrace.Span
	var at time.Time
	spans := td.ResourceSpans().At(0).ScopeSpans().At(0).Spans()
	for i := 0; i < spans.Len(); i++ {
		if s := spans.At(i); s.Name() == "syncPod" && s.StartTimestamp().AsTime().After(at) {
			late, at = s, s.StartTimestamp().AsTime()
		}
	}
	c := ptrace.NewSpan()
	late.CopyTo(c)
	return c
}

// TestOrderIndependence: the same spans interleaved in another order and
// split into other batches yield the same tree, as long as they arrive
// within wait. Fragments arrive in any order; the spans of one app trace
// keep the order a process exports them in (children end, and leave,
// before their parent), as every OTel SDK and the batch processor do.
func TestOrderIndependence(t *testing.T) {
	want := ""
	for seed := range uint64(8) {
		batches := loadBatches(t, filepath.Join("testdata", "deployment_create", "input.json"))
		var spans []singleSpan
		for _, b := range batches {
			spans = append(spans, splitSpans(b)...)
		}
		r := rand.New(rand.NewPCG(seed, seed+1))
		if seed > 0 {
			spans = causalShuffle(r, spans)
		}
		h := newHarness(t, func(c *Config) { c.Wait = time.Hour; c.OperationTimeout = 2 * time.Hour })
		for len(spans) > 0 {
			n := min(len(spans), 1+r.IntN(200))
			td := ptrace.NewTraces()
			for _, s := range spans[:n] {
				s.td.ResourceSpans().At(0).CopyTo(td.ResourceSpans().AppendEmpty())
			}
			spans = spans[n:]
			require.NoError(t, h.p.ConsumeTraces(context.Background(), td))
		}
		h.clock = h.clock.Add(2 * time.Hour)
		h.drain()
		got := renderTree(operationTrace(t, h.output(), "deployment.rollout"))
		if seed == 0 {
			want = got
			continue
		}
		assert.Equal(t, want, got, "seed %d", seed)
	}
}

type singleSpan struct{ td ptrace.Traces }

func splitSpans(td ptrace.Traces) []singleSpan {
	var out []singleSpan
	rss := td.ResourceSpans()
	for i := 0; i < rss.Len(); i++ {
		sss := rss.At(i).ScopeSpans()
		for j := 0; j < sss.Len(); j++ {
			spans := sss.At(j).Spans()
			for k := 0; k < spans.Len(); k++ {
				n := ptrace.NewTraces()
				rs := n.ResourceSpans().AppendEmpty()
				rss.At(i).Resource().CopyTo(rs.Resource())
				ss := rs.ScopeSpans().AppendEmpty()
				sss.At(j).Scope().CopyTo(ss.Scope())
				spans.At(k).CopyTo(ss.Spans().AppendEmpty())
				out = append(out, singleSpan{n})
			}
		}
	}
	return out
}

func TestDuplicateFragmentsAreDroppedOnce(t *testing.T) {
	h := newHarness(t, nil)
	batches := loadBatches(t, filepath.Join("testdata", "deployment_create", "input.json"))
	in := 0
	for _, b := range batches {
		in += b.SpanCount()
	}
	for _, b := range batches {
		again := ptrace.NewTraces()
		for _, s := range splitSpans(b) {
			if _, ok := readFragment(s.span()); ok {
				s.td.ResourceSpans().MoveAndAppendTo(again.ResourceSpans())
			}
		}
		h.feed(t, b)
		// A second agent, a relist or a restart sends the fragments again.
		h.feed(t, again)
	}
	h.drain()
	out := h.output()
	assert.Equal(t, in, out.SpanCount(), "every fragment once")
	tr := operationTrace(t, out, "deployment.rollout")
	assert.Zero(t, tr.Duplicates)
}

// causalShuffle interleaves spans at random, keeping each app trace's spans
// in end order (children before parents); every fragment stands alone.
func causalShuffle(r *rand.Rand, spans []singleSpan) []singleSpan {
	queues := map[string][]singleSpan{}
	var keys []string
	for i, s := range spans {
		sp := s.span()
		k := sp.TraceID().String()
		if _, ok := readFragment(sp); ok {
			k = fmt.Sprintf("fragment-%d", i)
		}
		if _, ok := queues[k]; !ok {
			keys = append(keys, k)
		}
		queues[k] = append(queues[k], s)
	}
	for _, q := range queues {
		slices.SortStableFunc(q, func(a, b singleSpan) int {
			return a.span().EndTimestamp().AsTime().Compare(b.span().EndTimestamp().AsTime())
		})
	}
	out := make([]singleSpan, 0, len(spans))
	for len(keys) > 0 {
		i := r.IntN(len(keys))
		q := queues[keys[i]]
		out = append(out, q[0])
		if len(q) == 1 {
			keys = append(keys[:i], keys[i+1:]...)
		} else {
			queues[keys[i]] = q[1:]
		}
	}
	return out
}

func (s singleSpan) span() ptrace.Span {
	return s.td.ResourceSpans().At(0).ScopeSpans().At(0).Spans().At(0)
}
