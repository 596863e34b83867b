package k8sstitchprocessor

import (
	"context"
	"slices"
	"sync"
	"time"

	"go.opentelemetry.io/collector/component"
	"go.opentelemetry.io/collector/consumer"
	"go.opentelemetry.io/collector/extension/xextension/storage"
	"go.opentelemetry.io/collector/pdata/pcommon"
	"go.opentelemetry.io/collector/pdata/ptrace"
	"go.opentelemetry.io/collector/processor"
	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/metric"
	"go.uber.org/zap"

	"github.com/kubestitch/kubestitch/internal/fragment"
	"github.com/kubestitch/kubestitch/processor/k8sstitchprocessor/internal/metadata"
)

// stitchProcessor joins fragments and app spans into one trace per
// operation. The data path: fragment -> ownerGraph -> operation (placement)
// -> rewrite; app spans: hint -> object -> operation -> rewrite.
//
// One mutex guards the state: the work under it is map lookups and a few
// attribute writes per span, and the next consumer is called outside it.
type stitchProcessor struct {
	cfg  *Config
	set  processor.Settings
	next consumer.Traces
	tel  *metadata.TelemetryBuilder
	now  func() time.Time

	mu      sync.Mutex
	graph   *ownerGraph
	traces  *traceTable
	waiting *waitBuffer
	// openRoots are the root operations not yet closed, for the timeout.
	openRoots map[*opRecord]*object
	// dirty and shed are the objects to store and to delete at the next
	// flush (with storage only).
	dirty map[string]*object
	shed  []string
	// infos and frags are the first pass's result, reused from batch to
	// batch.
	infos []spanInfo
	frags []fragInfo
	// pendingRelease are spans evicted from a full buffer, sent with the
	// next batch.
	pendingRelease []*waitingSpan
	// retiring are deleted objects whose deletion closed, oldest first:
	// they leave the graph keepJoinedFor waits later (late requests and
	// dependents' fragments still find them until then).
	retiring []retiree
	// passedOn are the fragments of the batch in hand that go on, by
	// object UID: marked seen, to be unmarked if the next consumer
	// refuses the batch (its sender retries it).
	passedOn []seenMark

	// key verifies that a fragment came from k8swatch (zero with
	// accept_unsigned_fragments).
	key fragment.Key

	storage storage.Client
	// waitIn and waitOut are the waiting fragments to store and to delete
	// at the next flush (with storage only).
	waitIn  map[pcommon.SpanID]*waitingSpan
	waitOut map[pcommon.SpanID]struct{}
	cancel  context.CancelFunc
	wg      sync.WaitGroup
}

var _ processor.Traces = (*stitchProcessor)(nil)

// keepJoinedFor is how many waits a joined trace's decision stays known
// after its last spans came: its late spans (another process's part,
// exported on its own schedule) come within about one wait.
const keepJoinedFor = 3

func newStitchProcessor(set processor.Settings, cfg *Config, next consumer.Traces) (*stitchProcessor, error) {
	tel, err := metadata.NewTelemetryBuilder(set.TelemetrySettings)
	if err != nil {
		return nil, err
	}
	p := &stitchProcessor{
		cfg: cfg, set: set, next: next, tel: tel, now: time.Now,
		graph:     newOwnerGraph(cfg.MaxObjects),
		traces:    newTraceTable(cfg.MaxObjects*4, keepJoinedFor*cfg.Wait),
		waiting:   newWaitBuffer(cfg.MaxWaitingSpans, cfg.MaxWaitingBytes),
		openRoots: map[*opRecord]*object{},
		dirty:     map[string]*object{},
	}
	p.graph.onShed = func(o *object) {
		for _, r := range o.Ops {
			delete(p.openRoots, r)
		}
		if p.storage != nil {
			delete(p.dirty, o.UID)
			p.shed = append(p.shed, o.UID)
		}
		p.tel.K8sstitchObjectsShed.Add(context.Background(), 1)
		p.set.Logger.Warn("object evicted from the owner graph: its later spans may start traces of their own; raise max_objects to avoid this", zap.String("uid", o.UID), zap.String("kind", o.Kind))
	}
	return p, nil
}

