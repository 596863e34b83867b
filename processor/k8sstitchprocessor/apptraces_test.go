package k8sstitchprocessor

import (
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"go.opentelemetry.io/collector/pdata/pcommon"
	"go.opentelemetry.io/collector/pdata/ptrace"

	"github.com/kubestitch/kubestitch/internal/fragment"
)

// podStartingAt opens the operation of Pod pod-1 (ReplicaSet rs-1's), as
// k8swatch reports a pod that is starting: its trigger at at(0) and its
// scheduling step.
func podStartingAt(t *testing.T, h *stitchHarness, at func(ms int) time.Time) {
	t.Helper()
	m := newSpanMaker()
	opFragment(m, "ReplicaSet", "rs-1", "", "gen:1", fragment.LevelTrigger, "", at(0), at(0), at(0))
	opFragment(m, "Pod", "pod-1", "rs-1", "gen:1", fragment.LevelTrigger, "", at(0), at(0), at(0))
	opFragment(m, "Pod", "pod-1", "rs-1", "gen:1", fragment.LevelStep, fragment.PhasePodSchedule, at(0), at(0), at(50))
	h.feed(t, m.td)
}

// decoratedAppTrace is a request of the workload checkout in pod-1: its
// server span and a child, under the resource that k8sattributes (or the
// Operator's auto-instrumentation) gives every span of the pod.
func decoratedAppTrace(trace pcommon.TraceID, at time.Time) ptrace.Traces {
	td := ptrace.NewTraces()
	rs := td.ResourceSpans().AppendEmpty()
	ra := rs.Resource().Attributes()
	ra.PutStr(fragment.KeyServiceName, "checkout")
	ra.PutStr(fragment.KeyPodUID, "pod-1")
	ra.PutStr("k8s.pod.name", "pod-1")
	ra.PutStr(fragment.KeyNamespace, "default")
	ra.PutStr("k8s.replicaset.uid", "rs-1")
	ra.PutStr("k8s.deployment.name", "checkout")
	ra.PutStr("k8s.node.name", "node-1")
	spans := rs.ScopeSpans().AppendEmpty().Spans()
	server := spans.AppendEmpty()
	server.SetTraceID(trace)
	server.SetSpanID(pcommon.SpanID{0xa1})
	server.SetName("GET /cart")
	server.SetKind(ptrace.SpanKindServer)
	server.SetStartTimestamp(pcommon.NewTimestampFromTime(at))
	server.SetEndTimestamp(pcommon.NewTimestampFromTime(at.Add(20 * time.Millisecond)))
	child := spans.AppendEmpty()
	child.SetTraceID(trace)
	child.SetSpanID(pcommon.SpanID{0xa2})
	child.SetParentSpanID(server.SpanID())
	child.SetName("SELECT cart")
	child.SetKind(ptrace.SpanKindClient)
	child.SetStartTimestamp(pcommon.NewTimestampFromTime(at.Add(time.Millisecond)))
	child.SetEndTimestamp(pcommon.NewTimestampFromTime(at.Add(10 * time.Millisecond)))
	return td
}

// TestAppTraceOfAStartingPodKeepsItsIDs: a workload's own trace, whose
// resource names its pod (k8s.pod.uid, as k8sattributes decorates it),
// starts while the pod's operation is open. It comes out byte for byte:
// its trace ID, span IDs and parents are the app's, not the operation's.
func TestAppTraceOfAStartingPodKeepsItsIDs(t *testing.T) {
	h := newHarness(t, nil)
	at := shakeClock
	podStartingAt(t, h, at)

	appTrace := randomTrace(11)
	in := decoratedAppTrace(appTrace, at(20))
	want := ptrace.NewTraces()
	in.CopyTo(want)
	h.feed(t, in)
	h.drain()

	got := ptrace.NewTraces()
	forEachSpan(h.output(), func(_ pcommon.Map, s ptrace.Span) {
		if s.TraceID() == appTrace || s.Name() == "GET /cart" || s.Name() == "SELECT cart" {
			rs := got.ResourceSpans().AppendEmpty()
			s.CopyTo(rs.ScopeSpans().AppendEmpty().Spans().AppendEmpty())
		}
	})
	require.Equal(t, 2, got.SpanCount(), "both spans of the app's trace came out")
	wantSpans := want.ResourceSpans().At(0).ScopeSpans().At(0).Spans()
	for i := range 2 {
		assert.Equal(t, wantSpans.At(i), got.ResourceSpans().At(i).ScopeSpans().At(0).Spans().At(0), "the app's span is as it was sent")
	}
}

// TestAppTraceJoinsWhenItsServiceIsListed: the opt-in. With the workload's
// service in join_services, the same trace hangs under its pod.
func TestAppTraceJoinsWhenItsServiceIsListed(t *testing.T) {
	h := newHarness(t, func(c *Config) { c.JoinServices = append(c.JoinServices, "checkout") })
	at := shakeClock
	podStartingAt(t, h, at)
	h.feed(t, decoratedAppTrace(randomTrace(11), at(20)))
	h.drain()
	assert.Equal(t, 2, inTrace(t, h.output(), fragment.TraceID("rs-1", "gen:1"), appSpanNamed, "is in its pod's operation"))
}

