package waterfall

import (
	"bytes"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"go.opentelemetry.io/collector/pdata/pcommon"
	"go.opentelemetry.io/collector/pdata/ptrace"

	"github.com/kubestitch/kubestitch/internal/fragment"
)

var (
	t0      = time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC)
	traceA  = pcommon.TraceID{0xa}
	traceB  = pcommon.TraceID{0xb}
	noSpan  = pcommon.SpanID{}
	spanIDs = func(n byte) pcommon.SpanID { return pcommon.SpanID{n} }
)

// span adds a span from..to ms after t0.
func span(ss ptrace.SpanSlice, trace pcommon.TraceID, id, parent pcommon.SpanID, name string, from, to int, attrs map[string]string) ptrace.Span {
	s := ss.AppendEmpty()
	s.SetTraceID(trace)
	s.SetSpanID(id)
	s.SetParentSpanID(parent)
	s.SetName(name)
	s.SetStartTimestamp(pcommon.NewTimestampFromTime(t0.Add(time.Duration(from) * time.Millisecond)))
	s.SetEndTimestamp(pcommon.NewTimestampFromTime(t0.Add(time.Duration(to) * time.Millisecond)))
	for k, v := range attrs {
		s.Attributes().PutStr(k, v)
	}
	return s
}

func service(td ptrace.Traces, name string) ptrace.SpanSlice {
	rs := td.ResourceSpans().AppendEmpty()
	rs.Resource().Attributes().PutStr(fragment.KeyServiceName, name)
	return rs.ScopeSpans().AppendEmpty().Spans()
}

func pod(name, level string) map[string]string {
	return map[string]string{fragment.KeyKind: "Pod", fragment.KeyNamespace: "default", fragment.KeyName: name, fragment.KeyLevel: level}
}

// rollout is a trace of one second across two services: a Deployment's
// rollout (kubestitch) with two pods, one of them failing, and the API
// request that started it (apiserver) with its etcd call; an orphan
// request, a duplicated span, and a second trace that starts earlier.
func rollout() ptrace.Traces {
	td := ptrace.NewTraces()
	ks := service(td, "kubestitch")
	span(ks, traceA, spanIDs(1), noSpan, "deployment.rollout", 0, 1000,
		map[string]string{fragment.KeyKind: "Deployment", fragment.KeyNamespace: "default", fragment.KeyName: "web", fragment.KeyLevel: fragment.LevelObject})
	failing := span(ks, traceA, spanIDs(2), spanIDs(1), "pod.startup", 500, 1000, pod("web-7d9f8c6b5-xk2lp", fragment.LevelObject))
	failing.Status().SetCode(ptrace.StatusCodeError)
	failing.Status().SetMessage("FailedScheduling: 0/3 nodes are available")
	span(ks, traceA, spanIDs(3), spanIDs(1), "pod.startup", 250, 750, pod("web-7d9f8c6b5-bq4zt", fragment.LevelObject))
	span(ks, traceA, spanIDs(6), spanIDs(2), "pod_startup_latency", 500, 1000, pod("web-7d9f8c6b5-xk2lp", fragment.LevelSLI))

	api := service(td, "apiserver")
	span(api, traceA, spanIDs(4), spanIDs(1), "POST /apis/apps/v1/namespaces/default/deployments", 0, 250,
		map[string]string{"http.target": "/apis/apps/v1/namespaces/default/deployments?fieldManager=kubectl"})
	span(api, traceA, spanIDs(5), spanIDs(4), "etcd", 100, 200, nil)
	span(api, traceA, spanIDs(5), spanIDs(4), "etcd again", 100, 200, nil)
	span(api, traceA, spanIDs(7), spanIDs(99), "GET /api/v1/pods", 100, 150, nil)

	span(api, traceB, spanIDs(1), noSpan, "earlier", -1000, -900, nil)
	return td
}