func (p *stitchProcessor) Capabilities() consumer.Capabilities {
	return consumer.Capabilities{MutatesData: true}
}

func (p *stitchProcessor) Start(ctx context.Context, host component.Host) error {
	if err := p.loadKey(); err != nil {
		return err
	}
	if p.cfg.Storage != nil {
		if err := p.openStorage(ctx, host); err != nil {
			return err
		}
	}
	runCtx, cancel := context.WithCancel(context.Background())
	p.cancel = cancel
	p.wg.Go(func() { p.tickLoop(runCtx) })
	return nil
}

func (p *stitchProcessor) Shutdown(ctx context.Context) error {
	if p.cancel != nil {
		p.cancel()
	}
	p.wg.Wait()
	// Whatever still waits leaves as it is: nothing is lost at shutdown.
	p.mu.Lock()
	out := newSpanOut()
	for _, w := range p.waiting.expired(p.now().Add(365*24*time.Hour), 0) {
		p.releaseExpired(w, out)
	}
	p.mu.Unlock()
	if out.td.SpanCount() > 0 {
		_ = p.next.ConsumeTraces(ctx, out.td)
	}
	p.flushStorage(ctx)
	if p.storage != nil {
		return p.storage.Close(ctx)
	}
	return nil
}

func (p *stitchProcessor) tickLoop(ctx context.Context) {
	t := time.NewTicker(p.cfg.Wait / 4)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
			out := p.tick()
			if out.SpanCount() > 0 {
				if err := p.next.ConsumeTraces(ctx, out); err != nil {
					p.set.Logger.Warn("next consumer refused released spans", zap.Int("spans", out.SpanCount()), zap.Error(err))
				}
			}
			p.flushStorage(ctx)
		}
	}
}

// tick releases what waited too long and closes operations that timed out.
func (p *stitchProcessor) tick() ptrace.Traces {
	p.mu.Lock()
	defer p.mu.Unlock()
	now := p.now()
	out := newSpanOut()
	for _, w := range p.waiting.expired(now, p.cfg.Wait) {
		p.releaseExpired(w, out)
	}
	p.timeouts(now, out)
	p.retire(now)
	p.tel.K8sstitchObjectsTracked.Record(context.Background(), int64(p.graph.len()))
	return out.td
}

func (p *stitchProcessor) ConsumeTraces(ctx context.Context, td ptrace.Traces) error {
	p.mu.Lock()
	now := p.now()
	released := newSpanOut()
	p.passedOn = p.passedOn[:0]
	p.learn(td)
	p.decide(td, now)
	p.traces.settle(now)
	p.retryWaiting(released)
	// Hold no reference to the batch once it is gone: the garbage
	// collector would keep it, and mark it on every cycle.
	clear(p.infos)
	clear(p.frags)
	passedOn := p.passedOn
	p.mu.Unlock()
	var err error
	if td.SpanCount() > 0 {
		err = p.next.ConsumeTraces(ctx, td)
	}
	if err != nil && len(passedOn) > 0 {
		// The commit point: a refused batch comes again from its sender,
		// and its fragments must not then be dropped as duplicates.
		p.mu.Lock()
		for _, m := range passedOn {
			if o := p.graph.get(m.uid); o != nil {
				o.unmarkSeen(m.id)
				p.markDirty(o)
			}
		}
		p.mu.Unlock()
	}
	// Released spans were acknowledged to their senders long ago: they
	// go on in a call of their own, so a refusal of this batch, which
	// its sender retries, does not take them with it.
	if released.td.SpanCount() > 0 {
		if rerr := p.next.ConsumeTraces(ctx, released.td); rerr != nil {
			p.set.Logger.Warn("next consumer refused released spans", zap.Int("spans", released.td.SpanCount()), zap.Error(rerr))
		}
	}
	// Persist after the spans went on: a crash in between replays a known
	// object rather than losing its place in the trace.
	p.flushStorage(ctx)
	return err
}

