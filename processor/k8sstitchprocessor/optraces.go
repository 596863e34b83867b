package k8sstitchprocessor

import (
	"time"

	"go.opentelemetry.io/collector/pdata/pcommon"
)

// opTraceIndex remembers which namespace each operation trace opened here
// belongs to, for opTraceFor (at most maxOpTraces traces, oldest first
// out): a traceparent may continue a trace of its own namespace only.
type opTraceIndex struct {
	ns map[pcommon.TraceID]opTraceEntry
	// order holds the traces oldest first from head on: expiring moves
	// head, and the slice is compacted once half of it is spent, so an
	// add costs O(1) amortized at the bound too.
	order []pcommon.TraceID
	head  int
}

type opTraceEntry struct {
	namespace string
	at        time.Time
	// derived: the trace ID is this processor's own (fragment.TraceID),
	// not a user's traceparent continued.
	derived bool
}

// opTraceFor is how long an operation's trace is remembered, and
// maxOpTraces how many at most (about 80 bytes each).
const (
	opTraceFor  = time.Hour
	maxOpTraces = 100_000
)

func (x *opTraceIndex) add(id pcommon.TraceID, namespace string, derived bool, now time.Time) {
	if x.ns == nil {
		x.ns = map[pcommon.TraceID]opTraceEntry{}
	}
	if _, ok := x.ns[id]; !ok {
		x.order = append(x.order, id)
	}
	x.ns[id] = opTraceEntry{namespace, now, derived}
	for x.head < len(x.order) {
		old := x.order[x.head]
		if now.Sub(x.ns[old].at) < opTraceFor && len(x.order)-x.head <= maxOpTraces {
			break
		}
		delete(x.ns, old)
		x.head++
	}
	if x.head > len(x.order)/2 {
		x.order = append(x.order[:0], x.order[x.head:]...)
		x.head = 0
	}
}

// derived says whether id is an operation trace this processor made: no
// span but the ones it rewrites into it may carry it.
func (x *opTraceIndex) derived(id pcommon.TraceID) bool {
	return x.ns[id].derived
}

// namespaceOf is the namespace of an operation trace opened here.
func (x *opTraceIndex) namespaceOf(id pcommon.TraceID) (string, bool) {
	e, ok := x.ns[id]
	return e.namespace, ok
}
