package k8sstitchprocessor

import (
	"math/bits"
	"slices"
	"time"

	"go.opentelemetry.io/collector/pdata/pcommon"
)

// traceState is what the processor knows of one app trace (by its
// original trace ID): the best join hint seen, and once made, the decision.
type traceState struct {
	id     pcommon.TraceID
	rootID pcommon.SpanID
	// parents are the distinct parent IDs seen in the trace (the first
	// nParents, at most maxTrackedParents): a root whose child has not
	// arrived is not a whole trace yet. An array, not a slice: no
	// allocation per trace on the hot path.
	parents  [maxTrackedParents]pcommon.SpanID
	nParents uint8
	rootSeen bool
	// foreign: a span of a service not in join_services was seen; the
	// trace passes.
	foreign bool
	// remoteParent: a span's parent is in another process; the trace
	// joins only once its root came (the caller may be an app).
	remoteParent bool
	decided      bool
	join         bool
	// checkedPassed says the passed set was asked about this trace.
	checkedPassed bool
	hint          joinHint
	newTrace      pcommon.TraceID
	parent        pcommon.SpanID
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

// traceTable is what the processor knows of app traces, by original
// trace ID. Most traces (idle noise: lease renewals, reads, the kubelet's
// housekeeping) pass within the batch that brought them, so a batch's
// traces get scratch states, reused from batch to batch. settle, at the
// end of the batch, keeps what later spans of a trace need:
//   - a trace that passed: its ID in the passed set (its late spans pass at
//     once rather than start a state of their own that could join while
//     the rest of the trace did not);
//   - a trace that joined: its decision, a small pointer-free value in a
//     bounded table, so that a long-running processor's table costs the
//     garbage collector nothing to scan;
//   - a trace still undecided (its spans wait): its whole state, until it
//     is decided (resolve).
//
// Every new trace of a batch asks whether it is known. The decisions table
// is large and cold, so a small filter answers "surely not" first; a
// decision stays visible through it for at least keepFor after its last
// batch.
type traceTable struct {
	decided *decisionTable
	pending map[pcommon.TraceID]*traceState
	filter  keptFilter
	passed  passedSet

	// batch finds the states of the current batch's traces: scratch ones,
	// or pending ones (touched lists those).
	batch   batchIndex
	touched []*traceState
	scratch [][]traceState
	used    int
}

// batchIndex is an open-addressing table of the current batch's trace
// states, sized for the batch and cleared by the next: cheaper than a map
// for a few hundred traces that live one batch.
type batchIndex struct {
	slots []*traceState
	shift uint
	hash  traceHash
}

// reset empties the index for a batch of up to n spans (so n traces),
// at most half full.
func (b *batchIndex) reset(n int) {
	need := 64
	for need < 2*n {
		need <<= 1
	}
	if len(b.slots) < need || len(b.slots) > 4*need {
		// Sized anew only when much bigger or too small: batch sizes vary.
		b.slots = make([]*traceState, need)
	} else {
		clear(b.slots)
	}
	b.shift = uint(64 - bits.TrailingZeros(uint(len(b.slots))))
}

// find returns the trace's state, or nil and the free slot to put it in.
func (b *batchIndex) find(id pcommon.TraceID) (int, *traceState) {
	mask := len(b.slots) - 1
	for i := int(b.hash.sum(id) >> b.shift); ; i = (i + 1) & mask {
		ts := b.slots[i]
		if ts == nil || ts.id == id {
			return i, ts
		}
	}
}

// follow makes ts a trace that joined as d says.
func (ts *traceState) follow(d traceDecision) {
	ts.decided, ts.join, ts.checkedPassed = true, true, true
	ts.newTrace, ts.parent, ts.hint.kind = d.newTrace, d.parent, d.hint
}

const scratchChunk = 256

func newTraceTable(maxDecided int, keepFor time.Duration) *traceTable {
	return newTraceTableHashed(maxDecided, keepFor, newTraceHash())
}

// newTraceTableHashed is newTraceTable with a given hash (random in use,
// so that no sender can aim at the tables' slots; fixed in tests).
func newTraceTableHashed(maxDecided int, keepFor time.Duration, h traceHash) *traceTable {
	return &traceTable{
		decided: newDecisionTable(maxDecided, h),
		pending: map[pcommon.TraceID]*traceState{},
		filter:  newKeptFilter(h, keepFor),
		passed:  passedSet{fps: make([]uint64, 1<<passedSetBits), hash: h},
		batch:   batchIndex{hash: h},
	}
}

// startBatch readies the table for a batch of n spans. Scratch states a
// much bigger batch left are given back (trust finding 10): one huge
// request must not keep its scratch for good.
func (t *traceTable) startBatch(n int) {
	t.batch.reset(n)
	need := n/scratchChunk + 1
	if keep := max(4*need, minScratchChunks); len(t.scratch) > keep {
		clear(t.scratch[keep:])
		t.scratch = slices.Clip(t.scratch[:keep])
	}
}

// minScratchChunks are the scratch chunks always kept: 4,096 trace states.
const minScratchChunks = 16

// inBatch is the state of a trace seen in the current batch.
func (t *traceTable) inBatch(id pcommon.TraceID) *traceState {
	slot, ts := t.batch.find(id)
	if ts != nil {
		return ts
	}
	ts = t.known(id)
	if ts == nil {
		// Not looked up in the passed set yet: that costs a cache miss,
		// and it matters only for a trace that would join or wait
		// (stitchProcessor.tryDecide), a few in a batch.
		ts = t.newScratch(id)
	}
	t.batch.slots[slot] = ts
	return ts
}

// known is the state of a pending or joined trace, or nil.
func (t *traceTable) known(id pcommon.TraceID) *traceState {
	// Pending first: a trace's spans may wait for their root (root_wait)
	// longer than the filter remembers the trace; the filter only guards
	// the large table of decisions.
	if ts, ok := t.pending[id]; ok {
		t.touched = append(t.touched, ts)
		return ts
	}
	if !t.filter.mayHave(id) {
		return nil
	}
	d, ok := t.decided.get(id)
	if !ok {
		return nil
	}
	t.filter.add(id)
	ts := t.newScratch(id)
	ts.follow(d)
	return ts
}

func (t *traceTable) newScratch(id pcommon.TraceID) *traceState {
	c := t.used / scratchChunk
	if c == len(t.scratch) {
		t.scratch = append(t.scratch, make([]traceState, scratchChunk))
	}
	ts := &t.scratch[c][t.used%scratchChunk]
	t.used++
	*ts = traceState{id: id}
	return ts
}

// settle ends a batch: what its traces' later spans need is kept, the
// scratch states are free again.
func (t *traceTable) settle(now time.Time) {
	t.filter.rotate(now)
	for i := range t.used {
		ts := &t.scratch[i/scratchChunk][i%scratchChunk]
		if !ts.decided {
			p := new(traceState)
			*p = *ts
			t.pending[ts.id] = p
			t.filter.add(ts.id)
			continue
		}
		t.keep(ts)
	}
	for _, ts := range t.touched {
		t.resolve(ts)
	}
	t.used, t.touched = 0, t.touched[:0]
}

// keep records a decided trace: its decision if it joined, else its ID
// in the passed set.
func (t *traceTable) keep(ts *traceState) {
	if !ts.join {
		t.passed.add(ts.id, ts.foreign)
		return
	}
	t.decided.set(ts.id, traceDecision{newTrace: ts.newTrace, parent: ts.parent, hint: ts.hint.kind})
	t.filter.add(ts.id)
}

// passedBefore says whether ts's trace must pass because earlier spans of
// it passed (in an earlier batch), asking the passed set once per state:
// the lookup is a cache miss, worth it only for a trace about to join or
// wait. Before its root came, spans that passed would be orphaned in the
// operation; once the root is here it may join, unless the trace passed
// for a span of a service outside join_services (an app's, which stays
// whole). A trace whose spans waited out root_wait without their root
// still joins when the root comes (a pull longer than root_wait).
func (t *traceTable) passedBefore(ts *traceState) bool {
	if ts.checkedPassed {
		return false
	}
	ts.checkedPassed = true
	passed, foreign := t.passed.has(ts.id)
	return passed && (!ts.rootSeen || foreign)
}

// decideWaiting is, outside a batch, the state of a trace whose spans
// wait: decide runs on it if it is undecided, and a decided trace moves to
// what settle keeps. The state is valid until the next call on the table.
func (t *traceTable) decideWaiting(id pcommon.TraceID, decide func(*traceState)) *traceState {
	ts := t.pendingState(id)
	if !ts.decided {
		decide(ts)
	}
	t.resolve(ts)
	return ts
}

// awaitsRoot says whether an undecided trace still waits for its root:
// no root seen, and no join hint, or one it may not follow before the
// root tells whose trace it is (a remote parent).
func (t *traceTable) awaitsRoot(id pcommon.TraceID) bool {
	ts, ok := t.pending[id]
	return ok && !ts.decided && !ts.rootSeen && (ts.hint.kind == hintNone || ts.remoteParent)
}

// pendingState is the state of a trace whose spans wait, outside a batch.
func (t *traceTable) pendingState(id pcommon.TraceID) *traceState {
	if ts, ok := t.pending[id]; ok {
		return ts
	}
	ts := &traceState{id: id}
	if d, ok := t.decided.get(id); ok {
		ts.follow(d)
		return ts
	}
	passed, _ := t.passed.has(id)
	ts.decided, ts.checkedPassed = passed, true
	t.pending[id] = ts
	t.filter.add(id)
	return ts
}

// resolve moves a pending trace, once decided, to what settle keeps.
func (t *traceTable) resolve(ts *traceState) {
	if !ts.decided {
		return
	}
	delete(t.pending, ts.id)
	t.keep(ts)
}