// retiree is a deleted object, and when its deletion closed.
type retiree struct {
	uid    string
	closed time.Time
}

// retire drops the deleted objects whose deletion closed keepJoinedFor
// waits ago and which have no open operation: without it, ordinary churn
// (Jobs, pods) would fill the graph to max_objects and evict live objects.
func (p *stitchProcessor) retire(now time.Time) {
	grace := keepJoinedFor * p.cfg.Wait
	n := 0
	for _, r := range p.retiring {
		if now.Sub(r.closed) < grace {
			break
		}
		n++
		o := p.graph.get(r.uid)
		if o == nil || slices.ContainsFunc(o.Ops, func(op *opRecord) bool { return !op.Closed }) {
			continue
		}
		if p.storage != nil {
			delete(p.dirty, o.UID)
			p.shed = append(p.shed, o.UID)
		}
		p.graph.drop(o)
	}
	p.retiring = append(p.retiring[:0], p.retiring[n:]...)
}

// seenMark is a fragment marked seen on its object.
type seenMark struct {
	uid string
	id  pcommon.SpanID
}

// spanInfo is what the first pass learned of one span, for the second:
// an app span's trace, or a fragment (trace nil) as p.frags[frag]; and
// what the second pass decided.
type spanInfo struct {
	span  ptrace.Span
	trace *traceState
	frag  int32
	fate  spanFate
}

// spanFate is what the second pass does with a span.
type spanFate uint8

const (
	// fateGo: the span goes on, rewritten or as it is.
	fateGo spanFate = iota
	// fateDrop: a duplicate.
	fateDrop
	// fateWait: it moves to the wait buffer.
	fateWait
)

// fragInfo is a fragment's key and, if it is valid, its object.
type fragInfo struct {
	key fragmentKey
	obj *object
}

// learn is the first pass over a batch: what fragments say about objects
// and operations, and what app spans say about their traces. Learning first
// makes the outcome independent of the order of spans within a batch.
func (p *stitchProcessor) learn(td ptrace.Traces) {
	p.infos, p.frags = p.infos[:0], p.frags[:0]
	p.traces.startBatch(td.SpanCount())
	// On the stack: resetting it for every span writes no heap pointers.
	var scan spanAttrs
	a := &scan
	var last *traceState
	var unverified int64
	rss := td.ResourceSpans()
	for i := 0; i < rss.Len(); i++ {
		rs := rss.At(i)
		var resUID string
		if v, ok := rs.Resource().Attributes().Get(fragment.KeyPodUID); ok {
			resUID = v.Str()
		}
		sss := rs.ScopeSpans()
		for j := 0; j < sss.Len(); j++ {
			spans := sss.At(j).Spans()
			for k := 0; k < spans.Len(); k++ {
				s := spans.At(k)
				a.scan(s)
				quarantined := false
				if a.isFrag && !p.verified(s) {
					// Anyone can set fragment keys: unsigned, it is an
					// app span of a trace of its own (quarantine).
					a.isFrag, quarantined = false, true
					quarantine(s)
					unverified++
				}
				if a.isFrag {
					f := fragInfo{key: a.fk}
					if a.fk.valid() {
						f.obj = p.learnFragment(s, a.fk)
					}
					p.infos = append(p.infos, spanInfo{span: s, frag: int32(len(p.frags))})
					p.frags = append(p.frags, f)
					continue
				}
				// Spans of one trace mostly come together: the last trace's
				// state saves a map lookup.
				if last == nil || last.id != s.TraceID() {
					last = p.traces.inBatch(s.TraceID())
				}
				ts := last
				p.infos = append(p.infos, spanInfo{span: s, trace: ts})
				if ts.decided {
					continue
				}
				if s.ParentSpanID().IsEmpty() {
					ts.rootSeen, ts.rootID = true, s.SpanID()
				} else {
					ts.sawParent(s.ParentSpanID())
				}
				if ts.hint.kind == hintUID || quarantined {
					continue // the best there is, or none to take
				}
				if h := a.hint(s, resUID); h.kind > ts.hint.kind {
					ts.hint = h
				}
			}
		}
	}
	if unverified > 0 {
		p.tel.K8sstitchFragmentsUnverified.Add(context.Background(), unverified)
		p.set.Logger.Warn("spans with fragment keys but no valid signature left in a trace of their own: a sender without the fragment key, or k8swatch and k8sstitch configured with different keys", zap.Int64("spans", unverified))
	}
}

