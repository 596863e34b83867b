package k8sstitchprocessor

import (
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"go.opentelemetry.io/collector/pdata/pcommon"
	"go.opentelemetry.io/collector/pdata/ptrace"
)

// TestJunkFloodCannotEvictAWaitingFragment (trust finding 6): a genuine
// fragment waits for its owner; then far more undecidable app spans than
// the buffer holds arrive (anyone who reaches OTLP can send them). At the
// limits the app spans go, oldest first; the fragment stays. Expiry still
// runs in arrival order across both.
func TestJunkFloodCannotEvictAWaitingFragment(t *testing.T) {
	const limit = 10
	b := newWaitBuffer(limit, 1<<20)
	rs := ptrace.NewResourceSpans()
	scope := newWaitingScope(newWaitingResource(rs), rs.ScopeSpans().AppendEmpty())
	t0 := time.Unix(1_800_000_000, 0)
	span := func(i byte) ptrace.Span {
		s := ptrace.NewSpan()
		s.SetSpanID(pcommon.SpanID{i})
		s.SetTraceID(pcommon.TraceID{i})
		s.SetName("junk")
		return s
	}
	frag := span(0)
	b.put(scope, frag, frag.TraceID(), &fragmentKey{uid: "pod-1", trigger: "create"}, t0)
	var evicted []*waitingSpan
	for i := byte(1); i <= 3*limit; i++ {
		s := span(i)
		evicted = append(evicted, b.put(scope, s, s.TraceID(), nil, t0.Add(time.Duration(i)*time.Millisecond))...)
	}
	require.Len(t, evicted, 2*limit+1)
	for _, w := range evicted {
		assert.Nil(t, w.frag, "an app span is evicted, never the fragment")
	}
	require.Len(t, b.fragments(), 1, "the fragment still waits")
	assert.Equal(t, limit, b.len())

	exp := b.expired(t0.Add(time.Hour), time.Minute)
	require.Len(t, exp, limit)
	assert.NotNil(t, exp[0].frag, "oldest first: the fragment came first")
	for i := 1; i < len(exp); i++ {
		assert.False(t, exp[i].arrived.Before(exp[i-1].arrived), "in arrival order")
	}
}
