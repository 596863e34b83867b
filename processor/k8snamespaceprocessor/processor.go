package k8snamespaceprocessor

import (
	"context"

	"go.opentelemetry.io/collector/pdata/pcommon"
	"go.opentelemetry.io/collector/pdata/ptrace"
	"go.opentelemetry.io/collector/processor"

	"github.com/kubestitch/kubestitch/internal/apipath"
	"github.com/kubestitch/kubestitch/internal/fragment"
	"github.com/kubestitch/kubestitch/processor/k8snamespaceprocessor/internal/metadata"
)

// namespaceProcessor puts every span under a resource that names the
// namespace its trace works in (k8s.namespace.name), so that a
// load-balancing exporter routing by that resource attribute sends a whole
// trace to the gateway that owns the namespace. kube-apiserver names the
// namespace only in the request span's http.target, the kubelet only on
// syncPod; the other spans of those traces (handler, etcd, CRI calls)
// inherit it here. Run it after groupbytrace, which makes each trace whole
// in one batch.
//
// The data path: spans -> namespace of each trace -> spans regrouped under
// per-namespace resources.
type namespaceProcessor struct {
	tel *metadata.TelemetryBuilder
}

func newNamespaceProcessor(set processor.Settings) (*namespaceProcessor, error) {
	tel, err := metadata.NewTelemetryBuilder(set.TelemetrySettings)
	if err != nil {
		return nil, err
	}
	return &namespaceProcessor{tel: tel}, nil
}

func (p *namespaceProcessor) processTraces(ctx context.Context, td ptrace.Traces) (ptrace.Traces, error) {
	byTrace := map[pcommon.TraceID]string{}
	conflicts := map[pcommon.TraceID]bool{}
	scoped := true // every resource already names its namespace
	rss := td.ResourceSpans()
	for i := 0; i < rss.Len(); i++ {
		rs := rss.At(i)
		resNS, hasNS := rs.Resource().Attributes().Get(fragment.KeyNamespace)
		if !hasNS || resNS.Str() == "" {
			scoped = false
		}
		sss := rs.ScopeSpans()
		for j := 0; j < sss.Len(); j++ {
			spans := sss.At(j).Spans()
			for k := 0; k < spans.Len(); k++ {
				s := spans.At(k)
				ns := resNS.Str()
				if ns == "" {
					ns = namespaceOf(s)
				}
				if ns == "" {
					continue
				}
				if prev, ok := byTrace[s.TraceID()]; !ok {
					byTrace[s.TraceID()] = ns
				} else if prev != ns && !conflicts[s.TraceID()] {
					conflicts[s.TraceID()] = true
				}
			}
		}
	}
	if len(conflicts) > 0 {
		p.tel.K8snamespaceTraceConflicts.Add(ctx, int64(len(conflicts)))
	}
	if scoped {
		return td, nil
	}
	return regroup(ctx, td, byTrace, p), nil
}

// regroup moves each span into a copy of its resource and scope that names
// its trace's namespace.
func regroup(ctx context.Context, td ptrace.Traces, byTrace map[pcommon.TraceID]string, p *namespaceProcessor) ptrace.Traces {
	out := ptrace.NewTraces()
	type groupKey struct {
		resource, scope int
		ns              string
	}
	groups := map[groupKey]ptrace.SpanSlice{}
	var unscoped int64
	rss := td.ResourceSpans()
	for i := 0; i < rss.Len(); i++ {
		rs := rss.At(i)
		resources := map[string]ptrace.ResourceSpans{}
		sss := rs.ScopeSpans()
		for j := 0; j < sss.Len(); j++ {
			ss := sss.At(j)
			spans := ss.Spans()
			for k := 0; k < spans.Len(); k++ {
				s := spans.At(k)
				ns := byTrace[s.TraceID()]
				if ns == "" {
					unscoped++
				}
				key := groupKey{i, j, ns}
				dst, ok := groups[key]
				if !ok {
					ors, ok := resources[ns]
					if !ok {
						ors = out.ResourceSpans().AppendEmpty()
						rs.Resource().CopyTo(ors.Resource())
						ors.SetSchemaUrl(rs.SchemaUrl())
						if ns != "" {
							ors.Resource().Attributes().PutStr(fragment.KeyNamespace, ns)
						}
						resources[ns] = ors
					}
					oss := ors.ScopeSpans().AppendEmpty()
					ss.Scope().CopyTo(oss.Scope())
					oss.SetSchemaUrl(ss.SchemaUrl())
					dst = oss.Spans()
					groups[key] = dst
				}
				s.MoveTo(dst.AppendEmpty())
			}
		}
	}
	if unscoped > 0 {
		p.tel.K8snamespaceSpansUnscoped.Add(ctx, unscoped)
	}
	return out
}

// namespaceOf reads the namespace a span names: its k8s.namespace.name
// attribute, or the namespace segment of an apiserver request target
// (/api/v1/namespaces/NS/..., /apis/G/V/namespaces/NS/...).
func namespaceOf(s ptrace.Span) string {
	a := s.Attributes()
	if v, ok := a.Get(fragment.KeyNamespace); ok && v.Str() != "" {
		return v.Str()
	}
	if v, ok := a.Get("http.target"); ok {
		return namespaceOfTarget(v.Str())
	}
	if v, ok := a.Get("url.path"); ok {
		return namespaceOfTarget(v.Str())
	}
	return ""
}

func namespaceOfTarget(target string) string {
	p, _ := apipath.Parse(target)
	return p.Namespace
}