// quarantine moves a span with fragment keys but no valid signature into a
// trace of its own, derived from its original trace ID, and marks it. It
// joins no operation: a forgery copies a real fragment's trace and span
// IDs, and in the operation's trace it would sit beside the genuine span
// under the same span ID. The sender's other spans with the same trace ID
// follow it there, so its own parent links hold.
func quarantine(s ptrace.Span) {
	orig := s.TraceID()
	s.SetTraceID(fragment.UnverifiedTraceID(orig))
	a := s.Attributes()
	a.PutStr(fragment.KeyOriginalTraceID, orig.String())
	a.PutBool(fragment.KeyUnverified, true)
}

// loadKey reads the fragment key, if one is configured.
func (p *stitchProcessor) loadKey() error {
	if p.cfg.FragmentKeyFile == "" {
		return nil
	}
	k, err := fragment.ReadKey(p.cfg.FragmentKeyFile)
	p.key = k
	return err
}

// verified says whether a span with fragment keys is a fragment: signed
// with the fragment key. The signature is checked once, here, and then
// removed: the span is rewritten into its operation's trace, which breaks
// it anyway.
func (p *stitchProcessor) verified(s ptrace.Span) bool {
	if p.cfg.AcceptUnsignedFragments {
		return true
	}
	if !p.key.Verify(s) {
		return false
	}
	s.Attributes().Remove(fragment.KeySignature)
	return true
}

func (p *stitchProcessor) learnFragment(s ptrace.Span, fk fragmentKey) *object {
	o := p.graph.learn(fk.uid, fk.kind, fk.namespace, fk.name, fk.owner)
	r := o.addOp(fk.trigger, fk.triggerTime)
	if fk.traceparent != "" && !r.Placed {
		r.Traceparent = fk.traceparent
	}
	if fk.level == fragment.LevelObject && !r.Closed {
		r.Closed, r.End = true, s.EndTimestamp().AsTime()
		if r.Root {
			delete(p.openRoots, r)
			p.tel.K8sstitchOperationsClosed.Add(context.Background(), 1)
		}
		if fk.trigger == fragment.TriggerDelete {
			p.retiring = append(p.retiring, retiree{o.UID, p.now()})
		}
	}
	p.markDirty(o)
	return o
}

// markDirty queues o for the next flush to storage.
func (p *stitchProcessor) markDirty(o *object) {
	if p.storage != nil {
		p.dirty[o.UID] = o
	}
}