// TestComponentSpanUnderAnAppsRequestStaysInTheAppsTrace: an app that
// creates a ConfigMap through a client that propagates its trace context.
// The kube-apiserver's spans of that request name the object (a create
// path, a joinable hint), but the trace is the app's: it passes whole,
// whichever of its parts comes first.
func TestComponentSpanUnderAnAppsRequestStaysInTheAppsTrace(t *testing.T) {
	for _, appFirst := range []bool{true, false} {
		name := "apiserver first"
		if appFirst {
			name = "app first"
		}
		t.Run(name, func(t *testing.T) {
			h := newHarness(t, nil)
			at := shakeClock
			podStartingAt(t, h, at)
			appTrace := randomTrace(12)
			app := decoratedAppTrace(appTrace, at(20))
			api, srvID := remoteAPIRequest(appTrace, pcommon.SpanID{0xa2}, "POST", at(21))
			if appFirst {
				h.feed(t, app)
				h.feed(t, api)
			} else {
				h.feed(t, api)
				h.feed(t, app)
			}
			h.drain()
			n := 0
			forEachSpan(h.output(), func(_ pcommon.Map, s ptrace.Span) {
				if s.SpanID() == srvID || s.Name() == "GET /cart" || s.Name() == "SELECT cart" {
					n++
					assert.Equal(t, appTrace, s.TraceID(), "%s stays in the app's trace", s.Name())
					_, moved := s.Attributes().Get(fragment.KeyOriginalTraceID)
					assert.False(t, moved, "%s was not moved", s.Name())
				}
			})
			assert.Equal(t, 3, n)
		})
	}
}

// kubeletSyncPod adds the kubelet's syncPod of pod-1 (its root, naming the
// pod, span ID b1) to rootTD and a CRI client span under it to childTD
// (the same batch, or an earlier one: the kubelet exports the child
// first).
func kubeletSyncPod(rootTD, childTD ptrace.Traces, trace pcommon.TraceID, at time.Time) {
	root := serviceSpan(rootTD, "kubelet", trace, pcommon.SpanID{}, pcommon.SpanID{0xb1}, at)
	root.SetName("syncPod")
	root.Attributes().PutStr(fragment.KeyPodUID, "pod-1")
	serviceSpan(childTD, "kubelet", trace, root.SpanID(), pcommon.SpanID{0xb2}, at).SetName("runtime.v1.RuntimeService/RunPodSandbox")
}

// remoteAPIRequest is kube-apiserver's server span of a write to pod-1's
// status (naming the pod by path and UID: the strongest hints) made by a
// caller in another process (parent), flagged remote as the Go SDK
// exports it.
func remoteAPIRequest(trace pcommon.TraceID, parent pcommon.SpanID, method string, at time.Time) (ptrace.Traces, pcommon.SpanID) {
	api := newSpanMaker()
	srv := api.span("apiserver", trace, parent, method, at, 4*time.Millisecond)
	srv.SetKind(ptrace.SpanKindServer)
	srv.SetFlags(remoteParentFlags | 1)
	srv.Attributes().PutStr("http.request.method", method)
	srv.Attributes().PutStr("http.target", "/api/v1/namespaces/default/pods/pod-1/status")
	srv.Attributes().PutStr(fragment.KeyPodUID, "pod-1")
	return api.td, srv.SpanID()
}

// inTrace asserts that every span of out that match picks is in trace
// want, and returns how many there are.
func inTrace(t *testing.T, out ptrace.Traces, want pcommon.TraceID, match func(ptrace.Span) bool, what string) int {
	t.Helper()
	n := 0
	forEachSpan(out, func(_ pcommon.Map, s ptrace.Span) {
		if match(s) {
			n++
			assert.Equal(t, want, s.TraceID(), "%s %s", s.Name(), what)
		}
	})
	return n
}

// appSpanNamed picks decoratedAppTrace's spans.
func appSpanNamed(s ptrace.Span) bool { return s.Name() == "GET /cart" || s.Name() == "SELECT cart" }

// TestSyncPodAfterRootWaitStillJoins: a pull longer than root_wait lets a
// pod start's CRI spans leave as a trace of their own, but their syncPod,
// which names the pod, still joins the pod's operation when it comes.
func TestSyncPodAfterRootWaitStillJoins(t *testing.T) {
	h := newHarness(t, nil)
	at := shakeClock
	podStartingAt(t, h, at)
	tr := randomTrace(21)
	late, early := ptrace.NewTraces(), ptrace.NewTraces()
	kubeletSyncPod(late, early, tr, at(30))
	h.feed(t, early)
	h.drain() // root_wait runs out: the CRI span leaves as it is
	h.feed(t, late)
	h.drain()
	syncPod := func(s ptrace.Span) bool { return s.Name() == "syncPod" }
	assert.Equal(t, 1, inTrace(t, h.output(), fragment.TraceID("rs-1", "gen:1"), syncPod, "joined its pod's operation, late"))
}

