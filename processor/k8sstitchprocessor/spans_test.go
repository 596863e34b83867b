// Builders of spans for the tests: fragments and app spans as k8swatch,
// kube-apiserver and workloads make them.

package k8sstitchprocessor

import (
	"encoding/binary"
	"time"

	"go.opentelemetry.io/collector/pdata/pcommon"
	"go.opentelemetry.io/collector/pdata/ptrace"

	"github.com/kubestitch/kubestitch/internal/fragment"
	"github.com/kubestitch/kubestitch/internal/spans"
)

type spanMaker struct {
	td  ptrace.Traces
	rss map[string]ptrace.SpanSlice
	n   uint64
}

func newSpanMaker() *spanMaker {
	return &spanMaker{td: ptrace.NewTraces(), rss: map[string]ptrace.SpanSlice{}}
}

func (m *spanMaker) span(service string, trace pcommon.TraceID, parent pcommon.SpanID, name string, start time.Time, d time.Duration) ptrace.Span {
	ss, ok := m.rss[service]
	if !ok {
		rs := m.td.ResourceSpans().AppendEmpty()
		rs.Resource().Attributes().PutStr("service.name", service)
		ss = rs.ScopeSpans().AppendEmpty().Spans()
		m.rss[service] = ss
	}
	s := ss.AppendEmpty()
	m.n++
	var id pcommon.SpanID
	binary.BigEndian.PutUint64(id[:], m.n)
	s.SetTraceID(trace)
	s.SetSpanID(id)
	s.SetParentSpanID(parent)
	s.SetName(name)
	s.SetStartTimestamp(pcommon.NewTimestampFromTime(start))
	s.SetEndTimestamp(pcommon.NewTimestampFromTime(start.Add(d)))
	return s
}

func randomTrace(n uint64) pcommon.TraceID {
	var t pcommon.TraceID
	binary.BigEndian.PutUint64(t[:8], n*0x9e3779b97f4a7c15+1)
	binary.BigEndian.PutUint64(t[8:], n)
	return t
}

func fragmentSpan(m *spanMaker, service, kind, uid, name, owner, phase, level string, trig time.Time, start time.Time, d time.Duration) {
	trigger := "gen:1"
	var id, parent pcommon.SpanID
	switch level {
	case fragment.LevelObject:
		id = fragment.ObjectSpanID(uid, kind, trigger)
	case fragment.LevelTrigger:
		id, parent = fragment.TriggerSpanID(uid, trigger), fragment.ObjectSpanID(uid, kind, trigger)
	default:
		id, parent = fragment.SpanID(uid, phase, trigger), fragment.ObjectSpanID(uid, kind, trigger)
	}
	s := m.span(service, fragment.TraceID(uid, trigger), parent, phase, start, d)
	s.SetSpanID(id)
	a := s.Attributes()
	a.PutStr(fragment.KeyLevel, level)
	a.PutStr(fragment.KeyKind, kind)
	a.PutStr(fragment.KeyUID, uid)
	a.PutStr(fragment.KeyName, name)
	a.PutStr(fragment.KeyNamespace, "default")
	a.PutInt(fragment.KeyGeneration, 1)
	a.PutStr(fragment.KeyResourceVersion, "1")
	if owner != "" {
		a.PutStr(fragment.KeyOwnerKind, "ReplicaSet")
		a.PutStr(fragment.KeyOwnerUID, owner)
	}
	a.PutStr(fragment.KeyTrigger, trigger)
	a.PutInt(fragment.KeyTriggerTime, trig.UnixNano())
	a.PutStr(fragment.KeyTimeSource, fragment.TimeSourceWatch)
}

func apiRequest(m *spanMaker, trace pcommon.TraceID, method, route, target string, start time.Time, etcdKey string) {
	root := m.span("apiserver", trace, pcommon.SpanID{}, "authentication", start, 5*time.Millisecond)
	srv := m.span("apiserver", trace, root.SpanID(), method+" "+route, start, 4*time.Millisecond)
	srv.SetKind(ptrace.SpanKindServer)
	srv.Attributes().PutStr("http.request.method", method)
	srv.Attributes().PutStr("http.target", target)
	srv.Attributes().PutStr("user_agent.original", "kube-controller-manager/v1.37.2")
	h := m.span("apiserver", trace, srv.SpanID(), "Create", start, 3*time.Millisecond)
	e := m.span("apiserver", trace, h.SpanID(), "Create etcd3", start, 2*time.Millisecond)
	if etcdKey != "" {
		e.Attributes().PutStr("key", etcdKey)
	}
}

// forEachSpan visits every span of td with its resource.
func forEachSpan(td ptrace.Traces, f func(res pcommon.Map, s ptrace.Span)) {
	for res, s := range spans.All(td) {
		f(res, s)
	}
}

func appSpan(td ptrace.Traces, trace pcommon.TraceID, parent, id pcommon.SpanID, at time.Time) ptrace.Span {
	return serviceSpan(td, "app", trace, parent, id, at)
}

// serviceSpan is a span of a service, in a resource of its own.
func serviceSpan(td ptrace.Traces, service string, trace pcommon.TraceID, parent, id pcommon.SpanID, at time.Time) ptrace.Span {
	rs := td.ResourceSpans().AppendEmpty()
	rs.Resource().Attributes().PutStr(fragment.KeyServiceName, service)
	s := rs.ScopeSpans().AppendEmpty().Spans().AppendEmpty()
	s.SetTraceID(trace)
	s.SetParentSpanID(parent)
	s.SetSpanID(id)
	s.SetName("work")
	s.SetStartTimestamp(pcommon.NewTimestampFromTime(at.Add(-time.Millisecond)))
	s.SetEndTimestamp(pcommon.NewTimestampFromTime(at))
	return s
}