// decide is the second pass: each span is rewritten, kept as it is,
// dropped as a duplicate, or moved to the waiting buffer. It walks the
// first pass's list, not the batch: most spans go on as they are, and
// the batch is walked again only when some span leaves it.
func (p *stitchProcessor) decide(td ptrace.Traces, now time.Time) {
	var joined, passed, waited, dups int64
	leave := false
	for i := range p.infos {
		info := &p.infos[i]
		ts := info.trace
		if ts == nil {
			f := &p.frags[info.frag]
			if f.obj == nil {
				p.badSpan("fragment without uid, kind or trigger")
				passed++
				continue
			}
			info.fate = p.decideFragment(info.span, f)
			switch info.fate {
			case fateGo:
				joined++
			case fateDrop:
				dups++
			case fateWait:
				waited++
			}
			leave = leave || info.fate != fateGo
			continue
		}
		if !ts.decided {
			p.tryDecide(ts)
		}
		switch {
		case !ts.decided:
			info.fate, leave = fateWait, true
			waited++
		case ts.join:
			rewriteApp(info.span, ts)
			joined++
		default:
			passed++
		}
	}
	if leave {
		p.removeLeaving(td, now)
	}
	ctx := context.Background()
	p.tel.K8sstitchSpansJoined.Add(ctx, joined)
	p.tel.K8sstitchSpansPassedThrough.Add(ctx, passed)
	p.tel.K8sstitchSpansWaited.Add(ctx, waited)
	p.tel.K8sstitchSpansDuplicate.Add(ctx, dups)
}

// decideFragment places a fragment into its operation (fateGo), or drops
// it as a duplicate, or lets it wait for its owner's operation.
func (p *stitchProcessor) decideFragment(s ptrace.Span, f *fragInfo) spanFate {
	o := f.obj
	if o.UID != f.key.uid {
		// Shed since the first pass: its slot holds another object now.
		o = p.objectOf(&f.key)
	}
	if !o.markSeen(s.SpanID()) {
		return fateDrop
	}
	if p.placeFragment(s, o, f.key, false) {
		p.passedOn = append(p.passedOn, seenMark{o.UID, s.SpanID()})
		return fateGo
	}
	return fateWait
}

// removeLeaving takes the dropped and waiting spans out of the batch, in
// the first pass's order.
func (p *stitchProcessor) removeLeaving(td ptrace.Traces, now time.Time) {
	n, shed := 0, 0
	td.ResourceSpans().RemoveIf(func(rs ptrace.ResourceSpans) bool {
		// The resource and each scope are copied once, for all of their
		// spans that wait, and only if one does.
		var res *waitingResource
		rs.ScopeSpans().RemoveIf(func(ss ptrace.ScopeSpans) bool {
			var scope *waitingScope
			ss.Spans().RemoveIf(func(s ptrace.Span) bool {
				info := &p.infos[n]
				n++
				switch info.fate {
				case fateDrop:
					return true
				case fateWait:
					var fk *fragmentKey
					if info.trace == nil {
						k := p.frags[info.frag].key
						fk = &k
					}
					if scope == nil {
						if res == nil {
							res = newWaitingResource(rs)
						}
						scope = newWaitingScope(res, ss)
					}
					shed += p.wait(scope, s, fk, now)
					return true
				}
				return false
			})
			return ss.Spans().Len() == 0
		})
		return rs.ScopeSpans().Len() == 0
	})
	if shed > 0 {
		p.set.Logger.Warn("waiting spans released early: the wait buffer is full; raise max_waiting_spans or max_waiting_bytes, or lower wait",
			zap.Int("spans", shed), zap.Int("max_waiting_spans", p.cfg.MaxWaitingSpans), zap.Int("max_waiting_bytes", p.cfg.MaxWaitingBytes))
	}
}

// wait moves s into the wait buffer and returns how many spans that
// evicted.
func (p *stitchProcessor) wait(scope *waitingScope, s ptrace.Span, fk *fragmentKey, now time.Time) int {
	ev := p.waiting.put(scope, s, s.TraceID(), fk, now)
	if len(ev) == 0 {
		return 0
	}
	p.tel.K8sstitchSpansShed.Add(context.Background(), int64(len(ev)))
	// An evicted span is not lost: it leaves now, decided as if it had
	// waited out its time, with this batch's released spans.
	p.pendingRelease = append(p.pendingRelease, ev...)
	return len(ev)
}

