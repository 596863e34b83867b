package k8sstitchprocessor

import (
	"container/list"
	"iter"
	"maps"
	"time"

	"go.opentelemetry.io/collector/pdata/pcommon"
	"go.opentelemetry.io/collector/pdata/ptrace"
)

// waitingResource is the resource of waiting spans, copied once per
// ResourceSpans of a batch and shared by all of its spans that wait: a
// request with a 2 MiB resource and 50,000 spans holds one copy, not
// 50,000.
type waitingResource struct {
	res       pcommon.Resource
	schemaURL string
	bytes     int
	refs      int
}

// waitingScope is the scope of waiting spans, shared like the resource.
type waitingScope struct {
	res       *waitingResource
	scope     pcommon.InstrumentationScope
	schemaURL string
	bytes     int
	refs      int
}

func newWaitingResource(rs ptrace.ResourceSpans) *waitingResource {
	r := &waitingResource{res: pcommon.NewResource(), schemaURL: rs.SchemaUrl()}
	rs.Resource().CopyTo(r.res)
	r.bytes = sharedOverhead + mapBytes(r.res.Attributes()) + len(r.schemaURL)
	return r
}

func newWaitingScope(res *waitingResource, ss ptrace.ScopeSpans) *waitingScope {
	sc := &waitingScope{res: res, scope: pcommon.NewInstrumentationScope(), schemaURL: ss.SchemaUrl()}
	ss.Scope().CopyTo(sc.scope)
	sc.bytes = sharedOverhead + len(sc.scope.Name()) + len(sc.scope.Version()) + mapBytes(sc.scope.Attributes()) + len(sc.schemaURL)
	return sc
}

// waitingSpan is a span held until its object or its trace's decision is
// known. It owns its span (moved out of the batch) and shares its resource
// and scope.
type waitingSpan struct {
	s     ptrace.Span
	scope *waitingScope
	bytes int
	// arrived starts its wait; first is when it came (arrived, unless it
	// waits again for its trace's root: extend).
	arrived, first time.Time
	orig           pcommon.TraceID
	frag           *fragmentKey
	elem           *list.Element
	// gone: the span was emitted (moved into an output batch).
	gone bool
}

func (w *waitingSpan) span() ptrace.Span { return w.s }

// traces is a copy of the span with its resource and scope, as a batch of
// its own (for storage).
func (w *waitingSpan) traces() ptrace.Traces {
	td := ptrace.NewTraces()
	rs := td.ResourceSpans().AppendEmpty()
	w.scope.res.res.CopyTo(rs.Resource())
	rs.SetSchemaUrl(w.scope.res.schemaURL)
	ss := rs.ScopeSpans().AppendEmpty()
	w.scope.scope.CopyTo(ss.Scope())
	ss.SetSchemaUrl(w.scope.schemaURL)
	w.s.CopyTo(ss.Spans().AppendEmpty())
	return td
}

// waitBuffer holds spans in arrival order, bounded in spans and in bytes
// (spans, and each shared resource and scope once): put returns what it
// evicted, and the caller decides and counts what happens to it.
type waitBuffer struct {
	// apps and frags hold the waiting app spans and fragments, each in
	// arrival order (the order of their waits' starts): at a limit app
	// spans go first, so a flood of undecidable spans, which anyone who
	// reaches OTLP can send, cannot evict a genuine fragment (trust
	// finding 6).
	apps, frags *list.List
	byTrace     map[pcommon.TraceID][]*waitingSpan
	max         int
	maxBytes    int
	bytes       int
	// With trackFragments (storage on), fragIn and fragOut are the
	// fragments that entered and left since takeFragmentChanges: a waiting
	// fragment was acknowledged to its sender, so it is stored until it
	// leaves.
	trackFragments bool
	fragIn         map[pcommon.SpanID]*waitingSpan
	fragOut        map[pcommon.SpanID]struct{}
}

func newWaitBuffer(max, maxBytes int) *waitBuffer {
	return &waitBuffer{apps: list.New(), frags: list.New(), byTrace: map[pcommon.TraceID][]*waitingSpan{}, max: max, maxBytes: maxBytes}
}

