package k8sstitchprocessor

import (
	"encoding/hex"
	"path/filepath"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"go.opentelemetry.io/collector/pdata/pcommon"
	"go.opentelemetry.io/collector/pdata/ptrace"

	"github.com/kubestitch/kubestitch/internal/fragment"
)

// A span that comes in a later batch than the rest of its trace (another
// process's part, exported on its own schedule) goes where its trace went.
func TestLateSpansFollowTheirTrace(t *testing.T) {
	h := newHarness(t, nil)
	for _, b := range loadBatches(t, filepath.Join("testdata", "deployment_create", "input.json")) {
		h.feed(t, b)
	}
	out := h.output()

	// A joined apiserver request (a binding, joined by its path) and a pod.
	var joined ptrace.Span
	found := false
	var podUID string
	forEachSpan(out, func(_ pcommon.Map, s ptrace.Span) {
		a := s.Attributes()
		if v, ok := a.Get(fragment.KeyJoinBy); ok && v.Str() == fragment.JoinByPath && !found {
			joined, found = s, true
		}
		if v, ok := a.Get(fragment.KeyKind); ok && v.Str() == "Pod" && podUID == "" {
			uid, _ := a.Get(fragment.KeyUID)
			podUID = uid.Str()
		}
	})
	require.True(t, found, "the recording has a request joined by path")
	require.NotEmpty(t, podUID)
	origHex, _ := joined.Attributes().Get(fragment.KeyOriginalTraceID)
	var orig pcommon.TraceID
	_, err := hex.Decode(orig[:], []byte(origHex.Str()))
	require.NoError(t, err)

	// A trace of idle noise: its root and a child, no hint: it passes.
	noise := pcommon.TraceID{0xee, 1}
	idle := ptrace.NewTraces()
	root := appSpan(idle, noise, pcommon.SpanID{}, pcommon.SpanID{0xee, 1}, h.clock)
	appSpan(idle, noise, root.SpanID(), pcommon.SpanID{0xee, 2}, h.clock)
	h.feed(t, idle)

	late := ptrace.NewTraces()
	// An etcd server span of the joined request: no hint of its own.
	lateJoined := serviceSpan(late, "etcd", orig, joined.SpanID(), pcommon.SpanID{0xee, 3}, h.clock.Add(time.Second))
	lateJoined.SetName("etcdserver: range")
	// A span of the idle trace that names the pod: it must not join,
	// the rest of its trace did not.
	latePassed := appSpan(late, noise, root.SpanID(), pcommon.SpanID{0xee, 4}, h.clock.Add(time.Second))
	latePassed.Attributes().PutStr(fragment.KeyPodUID, podUID)
	before := h.sink.SpanCount()
	h.feed(t, late)
	require.Equal(t, before+2, h.sink.SpanCount(), "late spans leave at once: their traces are decided")

	got := map[pcommon.SpanID]ptrace.Span{}
	forEachSpan(h.output(), func(_ pcommon.Map, s ptrace.Span) { got[s.SpanID()] = s })
	assert.Equal(t, joined.TraceID(), got[lateJoined.SpanID()].TraceID(), "the late span of a joined trace is in the operation")
	assert.Equal(t, joined.SpanID(), got[lateJoined.SpanID()].ParentSpanID())
	assert.Equal(t, noise, got[latePassed.SpanID()].TraceID(), "the late span of a passed trace stays in its trace")
}
