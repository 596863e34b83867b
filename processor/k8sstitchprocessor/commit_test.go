package k8sstitchprocessor

import (
	"context"
	"errors"
	"path/filepath"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"go.opentelemetry.io/collector/consumer"
	"go.opentelemetry.io/collector/consumer/consumertest"
	"go.opentelemetry.io/collector/pdata/pcommon"
	"go.opentelemetry.io/collector/pdata/ptrace"

	"github.com/kubestitch/kubestitch/internal/fragment"
)

// refusing is a next consumer that refuses while refuse is set, as an
// exporter's full queue or memory_limiter downstream would.
type refusing struct {
	consumertest.TracesSink
	refuse bool
}

func (r *refusing) ConsumeTraces(ctx context.Context, td ptrace.Traces) error {
	if r.refuse {
		return errors.New("refused")
	}
	return r.TracesSink.ConsumeTraces(ctx, td)
}

func (r *refusing) Capabilities() consumer.Capabilities { return consumer.Capabilities{} }

// TestRefusedBatchIsNotADuplicateOnRetry: the commit point. A batch the
// next consumer refuses is sent again by its sender (the OTLP exporter
// upstream, k8swatch's retry); its fragments must then go on, not be
// dropped as duplicates of spans that never went anywhere.
func TestRefusedBatchIsNotADuplicateOnRetry(t *testing.T) {
	h := newHarness(t, nil)
	next := &refusing{}
	h.p.next = next
	flush := func() {
		if out := h.p.tick(); out.SpanCount() > 0 {
			require.NoError(t, next.TracesSink.ConsumeTraces(context.Background(), out))
		}
	}
	batches := loadBatches(t, filepath.Join("testdata", "deployment_create", "input.json"))
	for i, b := range batches {
		retry := ptrace.NewTraces()
		b.CopyTo(retry)
		next.refuse = i%2 == 0 // every other batch is refused once
		if end := latestEnd(b); end.After(h.clock) {
			h.clock = end
		}
		err := h.p.ConsumeTraces(context.Background(), b)
		if next.refuse && b.SpanCount() > 0 {
			require.Error(t, err, "the refusal reaches the sender")
			next.refuse = false
			require.NoError(t, h.p.ConsumeTraces(context.Background(), retry), "the sender's retry")
		}
		next.refuse = false
		flush()
	}
	h.clock = h.clock.Add(time.Minute)
	flush()

	// Fragments are deduplicated by span ID: each goes on exactly once.
	// App spans have no identity to deduplicate by: one that waited when
	// its batch was refused comes out again with the retry (at least
	// once, as everywhere in the collector), never not at all.
	wantIDs := map[pcommon.SpanID]bool{}
	fragments := map[pcommon.SpanID]bool{}
	for _, b := range loadBatches(t, filepath.Join("testdata", "deployment_create", "input.json")) {
		forEachSpan(b, func(_ pcommon.Map, s ptrace.Span) {
			wantIDs[s.SpanID()] = true
			if _, ok := s.Attributes().Get(fragment.KeyLevel); ok {
				fragments[s.SpanID()] = true
			}
		})
	}
	ids := map[pcommon.SpanID]int{}
	for _, td := range next.AllTraces() {
		forEachSpan(td, func(_ pcommon.Map, s ptrace.Span) { ids[s.SpanID()]++ })
	}
	for id := range wantIDs {
		if fragments[id] {
			assert.Equal(t, 1, ids[id], "fragment %s went on %d times", id, ids[id])
		} else {
			assert.Positive(t, ids[id], "span %s was lost", id)
		}
	}
	all := ptrace.NewTraces()
	for _, td := range next.AllTraces() {
		td.ResourceSpans().MoveAndAppendTo(all.ResourceSpans())
	}
	tr := operationTrace(t, all, "deployment.rollout")
	assert.Len(t, tr.Roots, 1)
	assert.Empty(t, tr.Orphans)
}