func TestBuildLinksSpansIntoTrees(t *testing.T) {
	traces := Build(rollout())
	require.Len(t, traces, 2)
	assert.Equal(t, traceB, traces[0].ID, "traces in order of their start")
	tr := traces[1]
	assert.Equal(t, traceA, tr.ID)
	assert.Len(t, tr.Spans, 8)
	assert.Equal(t, 1, tr.Duplicates, "the second span 5 is counted, not linked")
	assert.Equal(t, []string{"apiserver", "kubestitch"}, tr.Services())
	assert.Equal(t, t0, tr.Start())
	assert.Equal(t, t0.Add(time.Second), tr.End())

	require.Len(t, tr.Roots, 1)
	root := tr.Root
	assert.Same(t, tr.Roots[0], root)
	assert.Equal(t, "deployment.rollout", root.Name)
	assert.Equal(t, "kubestitch", root.Service)
	assert.Equal(t, "Deployment default/web", root.Object)
	assert.Nil(t, root.Parent)

	var names []string
	for _, c := range root.Children {
		names = append(names, c.Name+" "+c.Object)
		assert.Same(t, root, c.Parent)
	}
	assert.Equal(t, []string{
		"POST /apis/apps/v1/namespaces/default/deployments /apis/apps/v1/namespaces/default/deployments",
		"pod.startup Pod default/web-7d9f8c6b5-bq4zt",
		"pod.startup Pod default/web-7d9f8c6b5-xk2lp",
	}, names, "children by start; a request's object is its target without the query")

	req := root.Children[0]
	assert.Equal(t, "apiserver", req.Service, "a child in another service")
	require.Len(t, req.Children, 1)
	assert.Equal(t, "etcd", req.Children[0].Name)
	assert.Equal(t, 100*time.Millisecond, req.Children[0].End.Sub(req.Children[0].Start))

	failing := root.Children[2]
	assert.True(t, failing.Error)
	assert.Equal(t, "FailedScheduling: 0/3 nodes are available", failing.Status)
	assert.False(t, root.Children[1].Error)
	assert.True(t, failing.IsFragment())
	assert.False(t, req.IsFragment())
	require.Len(t, failing.Children, 1)
	assert.True(t, failing.Children[0].IsSLI())

	require.Len(t, tr.Orphans, 1)
	assert.Equal(t, "GET /api/v1/pods", tr.Orphans[0].Name)
	assert.Nil(t, tr.Orphans[0].Parent)
}

func render(t *testing.T, o Options) string {
	t.Helper()
	traces := Build(rollout())
	require.Len(t, traces, 2)
	var b bytes.Buffer
	Render(&b, traces[1], o)
	return b.String()
}

// line is the one line of out that shows the span name at depth (two
// spaces a level) in service's column.
func line(t *testing.T, out, service string, depth int, name string) string {
	t.Helper()
	prefix := fmtCol(service, 24) + " " + strings.Repeat("  ", depth) + name
	var found []string
	for _, l := range strings.Split(out, "\n") {
		if strings.HasPrefix(l, prefix) {
			found = append(found, l)
		}
	}
	require.Len(t, found, 1, "one line for %s %q at depth %d in:\n%s", service, name, depth, out)
	return found[0]
}

func fmtCol(s string, w int) string { return s + strings.Repeat(" ", w-len(s)) }

// barOf is the bar between the line's two '|'.
func barOf(t *testing.T, l string) string {
	t.Helper()
	i, j := strings.Index(l, "|"), strings.LastIndex(l, "|")
	require.Less(t, i, j, "a bar in %q", l)
	return l[i+1 : j]
}

func bars(from, to, width int) string {
	return strings.Repeat(" ", from) + strings.Repeat("=", to-from) + strings.Repeat(" ", width-to)
}

