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
	// checkedPassed says the passed set was asked about this trace.
	checkedPassed bool
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
// housekeeping) pass within the batch that brought them, so a batch's new
// traces get scratch states, reused from batch to batch; settle, at the end
// of the batch, keeps the state of a trace that joined or still waits (its
// late spans need the decision) in a bounded table, and only the ID of a
// trace that passed, in the passed set (its late spans pass at once rather
// than start a state of their own that could join while the rest of the
// trace did not).
//
// Every span of a new trace asks whether the trace is kept. The kept table
// is large and cold (a long-running processor holds the last max joined
// traces), so a small filter answers "surely not" first; a kept trace stays
// visible through it for at least keepFor after its last batch.
type traceTable struct {
	kept   *fifoMap[pcommon.TraceID, *traceState]
	filter keptFilter
	// slab hands out kept states from chunks, one allocation per slabSize
	// traces instead of one per trace. The table evicts in arrival order,
	// so a chunk is freed once its last trace is evicted.
	slab   []traceState
	passed passedSet

	// batch maps the traces of the current batch to their states: kept
	// ones or scratch ones.
	batch   map[pcommon.TraceID]*traceState
	scratch [][]traceState
	used    int
}

const slabSize = 256

func newTraceTable(maxKept int, keepFor time.Duration) *traceTable {
	h := newTraceHash()
	return &traceTable{
		kept:   newFIFOMap[pcommon.TraceID, *traceState](maxKept),
		filter: newKeptFilter(h, keepFor),
		passed: passedSet{fps: make([]uint64, 1<<passedSetBits), hash: h},
		batch:  map[pcommon.TraceID]*traceState{},
	}
}

// inBatch is the state of a trace seen in the current batch.
func (t *traceTable) inBatch(id pcommon.TraceID) *traceState {
	if ts, ok := t.batch[id]; ok {
		return ts
	}
	var ts *traceState
	if t.filter.mayHave(id) {
		ts, _ = t.kept.get(id)
	}
	if ts != nil {
		t.filter.add(id)
	} else {
		// Not looked up in the passed set yet: that costs a cache miss,
		// and it matters only for a trace that would join or wait
		// (stitchProcessor.tryDecide), a few in a batch.
		ts = t.newScratch(id)
	}
	t.batch[id] = ts
	return ts
}

func (t *traceTable) newScratch(id pcommon.TraceID) *traceState {
	c := t.used / slabSize
	if c == len(t.scratch) {
		t.scratch = append(t.scratch, make([]traceState, slabSize))
	}
	ts := &t.scratch[c][t.used%slabSize]
	t.used++
	*ts = traceState{id: id}
	return ts
}

// settle ends a batch: scratch states of traces that passed leave their ID
// in the passed set; the others move to the kept table.
func (t *traceTable) settle(now time.Time) {
	t.filter.rotate(now)
	for i := range t.used {
		ts := &t.scratch[i/slabSize][i%slabSize]
		if ts.decided && !ts.join {
			t.passed.add(ts.id)
			continue
		}
		*t.newKept(ts.id) = *ts
	}
	t.used = 0
	clear(t.batch)
}

// state is a kept trace's state, created on first sight (for spans that
// leave the wait buffer, outside a batch).
func (t *traceTable) state(id pcommon.TraceID) *traceState {
	if ts, ok := t.kept.get(id); ok {
		return ts
	}
	ts := t.newKept(id)
	ts.decided, ts.checkedPassed = t.passed.has(id), true
	return ts
}

func (t *traceTable) newKept(id pcommon.TraceID) *traceState {
	if len(t.slab) == 0 {
		t.slab = make([]traceState, slabSize)
	}
	ts := &t.slab[0]
	t.slab = t.slab[1:]
	ts.id = id
	t.kept.put(id, ts)
	t.filter.add(id)
	return ts
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

// keptFilterBits sizes each generation: 2^18 bits in 32 KiB, under 2 %
// false "maybe" while fewer than 5,000 traces joined in a period.
const keptFilterBits = 18

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

func (f *keptFilter) reset() {
	clear(f.cur)
	clear(f.prev)
}