// put moves s into the buffer. At either limit the oldest app spans are
// evicted, then the oldest fragments, the new one too if it alone is over
// max_waiting_bytes.
func (b *waitBuffer) put(scope *waitingScope, s ptrace.Span, orig pcommon.TraceID, frag *fragmentKey, now time.Time) (evicted []*waitingSpan) {
	w := &waitingSpan{s: ptrace.NewSpan(), scope: scope, arrived: now, first: now, orig: orig, frag: frag}
	s.MoveTo(w.s)
	w.bytes = spanBytes(w.s)
	b.bytes += w.bytes
	if scope.refs == 0 {
		b.bytes += scope.bytes
		if scope.res.refs == 0 {
			b.bytes += scope.res.bytes
		}
		scope.res.refs++
	}
	scope.refs++
	w.elem = b.listOf(w).PushBack(w)
	if frag == nil {
		b.byTrace[orig] = append(b.byTrace[orig], w)
	} else if b.trackFragments {
		id := w.s.SpanID()
		delete(b.fragOut, id)
		b.fragIn[id] = w
	}
	for b.len() > 0 && (b.len() > b.max || b.bytes > b.maxBytes) {
		first := b.apps.Front()
		if first == nil {
			first = b.frags.Front()
		}
		ev := first.Value.(*waitingSpan)
		b.remove(ev)
		evicted = append(evicted, ev)
	}
	return evicted
}

// unref gives back w's bytes and its share of its resource and scope.
func (b *waitBuffer) unref(w *waitingSpan) {
	b.listOf(w).Remove(w.elem)
	w.elem = nil
	b.bytes -= w.bytes
	if w.scope.refs--; w.scope.refs == 0 {
		b.bytes -= w.scope.bytes
		if w.scope.res.refs--; w.scope.res.refs == 0 {
			b.bytes -= w.scope.res.bytes
		}
	}
}

