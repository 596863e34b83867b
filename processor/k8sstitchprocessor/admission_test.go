package k8sstitchprocessor

import (
	"path/filepath"
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"go.opentelemetry.io/collector/pdata/pcommon"
	"go.opentelemetry.io/collector/pdata/ptrace"

	"github.com/kubestitch/kubestitch/internal/fragment"
	"github.com/kubestitch/kubestitch/internal/waterfall"
)

// admissionSpan is the k8sadmission receiver's span for a review of the
// request whose apiserver trace is trace, under parent.
func admissionSpan(trace pcommon.TraceID, parent pcommon.SpanID, at pcommon.Timestamp, op, sub, uid string, dryRun bool) ptrace.Traces {
	td := ptrace.NewTraces()
	rs := td.ResourceSpans().AppendEmpty()
	rs.Resource().Attributes().PutStr(fragment.KeyServiceName, "kubestitch-admission")
	s := rs.ScopeSpans().AppendEmpty().Spans().AppendEmpty()
	s.SetTraceID(trace)
	s.SetParentSpanID(parent)
	s.SetSpanID(fragment.AdmissionSpanID(uid + op + sub))
	s.SetName("admission.review")
	s.SetStartTimestamp(at)
	s.SetEndTimestamp(at + 1000)
	s.Attributes().PutStr(fragment.KeyAdmissionOperation, op)
	s.Attributes().PutStr(fragment.KeyAdmissionSubresource, sub)
	s.Attributes().PutBool(fragment.KeyAdmissionDryRun, dryRun)
	s.Attributes().PutStr(fragment.KeyUID, uid)
	return td
}

// TestAdmissionUIDJoinsWhatThePathCannot: the recorded Deployment create,
// with the etcd key stripped from one pod-create request (so neither its
// path, which names the collection, nor its key can place it) and a
// k8sadmission span with the pod's UID added to that request's trace,
// arriving first as it does in a cluster (the webhook answers during the
// request; kube-apiserver exports seconds later). The request must land
// under replicaset.scale by UID; the others still by their etcd key.
func TestAdmissionUIDJoinsWhatThePathCannot(t *testing.T) {
	batches := loadBatches(t, filepath.Join("testdata", "deployment_create", "input.json"))
	podUIDs := map[string]string{} // pod name -> uid, from the fragments
	var target pcommon.TraceID
	var targetPod string
	var webhookParent pcommon.SpanID
	var at pcommon.Timestamp
	for _, b := range batches {
		forEachSpan(b, func(_ pcommon.Map, s ptrace.Span) {
			if k, ok := s.Attributes().Get(fragment.KeyKind); ok && k.Str() == "Pod" {
				n, _ := s.Attributes().Get(fragment.KeyName)
				u, _ := s.Attributes().Get(fragment.KeyUID)
				podUIDs[n.Str()] = u.Str()
			}
			if key, ok := s.Attributes().Get("key"); ok && target.IsEmpty() && strings.HasPrefix(s.Name(), "Create etcd3") && strings.HasPrefix(key.Str(), "/pods/") {
				target, targetPod = s.TraceID(), key.Str()[strings.LastIndexByte(key.Str(), '/')+1:]
				webhookParent, at = s.ParentSpanID(), s.StartTimestamp()
				s.Attributes().Remove("key")
			}
		})
	}
	require.False(t, target.IsEmpty(), "the recording has a pod create")
	uid := podUIDs[targetPod]
	require.NotEmpty(t, uid)

	h := newHarness(t, nil)
	h.feed(t, admissionSpan(target, webhookParent, at, "CREATE", "", uid, false))
	for _, b := range batches {
		h.feed(t, b)
	}
	h.drain()

	tr := operationTrace(t, h.output(), "deployment.rollout")
	assert.Empty(t, tr.Orphans)
	byUID, byKey := 0, 0
	for _, s := range tr.Spans {
		if s.Name == "admission.review" {
			assert.NotNil(t, s.Parent, "the review span keeps its parent in the request")
		}
		by, ok := s.Attributes.Get(fragment.KeyJoinBy)
		if !ok {
			continue
		}
		orig, _ := s.Attributes.Get(fragment.KeyOriginalTraceID)
		switch {
		case orig.Str() == target.String():
			byUID++
			assert.Equal(t, fragment.JoinByUID, by.Str())
			assert.Equal(t, fragment.PhaseReplicaSetScale, ancestorFragment(s).Name, "the controller's pod create under replicaset.scale")
		case by.Str() == fragment.JoinByCreateKey:
			byKey++
		}
	}
	assert.Equal(t, 1, byUID, "the request joined by the review's UID")
	assert.Equal(t, 4, byKey, "the Deployment, the ReplicaSet and the two other pod creates still by their etcd keys")
}

func ancestorFragment(n *waterfall.Node) *waterfall.Node {
	for p := n.Parent; p != nil; p = p.Parent {
		if p.IsFragment() {
			return p
		}
	}
	return nil
}

// TestDryRunReviewJoinsNothing: a dry-run create's object is never
// stored, so its request trace passes through as it is.
func TestDryRunReviewJoinsNothing(t *testing.T) {
	h := newHarness(t, nil)
	trace := pcommon.TraceID{1, 2, 3}
	h.feed(t, admissionSpan(trace, pcommon.SpanID{9}, 1000, "CREATE", "", "dry-uid", true))
	h.drain()
	out := h.output()
	require.Equal(t, 1, out.SpanCount())
	forEachSpan(out, func(_ pcommon.Map, s ptrace.Span) {
		assert.Equal(t, trace, s.TraceID(), "unchanged")
		_, rewritten := s.Attributes().Get(fragment.KeyJoinBy)
		assert.False(t, rewritten)
	})
}

func TestAdmissionVerbs(t *testing.T) {
	for _, tc := range []struct {
		op, sub string
		want    requestVerb
	}{
		{"CREATE", "", verbCreate}, {"CREATE", "binding", verbBinding}, {"UPDATE", "status", verbStatus},
		{"UPDATE", "", verbUpdate}, {"DELETE", "", verbDelete}, {"CONNECT", "exec", verbOther}, {"UPDATE", "scale", verbOther},
	} {
		assert.Equal(t, tc.want, admissionVerb(tc.op, tc.sub), "%s %s", tc.op, tc.sub)
	}
}