// placeFragment rewrites a fragment into its operation, if the operation
// can be placed. waitedOut forces a decision: an object whose owner never
// showed up opens its own operation.
func (p *stitchProcessor) placeFragment(s ptrace.Span, o *object, fk fragmentKey, waitedOut bool) bool {
	r := o.addOp(fk.trigger, fk.triggerTime)
	if !p.place(o, r, waitedOut, 0) {
		return false
	}
	// A fragment's own trace ID is derived from its object and trigger
	// (fragment.TraceID), so it needs no attribute to be recovered.
	s.SetTraceID(r.TraceID)
	if fk.level == fragment.LevelObject && !r.Parent.IsEmpty() {
		s.SetParentSpanID(r.Parent)
	}
	return true
}

// place decides the operation an object's trigger belongs to: the operation
// of the nearest ancestor that was open when the trigger happened, else its
// own. It returns false while an ancestor needed for the answer is unknown.
func (p *stitchProcessor) place(o *object, r *opRecord, waitedOut bool, depth int) bool {
	if r.Placed {
		return true
	}
	if depth > maxOwnerDepth {
		p.tel.K8sstitchOwnerCycles.Add(context.Background(), 1)
		p.set.Logger.Warn("owner chain too deep or cyclic; the object opens its own operation", zap.String("uid", o.UID), zap.String("kind", o.Kind))
		p.placeRoot(o, r)
		return true
	}
	if o.OwnerUID == "" || o.OwnerUID == o.UID {
		p.placeRoot(o, r)
		return true
	}
	owner := p.graph.get(o.OwnerUID)
	var oop *opRecord
	if owner != nil {
		oop = owner.opAt(r.Start, p.cfg.ClockTolerance)
	}
	if oop == nil {
		// The owner is unknown, or no operation of it covers the trigger
		// yet: its trigger may still be on its way, so wait for it.
		if waitedOut {
			p.placeRoot(o, r)
			return true
		}
		return false
	}
	if !p.place(owner, oop, waitedOut, depth+1) {
		return false
	}
	r.Placed, r.TraceID, r.Parent = true, oop.TraceID, owner.objectSpanID(oop)
	p.markDirty(o)
	return true
}

func (p *stitchProcessor) placeRoot(o *object, r *opRecord) {
	r.Placed, r.Root = true, true
	r.TraceID = fragment.TraceID(o.UID, r.Trigger)
	if tid, sid, ok := parseTraceparent(r.Traceparent); ok {
		// The user's own tool started this trace: continue it.
		r.TraceID, r.Parent = tid, sid
	}
	if !r.Closed {
		p.openRoots[r] = o
	}
	p.markDirty(o)
	p.tel.K8sstitchOperationsOpened.Add(context.Background(), 1, metric.WithAttributes(attribute.String("kind", o.Kind)))
}

// tryDecide places an app trace by its best hint, or lets it pass when its
// root and a child of the root arrived without any hint. Spans are exported
// as they end, children first, so the root closes a process's part of a
// trace; its child is awaited too because a batch split between
// instrumentation scopes can deliver the root (kube-apiserver's
// "authentication") before the request span that names the object.
func (p *stitchProcessor) tryDecide(ts *traceState) {
	if ts.hint.kind == hintNone && ts.rootSeen && ts.rootHasChild() {
		ts.decided = true
		return
	}
	if !ts.checkedPassed && !ts.rootSeen {
		// Before a trace joins or waits: if its earlier spans passed, so
		// do these (joining them would orphan them in the operation). A
		// trace whose root is here did not pass before: a trace passes
		// only once its root came, and the root comes once.
		ts.checkedPassed = true
		if p.traces.passed.has(ts.id) {
			ts.decided = true
			return
		}
	}
	if ts.hint.kind == hintNone {
		return
	}
	o, r, parent := p.resolveHint(ts.hint)
	if o == nil || !p.place(o, r, false, 0) {
		return
	}
	if parent.IsEmpty() {
		parent = o.objectSpanID(r)
		if ts.hint.verb == verbCreate && !r.Root {
			// A controller created this object: its create request hangs
			// under the controller's work (pod creates under replicaset.scale).
			parent = r.Parent
		}
	}
	ts.decided, ts.join, ts.newTrace, ts.parent = true, true, r.TraceID, parent
}

