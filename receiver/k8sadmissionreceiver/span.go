package k8sadmissionreceiver

import (
	"time"

	"go.opentelemetry.io/collector/pdata/pcommon"
	"go.opentelemetry.io/collector/pdata/ptrace"
	"go.opentelemetry.io/otel/trace"

	"github.com/kubestitch/kubestitch/internal/fragment"
	"github.com/kubestitch/kubestitch/receiver/k8sadmissionreceiver/internal/metadata"
)

// serviceName is the service.name of the review spans.
const serviceName = "kubestitch-admission"

// spanName is the name of a review span.
const spanName = "admission.review"

// reviewSpan is one answered review on its way to the pipeline.
type reviewSpan struct {
	review
	parent     trace.SpanContext
	start, end time.Time
}

// appendSpans writes review spans into td, one resource per namespace so
// that a namespace-sharded pipeline can route them.
func appendSpans(td ptrace.Traces, spans []reviewSpan) {
	byNS := map[string]ptrace.SpanSlice{}
	for i := range spans {
		rs := &spans[i]
		ss, ok := byNS[rs.namespace]
		if !ok {
			r := td.ResourceSpans().AppendEmpty()
			r.Resource().Attributes().PutStr(fragment.KeyServiceName, serviceName)
			if rs.namespace != "" {
				r.Resource().Attributes().PutStr(fragment.KeyNamespace, rs.namespace)
			}
			scope := r.ScopeSpans().AppendEmpty()
			scope.Scope().SetName(metadata.ScopeName)
			ss = scope.Spans()
			byNS[rs.namespace] = ss
		}
		fillSpan(ss.AppendEmpty(), rs)
	}
}

// fillSpan makes the review's span: a server span under the apiserver's
// webhook call when the request carried a traceparent, so it sits in the
// request's own trace; else the root of a trace of its own.
func fillSpan(s ptrace.Span, rs *reviewSpan) {
	if rs.parent.IsValid() {
		s.SetTraceID(pcommon.TraceID(rs.parent.TraceID()))
		s.SetParentSpanID(pcommon.SpanID(rs.parent.SpanID()))
	} else {
		s.SetTraceID(fragment.AdmissionTraceID(rs.requestUID))
	}
	s.SetSpanID(fragment.AdmissionSpanID(rs.requestUID))
	s.SetName(spanName)
	s.SetKind(ptrace.SpanKindServer)
	s.SetStartTimestamp(pcommon.NewTimestampFromTime(rs.start))
	s.SetEndTimestamp(pcommon.NewTimestampFromTime(rs.end))
	a := s.Attributes()
	a.EnsureCapacity(16)
	put := func(k, v string) {
		if v != "" {
			a.PutStr(k, v)
		}
	}
	put(fragment.KeyAdmissionRequestUID, rs.requestUID)
	put(fragment.KeyAdmissionOperation, rs.operation)
	put(fragment.KeyAdmissionGroup, rs.group)
	put(fragment.KeyAdmissionVersion, rs.version)
	put(fragment.KeyAdmissionResource, rs.resource)
	put(fragment.KeyAdmissionSubresource, rs.subresource)
	a.PutBool(fragment.KeyAdmissionDryRun, rs.dryRun)
	put(fragment.KeyAdmissionUser, rs.user)
	put(fragment.KeyUID, rs.uid)
	put(fragment.KeyKind, rs.kind)
	put(fragment.KeyName, rs.name)
	put(fragment.KeyNamespace, rs.namespace)
	put(fragment.KeyOwnerKind, rs.ownerKind)
	put(fragment.KeyOwnerUID, rs.ownerUID)
	put(fragment.KeyOwnerName, rs.ownerName)
}
