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