// resolveHint finds the object and operation an app span names; parent is
// set where the hint names a step rather than the object span.
func (p *stitchProcessor) resolveHint(h joinHint) (*object, *opRecord, pcommon.SpanID) {
	var o *object
	tol := p.cfg.ClockTolerance
	if h.kind == hintUID {
		o = p.graph.get(h.uid)
	} else {
		o = p.graph.byNameAt(h.objKind, h.namespace, h.name, h.at, tol)
	}
	if o == nil {
		return nil, nil, pcommon.SpanID{}
	}
	var r *opRecord
	switch h.verb {
	case verbCreate:
		r = o.op(fragment.TriggerGeneration(1))
	case verbDelete:
		r = o.op(fragment.TriggerDelete)
	default:
		r = o.opAt(h.at, tol)
	}
	if r == nil {
		return nil, nil, pcommon.SpanID{}
	}
	if h.verb == verbBinding {
		return o, r, fragment.SpanID(o.UID, fragment.PhasePodSchedule, r.Trigger)
	}
	return o, r, pcommon.SpanID{}
}

// rewriteApp moves one span of an app trace into its operation. The
// trace's root, the one span whose parent changes, keeps where it came
// from: the original trace ID as an attribute and a link to itself in the
// original trace. Its descendants keep their parents, so the original
// trace is recoverable from the root alone.
func rewriteApp(s ptrace.Span, ts *traceState) {
	orig := s.TraceID()
	s.SetTraceID(ts.newTrace)
	if s.ParentSpanID().IsEmpty() {
		s.SetParentSpanID(ts.parent)
		a := s.Attributes()
		a.EnsureCapacity(a.Len() + 2)
		a.PutStr(fragment.KeyOriginalTraceID, orig.String())
		a.PutStr(fragment.KeyJoinBy, joinBy[ts.hint.kind])
		l := s.Links().AppendEmpty()
		l.SetTraceID(orig)
		l.SetSpanID(s.SpanID())
	}
}

// joinBy names each hint kind on the rewritten root (fragment.KeyJoinBy).
var joinBy = [...]string{
	hintNone:      "",
	hintCreateKey: fragment.JoinByCreateKey,
	hintPath:      fragment.JoinByPath,
	hintUID:       fragment.JoinByUID,
}

// retryWaiting re-tries what waits, after a batch taught something new.
func (p *stitchProcessor) retryWaiting(out *spanOut) {
	for _, w := range p.pendingRelease {
		p.releaseExpired(w, out)
	}
	p.pendingRelease = p.pendingRelease[:0]
	for _, w := range p.waiting.fragments() {
		if p.placeFragment(w.span(), p.objectOf(w.frag), *w.frag, false) {
			p.waiting.remove(w)
			out.emit(w)
			p.tel.K8sstitchSpansJoined.Add(context.Background(), 1)
		}
	}
	for orig := range p.waiting.byTrace {
		ts := p.traces.pendingState(orig)
		if !ts.decided {
			p.tryDecide(ts)
		}
		if ts.decided {
			p.traces.resolve(ts)
			p.releaseTrace(ts, out)
		}
	}
}

// objectOf is the object of a fragment, learned again if it was shed
// since (while the fragment waited, or between the two passes).
func (p *stitchProcessor) objectOf(fk *fragmentKey) *object {
	if o := p.graph.get(fk.uid); o != nil {
		return o
	}
	return p.graph.learn(fk.uid, fk.kind, fk.namespace, fk.name, fk.owner)
}

