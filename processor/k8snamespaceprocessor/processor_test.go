package k8snamespaceprocessor

import (
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"go.opentelemetry.io/collector/component/componenttest"
	"go.opentelemetry.io/collector/consumer/consumertest"
	"go.opentelemetry.io/collector/pdata/pcommon"
	"go.opentelemetry.io/collector/pdata/ptrace"
	"go.opentelemetry.io/collector/processor/processortest"

	"github.com/kubestitch/kubestitch/internal/fragment"
	"github.com/kubestitch/kubestitch/processor/k8snamespaceprocessor/internal/metadata"
)

func addSpan(ss ptrace.ScopeSpans, trace byte, id byte, name string, attrs map[string]string) {
	s := ss.Spans().AppendEmpty()
	s.SetTraceID(pcommon.TraceID{trace})
	s.SetSpanID(pcommon.SpanID{trace, id})
	s.SetName(name)
	for k, v := range attrs {
		s.Attributes().PutStr(k, v)
	}
}

// apiserverBatch is what kube-apiserver exports: one resource, spans of
// many requests, the namespace only in each request span's http.target.
func apiserverBatch() ptrace.Traces {
	td := ptrace.NewTraces()
	rs := td.ResourceSpans().AppendEmpty()
	rs.Resource().Attributes().PutStr("service.name", "apiserver")
	ss := rs.ScopeSpans().AppendEmpty()
	ss.Scope().SetName("k8s.io/apiserver/pkg/endpoints/filterlatency")
	// Children first, as they end first.
	addSpan(ss, 1, 3, "Create etcd3", map[string]string{"key": "/pods/team-a/web-1"})
	addSpan(ss, 1, 2, "POST /api/v1/namespaces/{:namespace}/pods", map[string]string{"http.target": "/api/v1/namespaces/team-a/pods"})
	addSpan(ss, 1, 1, "authentication", nil)
	addSpan(ss, 2, 2, "PATCH", map[string]string{"http.target": "/apis/apps/v1/namespaces/team-b/deployments/web/status?fieldManager=x"})
	addSpan(ss, 2, 1, "authentication", nil)
	// A lease renewal of a node: namespaced too.
	addSpan(ss, 3, 1, "PUT", map[string]string{"http.target": "/apis/coordination.k8s.io/v1/namespaces/kube-node-lease/leases/node-1"})
	// Cluster-scoped: a Node status and the Namespace object itself.
	addSpan(ss, 4, 1, "PATCH", map[string]string{"http.target": "/api/v1/nodes/node-1/status"})
	addSpan(ss, 5, 1, "GET", map[string]string{"http.target": "/api/v1/namespaces/team-a"})
	return td
}

func run(t *testing.T, td ptrace.Traces) (ptrace.Traces, *componenttest.Telemetry) {
	t.Helper()
	tel := componenttest.NewTelemetry()
	t.Cleanup(func() { _ = tel.Shutdown(t.Context()) })
	set := processortest.NewNopSettings(metadata.Type)
	set.TelemetrySettings = tel.NewTelemetrySettings()
	sink := &consumertest.TracesSink{}
	p, err := NewFactory().CreateTraces(t.Context(), set, createDefaultConfig(), sink)
	require.NoError(t, err)
	require.NoError(t, p.ConsumeTraces(t.Context(), td))
	require.Len(t, sink.AllTraces(), 1)
	return sink.AllTraces()[0], tel
}

// namespaces maps each span name@trace to its resource's namespace.
func namespaces(td ptrace.Traces) map[pcommon.SpanID]string {
	out := map[pcommon.SpanID]string{}
	rss := td.ResourceSpans()
	for i := 0; i < rss.Len(); i++ {
		ns, _ := rss.At(i).Resource().Attributes().Get(fragment.KeyNamespace)
		sss := rss.At(i).ScopeSpans()
		for j := 0; j < sss.Len(); j++ {
			spans := sss.At(j).Spans()
			for k := 0; k < spans.Len(); k++ {
				out[spans.At(k).SpanID()] = ns.Str()
			}
		}
	}
	return out
}

