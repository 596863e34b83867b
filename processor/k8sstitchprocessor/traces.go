package k8sstitchprocessor

import (
	"encoding/binary"
	"math/bits"
	"math/rand/v2"
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
	decided  bool
	join     bool
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

// traceDecision is where a joined trace went.
type traceDecision struct {
	newTrace pcommon.TraceID
	parent   pcommon.SpanID
	hint     hintKind
}

// follow makes ts a trace that joined as d says.
func (ts *traceState) follow(d traceDecision) {
	ts.decided, ts.join, ts.checkedPassed = true, true, true
	ts.newTrace, ts.parent, ts.hint.kind = d.newTrace, d.parent, d.hint
}

const scratchChunk = 256

func newTraceTable(maxDecided int, keepFor time.Duration) *traceTable {
	h := newTraceHash()
	return &traceTable{
		decided: newDecisionTable(maxDecided, h),
		pending: map[pcommon.TraceID]*traceState{},
		filter:  newKeptFilter(h, keepFor),
		passed:  passedSet{fps: make([]uint64, 1<<passedSetBits), hash: h},
		batch:   batchIndex{hash: h},
	}
}

// startBatch readies the table for a batch of n spans.
func (t *traceTable) startBatch(n int) { t.batch.reset(n) }

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
	if !t.filter.mayHave(id) {
		return nil
	}
	if ts, ok := t.pending[id]; ok {
		t.touched = append(t.touched, ts)
		return ts
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
		t.passed.add(ts.id)
		return
	}
	t.decided.set(ts.id, traceDecision{newTrace: ts.newTrace, parent: ts.parent, hint: ts.hint.kind})
	t.filter.add(ts.id)
}

// pendingState is the state of a trace whose spans wait, outside a batch.
// After deciding it, the caller calls resolve.
func (t *traceTable) pendingState(id pcommon.TraceID) *traceState {
	if ts, ok := t.pending[id]; ok {
		return ts
	}
	ts := &traceState{id: id}
	if d, ok := t.decided.get(id); ok {
		ts.follow(d)
		return ts
	}
	ts.decided, ts.checkedPassed = t.passed.has(id), true
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

// traceHash is a seeded hash of trace IDs: they come from senders, and
// IDs chosen to collide would only make the passed set forget sooner or the
// kept filter answer "maybe" more often.
type traceHash uint64

func newTraceHash() traceHash { return traceHash(rand.Uint64() | 1) }

func (h traceHash) sum(id pcommon.TraceID) uint64 {
	return (binary.LittleEndian.Uint64(id[:8]) ^ bits.RotateLeft64(binary.LittleEndian.Uint64(id[8:]), 29)) * uint64(h)
}

// passedSet remembers recent traces that passed unchanged, as 64-bit
// fingerprints of their IDs in a fixed array indexed by the same hash: no
// allocation per trace, and a newer trace overwrites an older one in its
// slot, so it holds about the last len(fps) passed traces. A false
// "passed" needs two IDs with one 64-bit fingerprint; it would only let
// that trace pass unjoined.
type passedSet struct {
	fps  []uint64
	hash traceHash
}

// passedSetBits sizes the set: 2^16 traces in 512 KiB, a window of many
// seconds of traces even on a busy cluster, where late spans of a trace
// come within the senders' export interval (5 s).
const passedSetBits = 16

func (s passedSet) add(id pcommon.TraceID) {
	x := s.hash.sum(id)
	s.fps[x>>(64-passedSetBits)] = x | 1
}

func (s passedSet) has(id pcommon.TraceID) bool {
	x := s.hash.sum(id)
	return s.fps[x>>(64-passedSetBits)] == x|1
}

// keptFilter is a one-bit-per-slot filter of the kept traces in two
// generations: add sets a trace's bit in the current one, mayHave checks
// both, and rotate drops the older one every period. A trace added at t is
// found until at least t+period; "no" is always right within that time.
type keptFilter struct {
	cur, prev []uint64
	hash      traceHash
	period    time.Duration
	rotated   time.Time
}

// keptFilterBits sizes each generation: 2^16 bits in 8 KiB (both stay in
// the first-level cache), under 8 % false "maybe" while fewer than 5,000
// traces joined in a period.
const keptFilterBits = 16

func newKeptFilter(h traceHash, period time.Duration) keptFilter {
	n := 1 << keptFilterBits / 64
	return keptFilter{cur: make([]uint64, n), prev: make([]uint64, n), hash: h, period: period}
}

func (f *keptFilter) bit(id pcommon.TraceID) (word int, mask uint64) {
	x := f.hash.sum(id) >> (64 - keptFilterBits)
	return int(x / 64), 1 << (x % 64)
}

func (f *keptFilter) add(id pcommon.TraceID) {
	w, m := f.bit(id)
	f.cur[w] |= m
}

func (f *keptFilter) mayHave(id pcommon.TraceID) bool {
	w, m := f.bit(id)
	return (f.cur[w]|f.prev[w])&m != 0
}

func (f *keptFilter) rotate(now time.Time) {
	if f.rotated.IsZero() {
		f.rotated = now
	}
	if now.Sub(f.rotated) < f.period {
		return
	}
	f.cur, f.prev = f.prev, f.cur
	clear(f.cur)
	f.rotated = now
}
