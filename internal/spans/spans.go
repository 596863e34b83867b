// Package spans walks the spans of a ptrace.Traces, the one loop every
// component and test here needs.
package spans

import (
	"iter"

	"go.opentelemetry.io/collector/pdata/pcommon"
	"go.opentelemetry.io/collector/pdata/ptrace"
)

// All yields every span of td with its resource's attributes, in order.
func All(td ptrace.Traces) iter.Seq2[pcommon.Map, ptrace.Span] {
	return func(yield func(pcommon.Map, ptrace.Span) bool) {
		rss := td.ResourceSpans()
		for i := 0; i < rss.Len(); i++ {
			res := rss.At(i).Resource().Attributes()
			sss := rss.At(i).ScopeSpans()
			for j := 0; j < sss.Len(); j++ {
				ss := sss.At(j).Spans()
				for k := 0; k < ss.Len(); k++ {
					if !yield(res, ss.At(k)) {
						return
					}
				}
			}
		}
	}
}