// TestRemoteParentJoinsOnceAComponentRootComes: kube-apiserver's span of a
// request the kubelet made (its parent in the kubelet, flagged remote)
// waits for the trace's root; when that root is the kubelet's, the trace
// joins, the apiserver span with it.
func TestRemoteParentJoinsOnceAComponentRootComes(t *testing.T) {
	h := newHarness(t, nil)
	at := shakeClock
	podStartingAt(t, h, at)
	tr := randomTrace(22)
	api, srvID := remoteAPIRequest(tr, pcommon.SpanID{0xb2}, "PATCH", at(31))
	before := h.sink.SpanCount()
	h.feed(t, api)
	assert.Equal(t, before, h.sink.SpanCount(), "the apiserver span waits for its trace's root")
	kubelet := ptrace.NewTraces()
	kubeletSyncPod(kubelet, kubelet, tr, at(30))
	h.feed(t, kubelet)
	h.drain()
	joined := func(s ptrace.Span) bool { return s.SpanID() == srvID || s.Name() == "syncPod" }
	assert.Equal(t, 2, inTrace(t, h.output(), fragment.TraceID("rs-1", "gen:1"), joined, "joined the pod's operation"))
}

// TestRemoteParentWithoutItsRootPassesAfterRootWait: a request whose
// caller never exports (or exports elsewhere) leaves after root_wait as
// it came, its IDs untouched.
func TestRemoteParentWithoutItsRootPassesAfterRootWait(t *testing.T) {
	h := newHarness(t, nil)
	at := shakeClock
	podStartingAt(t, h, at)
	tr := randomTrace(23)
	api, srvID := remoteAPIRequest(tr, pcommon.SpanID{0xc1}, "PATCH", at(31))
	before := h.sink.SpanCount()
	h.feed(t, api)
	h.clock = h.clock.Add(h.p.cfg.RootWait / 2)
	h.flush()
	assert.Equal(t, before, h.sink.SpanCount(), "within root_wait it waits")
	h.drain()
	found := false
	forEachSpan(h.output(), func(_ pcommon.Map, s ptrace.Span) {
		if s.SpanID() == srvID {
			found = true
			assert.Equal(t, tr, s.TraceID(), "its own trace")
			assert.Equal(t, pcommon.SpanID{0xc1}, s.ParentSpanID(), "its own parent")
		}
	})
	assert.True(t, found, "it left")
}

// TestComponentRootAfterAnAppsSpanPasses: a trace the kubelet started
// that reached an app (the app continued the kubelet's context) holds the
// app's span: when the app's span came first and passed, the kubelet's
// root, which names the pod, passes too: the trace stays whole.
func TestComponentRootAfterAnAppsSpanPasses(t *testing.T) {
	h := newHarness(t, nil)
	at := shakeClock
	podStartingAt(t, h, at)
	tr := randomTrace(24)
	app := ptrace.NewTraces()
	appChild := serviceSpan(app, "checkout", tr, pcommon.SpanID{0xb1}, pcommon.SpanID{0xd1}, at(30))
	appChild.SetFlags(remoteParentFlags | 1)
	h.feed(t, app)
	kubelet := ptrace.NewTraces()
	kubeletSyncPod(kubelet, kubelet, tr, at(30))
	h.feed(t, kubelet)
	h.drain()
	appOrRoot := func(s ptrace.Span) bool { return s.SpanID() == (pcommon.SpanID{0xd1}) || s.Name() == "syncPod" }
	assert.Equal(t, 2, inTrace(t, h.output(), tr, appOrRoot, "stays in its trace"))
}

// TestAppMarkSurvivesSpansThatPassBeforeTheRoot: the app's span passes
// first; then the kubelet's CRI spans, without their root, pass because
// the trace did; then syncPod comes. The trace passed for an app's span,
// and that must not be forgotten when the CRI spans pass: syncPod passes
// too, and the trace stays whole.
func TestAppMarkSurvivesSpansThatPassBeforeTheRoot(t *testing.T) {
	h := newHarness(t, nil)
	at := shakeClock
	podStartingAt(t, h, at)
	tr := randomTrace(25)
	app := ptrace.NewTraces()
	serviceSpan(app, "checkout", tr, pcommon.SpanID{0xb1}, pcommon.SpanID{0xd1}, at(30)).SetFlags(remoteParentFlags | 1)
	h.feed(t, app)
	late, cri := ptrace.NewTraces(), ptrace.NewTraces()
	kubeletSyncPod(late, cri, tr, at(30))
	h.feed(t, cri)
	h.feed(t, late)
	h.drain()
	n := 0
	forEachSpan(h.output(), func(_ pcommon.Map, s ptrace.Span) {
		if s.TraceID() == tr {
			n++
		}
	})
	assert.Equal(t, 3, n, "the app's span, the CRI span and syncPod stay in their trace")
}