func TestEverySpanOfATraceUnderItsNamespace(t *testing.T) {
	in := apiserverBatch()
	n := in.SpanCount()
	out, tel := run(t, in)
	require.Equal(t, n, out.SpanCount(), "nothing lost, nothing doubled")
	got := namespaces(out)
	for _, id := range []pcommon.SpanID{{1, 1}, {1, 2}, {1, 3}} {
		assert.Equal(t, "team-a", got[id], "the request's handler, etcd and authentication spans go with it")
	}
	assert.Equal(t, "team-b", got[pcommon.SpanID{2, 1}])
	assert.Equal(t, "kube-node-lease", got[pcommon.SpanID{3, 1}])
	assert.Empty(t, got[pcommon.SpanID{4, 1}], "a Node is cluster-scoped")
	assert.Empty(t, got[pcommon.SpanID{5, 1}], "so is a Namespace")
	rss := out.ResourceSpans()
	for i := 0; i < rss.Len(); i++ {
		svc, _ := rss.At(i).Resource().Attributes().Get("service.name")
		assert.Equal(t, "apiserver", svc.Str(), "the resource is kept")
		assert.Equal(t, "k8s.io/apiserver/pkg/endpoints/filterlatency", rss.At(i).ScopeSpans().At(0).Scope().Name(), "the scope is kept")
	}
	_, err := tel.GetMetric("otelcol_k8snamespace_spans_unscoped")
	require.NoError(t, err)
}

// TestKubeletTraceTakesSyncPodNamespace: the CRI calls under syncPod carry
// no namespace; syncPod does.
func TestKubeletTraceTakesSyncPodNamespace(t *testing.T) {
	td := ptrace.NewTraces()
	rs := td.ResourceSpans().AppendEmpty()
	rs.Resource().Attributes().PutStr("service.name", "kubelet")
	ss := rs.ScopeSpans().AppendEmpty()
	addSpan(ss, 7, 2, "runtime.v1.RuntimeService/RunPodSandbox", nil)
	addSpan(ss, 7, 1, "syncPod", map[string]string{fragment.KeyNamespace: "team-c", fragment.KeyPodUID: "p"})
	out, _ := run(t, td)
	assert.Equal(t, map[pcommon.SpanID]string{{7, 1}: "team-c", {7, 2}: "team-c"}, namespaces(out))
}

func TestConflictingNamespacesCounted(t *testing.T) {
	td := ptrace.NewTraces()
	ss := td.ResourceSpans().AppendEmpty().ScopeSpans().AppendEmpty()
	addSpan(ss, 9, 1, "a", map[string]string{"http.target": "/api/v1/namespaces/one/pods/x"})
	addSpan(ss, 9, 2, "b", map[string]string{"http.target": "/api/v1/namespaces/two/pods/y"})
	out, tel := run(t, td)
	got := namespaces(out)
	assert.Equal(t, got[pcommon.SpanID{9, 1}], got[pcommon.SpanID{9, 2}], "one trace, one namespace")
	_, err := tel.GetMetric("otelcol_k8snamespace_trace_conflicts")
	require.NoError(t, err)
}

func TestScopedResourcesPassUnchanged(t *testing.T) {
	td := ptrace.NewTraces()
	rs := td.ResourceSpans().AppendEmpty()
	rs.Resource().Attributes().PutStr(fragment.KeyNamespace, "team-a")
	addSpan(rs.ScopeSpans().AppendEmpty(), 1, 1, "pod.startup", nil)
	out, _ := run(t, td)
	assert.Equal(t, 1, out.ResourceSpans().Len())
	assert.Equal(t, map[pcommon.SpanID]string{{1, 1}: "team-a"}, namespaces(out))
}

func TestNamespaceOfTarget(t *testing.T) {
	for target, want := range map[string]string{
		"/api/v1/namespaces/default/pods":                   "default",
		"/apis/apps/v1/namespaces/x/deployments/y/status?a": "x",
		"/api/v1/namespaces/default":                        "",
		"/api/v1/namespaces/":                               "",
		"/api/v1/nodes/n":                                   "",
		"":                                                  "",
		"/namespaces//pods":                                 "",
	} {
		assert.Equal(t, want, namespaceOfTarget(target), target)
	}
}
