package k8sstitchprocessor

import (
	"container/list"
	"time"

	"go.opentelemetry.io/collector/pdata/pcommon"
	"go.opentelemetry.io/collector/pdata/ptrace"
)

// waitingSpan is a span held until its object or its trace's decision is
// known, with its own copy of resource and scope.
type waitingSpan struct {
	td      ptrace.Traces
	arrived time.Time
	orig    pcommon.TraceID
	frag    *fragmentKey
	elem    *list.Element
}

func (w *waitingSpan) span() ptrace.Span {
	return w.td.ResourceSpans().At(0).ScopeSpans().At(0).Spans().At(0)
}

// waitBuffer holds spans in arrival order, bounded: put returns what it
// evicted, and the caller decides and counts what happens to it.
type waitBuffer struct {
	order   *list.List
	byTrace map[pcommon.TraceID][]*waitingSpan
	max     int
	// onFragment, when set, hears every fragment entering (in) or leaving
	// the buffer: the processor persists waiting fragments with them.
	onFragment func(w *waitingSpan, in bool)
}

func newWaitBuffer(max int) *waitBuffer {
	return &waitBuffer{order: list.New(), byTrace: map[pcommon.TraceID][]*waitingSpan{}, max: max}
}

func (b *waitBuffer) put(rs ptrace.ResourceSpans, ss ptrace.ScopeSpans, s ptrace.Span, orig pcommon.TraceID, frag *fragmentKey, now time.Time) (evicted *waitingSpan) {
	if b.order.Len() >= b.max {
		evicted = b.order.Front().Value.(*waitingSpan)
		b.remove(evicted)
	}
	td := ptrace.NewTraces()
	nrs := td.ResourceSpans().AppendEmpty()
	rs.Resource().CopyTo(nrs.Resource())
	nrs.SetSchemaUrl(rs.SchemaUrl())
	nss := nrs.ScopeSpans().AppendEmpty()
	ss.Scope().CopyTo(nss.Scope())
	nss.SetSchemaUrl(ss.SchemaUrl())
	s.CopyTo(nss.Spans().AppendEmpty())
	w := &waitingSpan{td: td, arrived: now, orig: orig, frag: frag}
	w.elem = b.order.PushBack(w)
	if frag == nil {
		b.byTrace[orig] = append(b.byTrace[orig], w)
	} else if b.onFragment != nil {
		b.onFragment(w, true)
	}
	return evicted
}

func (b *waitBuffer) remove(w *waitingSpan) {
	b.order.Remove(w.elem)
	if w.frag != nil {
		if b.onFragment != nil {
			b.onFragment(w, false)
		}
		return
	}
	ws := b.byTrace[w.orig]
	for i, x := range ws {
		if x == w {
			ws = append(ws[:i], ws[i+1:]...)
			break
		}
	}
	if len(ws) == 0 {
		delete(b.byTrace, w.orig)
	} else {
		b.byTrace[w.orig] = ws
	}
}

// takeTrace removes and returns every waiting span of an app trace.
func (b *waitBuffer) takeTrace(orig pcommon.TraceID) []*waitingSpan {
	ws := b.byTrace[orig]
	delete(b.byTrace, orig)
	for _, w := range ws {
		b.order.Remove(w.elem)
	}
	return ws
}

// fragments lists the waiting fragments, oldest first.
func (b *waitBuffer) fragments() []*waitingSpan {
	var out []*waitingSpan
	for e := b.order.Front(); e != nil; e = e.Next() {
		if w := e.Value.(*waitingSpan); w.frag != nil {
			out = append(out, w)
		}
	}
	return out
}

// expired lists the spans that waited at least d, oldest first.
func (b *waitBuffer) expired(now time.Time, d time.Duration) []*waitingSpan {
	var out []*waitingSpan
	for e := b.order.Front(); e != nil; e = e.Next() {
		w := e.Value.(*waitingSpan)
		if now.Sub(w.arrived) < d {
			break
		}
		out = append(out, w)
	}
	return out
}