func TestRenderDrawsIndentedLinesWithDurationsAndBars(t *testing.T) {
	out := render(t, Options{})
	lines := strings.Split(strings.TrimRight(out, "\n"), "\n")
	assert.Equal(t, "trace "+traceA.String()+"  1s  8 spans", lines[0])
	require.Len(t, lines, 1+7, "a header and one line per linked span (the duplicate left out)")

	root := line(t, out, "kubestitch", 0, "deployment.rollout")
	assert.Contains(t, root, " 1s |")
	assert.Equal(t, bars(0, 40, 40), barOf(t, root), "the root spans the whole width")
	assert.True(t, strings.HasSuffix(root, "| Deployment default/web"))

	// A name too long for its 48-character column, indentation included,
	// is cut, keeping the bars aligned.
	req := line(t, out, "apiserver", 1, "POST /apis/apps/v1/namespaces/default/deplo... ")
	assert.Contains(t, req, " 250ms |")
	assert.Equal(t, bars(0, 10, 40), barOf(t, req), "the first quarter")
	assert.Equal(t, strings.Index(root, "|"), strings.Index(req, "|"), "bars aligned")

	etcd := line(t, out, "apiserver", 2, "etcd")
	assert.Contains(t, etcd, " 100ms |")
	assert.Equal(t, bars(4, 8, 40), barOf(t, etcd))

	ok, failing := lines[4], lines[5]
	assert.True(t, strings.HasPrefix(ok, fmtCol("kubestitch", 24)+" "+fmtCol("  pod.startup", 48)), ok)
	assert.Contains(t, ok, " 500ms |")
	assert.Equal(t, bars(10, 30, 40), barOf(t, ok))
	assert.True(t, strings.HasSuffix(ok, "| Pod default/web-7d9f8c6b5-bq4zt"), ok)
	assert.True(t, strings.HasPrefix(failing, fmtCol("kubestitch", 24)+" "+fmtCol("  pod.startup", 48)), failing)
	assert.Equal(t, bars(20, 40, 40), barOf(t, failing))
	assert.True(t, strings.HasSuffix(failing, "| Pod default/web-7d9f8c6b5-xk2lp (error: FailedScheduling: 0/3 nodes are available)"), failing)
	assert.Contains(t, line(t, out, "kubestitch", 2, "pod_startup_latency"), " 500ms |")

	orphan := line(t, out, "apiserver", 0, "GET /api/v1/pods")
	assert.True(t, strings.HasSuffix(orphan, " (orphan)"), orphan)
	assert.Contains(t, orphan, " 50ms |")

	// Lines in depth-first order from the root, the orphan last.
	order := []string{"deployment.rollout", "POST ", "etcd", "bq4zt", "xk2lp (error", "pod_startup_latency", "(orphan)"}
	for i, want := range order {
		assert.Contains(t, lines[1+i], want, "line %d", 1+i)
	}
}

func TestRenderCollapsesAPIRequests(t *testing.T) {
	out := render(t, Options{Collapse: CollapseAPIRequests})
	req := line(t, out, "apiserver", 1, "POST ")
	assert.True(t, strings.HasSuffix(req, " (+1 spans)"), req)
	assert.NotContains(t, out, "etcd")
	assert.Contains(t, out, "pod_startup_latency", "only API requests collapse")
}

func TestRenderMasksForGoldenFiles(t *testing.T) {
	out := render(t, Options{MaskDurations: true, MaskNames: true})
	assert.False(t, strings.HasPrefix(out, "trace "), "no header with the trace's duration")
	assert.NotContains(t, out, "|", "no bars")
	assert.NotContains(t, out, "ms")
	assert.NotContains(t, out, "FailedScheduling", "the message varies; the error stays")
	assert.Contains(t, out, "\n"+fmtCol("kubestitch", 24)+" "+fmtCol("  pod.startup", 48)+" Pod default/web-xxxxxxxxx-xxxxx\n")
	assert.Contains(t, out, "\n"+fmtCol("kubestitch", 24)+" "+fmtCol("  pod.startup", 48)+" Pod default/web-xxxxxxxxx-xxxxx (error)\n")
	assert.Contains(t, out, " Deployment default/web\n", "a word is not masked")
}

func TestRenderFragmentsOnlySkeleton(t *testing.T) {
	out := render(t, Options{MaskDurations: true, FragmentsOnly: true})
	assert.NotContains(t, out, "POST ", "an API request is not a fragment")
	assert.NotContains(t, out, "etcd")
	lines := strings.Split(strings.TrimRight(out, "\n"), "\n")
	require.Len(t, lines, 5, out)
	assert.Contains(t, lines[1], "bq4zt", "siblings by name, then object")
	assert.Contains(t, lines[2], "xk2lp")

	out = render(t, Options{MaskDurations: true, MaskNames: true, FragmentsOnly: true, MergeSiblings: true})
	assert.Equal(t, fmtCol("kubestitch", 24)+" "+fmtCol("deployment.rollout", 48)+" Deployment default/web\n"+
		fmtCol("kubestitch", 24)+" "+fmtCol("  pod.startup", 48)+" Pod default/web-xxxxxxxxx-xxxxx ×2\n"+
		fmtCol("kubestitch", 24)+" "+fmtCol("    pod_startup_latency", 48)+" Pod default/web-xxxxxxxxx-xxxxx\n", out)

	out = render(t, Options{MaskDurations: true, MaskNames: true, FragmentsOnly: true, MergeSiblings: true, MaskCounts: true, NoSLI: true})
	assert.Contains(t, out, "Pod default/web-xxxxxxxxx-xxxxx ×n\n")
	assert.NotContains(t, out, "pod_startup_latency")
}