func (b *waitBuffer) remove(w *waitingSpan) {
	b.unref(w)
	if w.frag != nil {
		if b.trackFragments {
			id := w.s.SpanID()
			if _, unstored := b.fragIn[id]; unstored {
				delete(b.fragIn, id) // never stored
			} else {
				b.fragOut[id] = struct{}{}
			}
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

// trackFragmentChanges starts recording the fragments that enter and
// leave, for storage.
func (b *waitBuffer) trackFragmentChanges() {
	b.trackFragments = true
	b.fragIn, b.fragOut = map[pcommon.SpanID]*waitingSpan{}, map[pcommon.SpanID]struct{}{}
}

// takeFragmentChanges returns the fragments that entered (still waiting)
// and left since the last call, and starts anew.
func (b *waitBuffer) takeFragmentChanges() (in map[pcommon.SpanID]*waitingSpan, out map[pcommon.SpanID]struct{}) {
	in, out = b.fragIn, b.fragOut
	b.fragIn, b.fragOut = map[pcommon.SpanID]*waitingSpan{}, map[pcommon.SpanID]struct{}{}
	return in, out
}

// traces yields the original IDs of the app traces with spans waiting;
// the caller may take a trace (takeTrace) while ranging.
func (b *waitBuffer) traces() iter.Seq[pcommon.TraceID] {
	return maps.Keys(b.byTrace)
}

// takeTrace removes and returns every waiting span of an app trace.
func (b *waitBuffer) takeTrace(orig pcommon.TraceID) []*waitingSpan {
	ws := b.byTrace[orig]
	delete(b.byTrace, orig)
	for _, w := range ws {
		b.unref(w)
	}
	return ws
}

// fragments lists the waiting fragments, oldest first.
func (b *waitBuffer) fragments() []*waitingSpan {
	var out []*waitingSpan
	for e := b.frags.Front(); e != nil; e = e.Next() {
		out = append(out, e.Value.(*waitingSpan))
	}
	return out
}

// expired lists the spans that waited at least d, oldest first.
func (b *waitBuffer) expired(now time.Time, d time.Duration) []*waitingSpan {
	var out []*waitingSpan
	a, f := b.apps.Front(), b.frags.Front()
	for a != nil || f != nil {
		e := a
		if a == nil || f != nil && f.Value.(*waitingSpan).arrived.Before(a.Value.(*waitingSpan).arrived) {
			e = f
		}
		w := e.Value.(*waitingSpan)
		if now.Sub(w.arrived) < d {
			break
		}
		out = append(out, w)
		if e == a {
			a = a.Next()
		} else {
			f = f.Next()
		}
	}
	return out
}

// extend lets w wait again from now, behind every other span: its order
// stays that of the wait's start.
func (b *waitBuffer) extend(w *waitingSpan, now time.Time) {
	w.arrived = now
	b.listOf(w).MoveToBack(w.elem)
}

func (b *waitBuffer) len() int { return b.apps.Len() + b.frags.Len() }

// listOf is the list w waits in.
func (b *waitBuffer) listOf(w *waitingSpan) *list.List {
	if w.frag != nil {
		return b.frags
	}
	return b.apps
}

// spanOut builds an output batch from released spans: one ResourceSpans
// per shared resource and one ScopeSpans per shared scope, so a resource
// is copied once per batch, not once per span.
type spanOut struct {
	td        ptrace.Traces
	resources map[*waitingResource]ptrace.ResourceSpans
	scopes    map[*waitingScope]ptrace.SpanSlice
}

func newSpanOut() *spanOut {
	return &spanOut{td: ptrace.NewTraces(), resources: map[*waitingResource]ptrace.ResourceSpans{}, scopes: map[*waitingScope]ptrace.SpanSlice{}}
}

// emit moves a released span into the batch.
func (o *spanOut) emit(w *waitingSpan) {
	spans, ok := o.scopes[w.scope]
	if !ok {
		rs, ok := o.resources[w.scope.res]
		if !ok {
			rs = o.td.ResourceSpans().AppendEmpty()
			w.scope.res.res.CopyTo(rs.Resource())
			rs.SetSchemaUrl(w.scope.res.schemaURL)
			o.resources[w.scope.res] = rs
		}
		ss := rs.ScopeSpans().AppendEmpty()
		w.scope.scope.CopyTo(ss.Scope())
		ss.SetSchemaUrl(w.scope.schemaURL)
		spans = ss.Spans()
		o.scopes[w.scope] = spans
	}
	w.s.MoveTo(spans.AppendEmpty())
	w.gone = true
}

// Sizes are estimates of the memory a span holds: its strings and a fixed
// overhead per span, attribute, event and link.
const (
	spanOverhead   = 200
	attrOverhead   = 48
	sharedOverhead = 128
)

func spanBytes(s ptrace.Span) int {
	n := spanOverhead + len(s.Name()) + len(s.TraceState().AsRaw()) + len(s.Status().Message()) + mapBytes(s.Attributes())
	evs := s.Events()
	for i := 0; i < evs.Len(); i++ {
		n += attrOverhead + len(evs.At(i).Name()) + mapBytes(evs.At(i).Attributes())
	}
	ls := s.Links()
	for i := 0; i < ls.Len(); i++ {
		n += attrOverhead + len(ls.At(i).TraceState().AsRaw()) + mapBytes(ls.At(i).Attributes())
	}
	return n
}

func mapBytes(m pcommon.Map) int {
	n := 0
	for k, v := range m.All() {
		n += attrOverhead + len(k) + valueBytes(v)
	}
	return n
}

func valueBytes(v pcommon.Value) int {
	switch v.Type() {
	case pcommon.ValueTypeStr:
		return len(v.Str())
	case pcommon.ValueTypeBytes:
		return v.Bytes().Len()
	case pcommon.ValueTypeMap:
		return mapBytes(v.Map())
	case pcommon.ValueTypeSlice:
		n := 0
		sl := v.Slice()
		for i := 0; i < sl.Len(); i++ {
			n += attrOverhead + valueBytes(sl.At(i))
		}
		return n
	}
	return 0
}