func (b *waitBuffer) len() int { return b.order.Len() }

// fifoMap is a map bounded to max entries: it grows to max, then the
// oldest entry leaves first.
type fifoMap[K comparable, V any] struct {
	m    map[K]V
	ring []K
	next int
	max  int
}

func newFIFOMap[K comparable, V any](max int) *fifoMap[K, V] {
	return &fifoMap[K, V]{m: map[K]V{}, max: max}
}

func (f *fifoMap[K, V]) get(k K) (V, bool) {
	v, ok := f.m[k]
	return v, ok
}

// put adds a key that is not in the map.
func (f *fifoMap[K, V]) put(k K, v V) {
	if len(f.ring) < f.max {
		f.ring = append(f.ring, k)
	} else {
		delete(f.m, f.ring[f.next])
		f.ring[f.next] = k
		f.next = (f.next + 1) % f.max
	}
	f.m[k] = v
}

// idSet remembers the last n span IDs seen, to drop a fragment that comes
// twice (a relist, a restart, two replicas).
type idSet struct {
	*fifoMap[pcommon.SpanID, struct{}]
}

func newIDSet(n int) idSet { return idSet{newFIFOMap[pcommon.SpanID, struct{}](n)} }

// add reports whether id was new.
func (s idSet) add(id pcommon.SpanID) bool {
	if _, ok := s.get(id); ok {
		return false
	}
	s.put(id, struct{}{})
	return true
}

// traceState is what the processor knows of one app trace (by its
// original trace ID): the best join hint seen, and once made, the decision.
type traceState struct {
	id       pcommon.TraceID
	hint     joinHint
	rootSeen bool
	rootID   pcommon.SpanID
	// parents are the distinct parent IDs seen in the trace (the first
	// nParents, at most maxTrackedParents): a root whose child has not
	// arrived is not a whole trace yet. An array, not a slice: no
	// allocation per trace on the hot path.
	parents  [maxTrackedParents]pcommon.SpanID
	nParents uint8
	decided  bool
	join     bool
	newTrace pcommon.TraceID
	parent   pcommon.SpanID
}

// traceTable holds the state of the last max app traces: a decision
// outlives the trace's root by as many traces as the table holds, for late
// children.
type traceTable struct {
	*fifoMap[pcommon.TraceID, *traceState]
	// slab hands out traceStates from chunks, one allocation per
	// slabSize traces instead of one per trace. The table evicts in
	// arrival order, so a chunk is freed once its last trace is evicted.
	slab []traceState
}

const slabSize = 256

func newTraceTable(max int) *traceTable {
	return &traceTable{fifoMap: newFIFOMap[pcommon.TraceID, *traceState](max)}
}

// state is the trace's state, created on first sight.
func (t *traceTable) state(id pcommon.TraceID) *traceState {
	if ts, ok := t.get(id); ok {
		return ts
	}
	if len(t.slab) == 0 {
		t.slab = make([]traceState, slabSize)
	}
	ts := &t.slab[0]
	t.slab = t.slab[1:]
	ts.id = id
	t.put(id, ts)
	return ts
}

// maxTrackedParents bounds traceState.parents: a trace with more distinct
// parents has surely delivered its root's children.
const maxTrackedParents = 8

func (ts *traceState) sawParent(id pcommon.SpanID) {
	if ts.nParents >= maxTrackedParents {
		return
	}
	for _, p := range ts.parents[:ts.nParents] {
		if p == id {
			return
		}
	}
	ts.parents[ts.nParents] = id
	ts.nParents++
}

// rootHasChild says whether a child of the trace's root has arrived.
func (ts *traceState) rootHasChild() bool {
	if ts.nParents >= maxTrackedParents {
		return true
	}
	for _, p := range ts.parents[:ts.nParents] {
		if p == ts.rootID {
			return true
		}
	}
	return false
}