// releaseExpired lets a span that waited out its time go: a fragment opens
// its own operation, an app trace passes through as it is.
func (p *stitchProcessor) releaseExpired(w *waitingSpan, out *spanOut) {
	if w.frag != nil {
		if w.elem != nil {
			p.waiting.remove(w)
		}
		p.placeFragment(w.span(), p.objectOf(w.frag), *w.frag, true)
		out.emit(w)
		return
	}
	ts := p.traces.pendingState(w.orig)
	if !ts.decided {
		ts.decided = true
		p.tel.K8sstitchSpansPassedThrough.Add(context.Background(), 1)
	}
	p.traces.resolve(ts)
	p.releaseTrace(ts, out)
	// An evicted span was already taken out of the buffer.
	if !w.gone {
		if ts.join {
			rewriteApp(w.span(), ts)
		}
		out.emit(w)
	}
}

func (p *stitchProcessor) releaseTrace(ts *traceState, out *spanOut) {
	for _, w := range p.waiting.takeTrace(ts.id) {
		if ts.join {
			rewriteApp(w.span(), ts)
			p.tel.K8sstitchSpansJoined.Add(context.Background(), 1)
		}
		out.emit(w)
	}
}

// timeouts closes root operations open longer than operation_timeout and
// emits their object span with status Error, so the trace has its root even
// when the object never converges. If the object converges later, its own
// object span has the same ID and is dropped as a duplicate.
func (p *stitchProcessor) timeouts(now time.Time, out *spanOut) {
	for r, o := range p.openRoots {
		if now.Sub(r.timeoutFrom()) < p.cfg.OperationTimeout {
			continue
		}
		delete(p.openRoots, r)
		r.Closed, r.End, r.TimedOut = true, now, true
		p.markDirty(o)
		id := o.objectSpanID(r)
		if !o.markSeen(id) {
			continue
		}
		rs := out.td.ResourceSpans().AppendEmpty()
		rs.Resource().Attributes().PutStr(fragment.KeyServiceName, "kubestitch")
		if o.Namespace != "" {
			rs.Resource().Attributes().PutStr(fragment.KeyNamespace, o.Namespace)
		}
		ss := rs.ScopeSpans().AppendEmpty()
		ss.Scope().SetName(metadata.ScopeName)
		s := ss.Spans().AppendEmpty()
		s.SetTraceID(r.TraceID)
		s.SetSpanID(id)
		s.SetParentSpanID(r.Parent)
		s.SetName(fragment.ObjectPhase(o.Kind, r.Trigger))
		s.SetStartTimestamp(pcommon.NewTimestampFromTime(r.Start))
		s.SetEndTimestamp(pcommon.NewTimestampFromTime(now))
		s.Status().SetCode(ptrace.StatusCodeError)
		s.Status().SetMessage("operation_timeout: the object did not converge in time")
		a := s.Attributes()
		a.PutStr(fragment.KeyLevel, fragment.LevelObject)
		a.PutStr(fragment.KeyKind, o.Kind)
		a.PutStr(fragment.KeyUID, o.UID)
		a.PutStr(fragment.KeyName, o.Name)
		a.PutStr(fragment.KeyTrigger, r.Trigger)
		a.PutBool(fragment.KeyConverged, false)
		a.PutStr(fragment.KeyReason, "operation_timeout")
		p.tel.K8sstitchOperationsTimedOut.Add(context.Background(), 1)
		p.set.Logger.Info("operation timed out", zap.String("kind", o.Kind), zap.String("name", o.Name), zap.String("trigger", r.Trigger))
	}
}

func (p *stitchProcessor) badSpan(reason string) {
	p.tel.K8sstitchBadSpans.Add(context.Background(), 1, metric.WithAttributes(attribute.String("reason", reason)))
	p.set.Logger.Debug("span passed through unchanged", zap.String("reason", reason))
}
