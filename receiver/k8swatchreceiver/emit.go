package k8swatchreceiver

import (
	"go.opentelemetry.io/collector/pdata/pcommon"
	"go.opentelemetry.io/collector/pdata/ptrace"

	"github.com/kubestitch/kubestitch/internal/fragment"
	"github.com/kubestitch/kubestitch/internal/spans"
)

// toTraces turns fragments into one ptrace.Traces, one ResourceSpans per
// (service, namespace), so a backend draws the lanes of the components.
func toTraces(frags []fragmentSpan, version string) ptrace.Traces {
	td := ptrace.NewTraces()
	type resKey struct{ service, namespace string }
	scopes := map[resKey]ptrace.SpanSlice{}
	for i := range frags {
		f := &frags[i]
		k := resKey{f.service, f.obj.namespace}
		spans, ok := scopes[k]
		if !ok {
			rs := td.ResourceSpans().AppendEmpty()
			ra := rs.Resource().Attributes()
			ra.PutStr(fragment.KeyServiceName, fragment.TruncateUTF8(k.service, 128))
			if k.namespace != "" {
				ra.PutStr(fragment.KeyNamespace, k.namespace)
			}
			ss := rs.ScopeSpans().AppendEmpty()
			ss.Scope().SetName(fragment.ScopeName)
			ss.Scope().SetVersion(version)
			spans = ss.Spans()
			scopes[k] = spans
		}
		fillSpan(spans.AppendEmpty(), f)
	}
	return td
}

// signAll signs every fragment of td with its resource, last, once
// nothing changes them.
func signAll(td ptrace.Traces, key fragment.Key) {
	for res, s := range spans.All(td) {
		key.Sign(res, s)
	}
}

// fillSpan renders f: its head, then its level's part in the order of
// the span's attributes.
func fillSpan(s ptrace.Span, f *fragmentSpan) {
	s.SetTraceID(f.traceID)
	s.SetSpanID(f.spanID)
	s.SetParentSpanID(f.parentID) // none for an object span
	s.SetName(f.name)
	s.SetKind(ptrace.SpanKindInternal)
	s.SetStartTimestamp(pcommon.NewTimestampFromTime(f.start))
	s.SetEndTimestamp(pcommon.NewTimestampFromTime(f.end))
	o := f.obj
	a := s.Attributes()
	a.EnsureCapacity(16)
	a.PutStr(fragment.KeyLevel, f.level)
	a.PutStr(fragment.KeyKind, o.kind)
	a.PutStr(fragment.KeyUID, o.uid)
	a.PutStr(fragment.KeyName, fragment.TruncateUTF8(o.name, maxAttrLen))
	if o.namespace != "" {
		a.PutStr(fragment.KeyNamespace, o.namespace)
	}
	a.PutInt(fragment.KeyGeneration, o.generation)
	a.PutStr(fragment.KeyResourceVersion, o.resourceVersion)
	if o.ownerUID != "" {
		a.PutStr(fragment.KeyOwnerKind, o.ownerKind)
		a.PutStr(fragment.KeyOwnerUID, o.ownerUID)
	}
	a.PutStr(fragment.KeyTrigger, f.trigger)
	a.PutInt(fragment.KeyTriggerTime, f.triggerTime.UnixNano())
	a.PutStr(fragment.KeyTimeSource, f.timeSource)
	f.part.putStatus(s, a)
	// The semantic-convention keys of the object's own kind, so backends
	// that know them (and the processor's direct join) find the object.
	switch o.kind {
	case "Pod":
		a.PutStr(fragment.KeyPodUID, o.uid)
		a.PutStr(fragment.KeyPodName, fragment.TruncateUTF8(o.name, maxAttrLen))
		if o.pod != nil && o.pod.node != "" {
			a.PutStr(fragment.KeyNodeName, o.pod.node)
		}
	case "ReplicaSet", "Deployment", "StatefulSet", "DaemonSet", "Job", "CronJob", "Node":
		lk := lowerKind(o.kind)
		a.PutStr("k8s."+lk+".uid", o.uid)
		a.PutStr("k8s."+lk+".name", fragment.TruncateUTF8(o.name, maxAttrLen))
	}
	f.part.putDetail(a)
	for k, v := range o.annotations {
		a.PutStr("k8s."+lowerKind(o.kind)+".annotation."+k, fragment.TruncateUTF8(v, maxAttrLen))
	}
	f.part.putEvents(s)
}

func lowerKind(kind string) string {
	switch kind {
	case "ReplicaSet":
		return "replicaset"
	case "StatefulSet":
		return "statefulset"
	case "DaemonSet":
		return "daemonset"
	case "CronJob":
		return "cronjob"
	}
	b := []byte(kind)
	for i, c := range b {
		if c >= 'A' && c <= 'Z' {
			b[i] = c + 'a' - 'A'
		}
	}
	return string(b)
}
