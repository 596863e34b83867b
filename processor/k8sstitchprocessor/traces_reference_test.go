package k8sstitchprocessor

import (
	"fmt"
	"math/rand/v2"
	"testing"
	"time"

	"go.opentelemetry.io/collector/pdata/pcommon"
)

// traceMemory is the trace memory's API, as the processor uses it.
type traceMemory interface {
	startBatch(n int)
	inBatch(id pcommon.TraceID) *traceState
	passedBefore(ts *traceState) bool
	settle(now time.Time)
	decideWaiting(id pcommon.TraceID, decide func(*traceState)) *traceState
}

var (
	_ traceMemory = (*traceTable)(nil)
	_ traceMemory = (*mapTraces)(nil)
)

// mapTraces is the trace memory said plainly, with maps and no bounds:
// the reference the fast traceTable (scratch states, a batch index, a
// bounded pointer-free decision table, fingerprint and Bloom filters) must
// answer like, within its bounds.
type mapTraces struct {
	batch   map[pcommon.TraceID]*traceState
	pending map[pcommon.TraceID]*traceState
	joined  map[pcommon.TraceID]traceDecision
	passed  map[pcommon.TraceID]bool
}

func newMapTraces() *mapTraces {
	return &mapTraces{pending: map[pcommon.TraceID]*traceState{}, joined: map[pcommon.TraceID]traceDecision{}, passed: map[pcommon.TraceID]bool{}}
}

func (m *mapTraces) startBatch(int) { m.batch = map[pcommon.TraceID]*traceState{} }

func (m *mapTraces) inBatch(id pcommon.TraceID) *traceState {
	if ts, ok := m.batch[id]; ok {
		return ts
	}
	ts, ok := m.pending[id]
	if !ok {
		ts = &traceState{id: id}
		if d, ok := m.joined[id]; ok {
			ts.follow(d)
		}
	}
	m.batch[id] = ts
	return ts
}

func (m *mapTraces) passedBefore(ts *traceState) bool {
	if ts.checkedPassed {
		return false
	}
	ts.checkedPassed = true
	return m.passed[ts.id]
}

func (m *mapTraces) keep(ts *traceState) {
	delete(m.pending, ts.id)
	if ts.join {
		m.joined[ts.id] = traceDecision{newTrace: ts.newTrace, parent: ts.parent, hint: ts.hint.kind}
	} else {
		m.passed[ts.id] = true
	}
}

func (m *mapTraces) settle(time.Time) {
	for id, ts := range m.batch {
		if ts.decided {
			m.keep(ts)
		} else {
			m.pending[id] = ts
		}
	}
	m.batch = nil
}

func (m *mapTraces) decideWaiting(id pcommon.TraceID, decide func(*traceState)) *traceState {
	ts, ok := m.pending[id]
	if !ok {
		ts = &traceState{id: id, checkedPassed: true}
		if d, ok := m.joined[id]; ok {
			ts.follow(d)
			return ts
		}
		ts.decided = m.passed[id]
		m.pending[id] = ts
	}
	if !ts.decided {
		decide(ts)
	}
	if ts.decided {
		m.keep(ts)
	}
	return ts
}

// testTraceHash gives the test's trace IDs distinct passed-set slots.
const testTraceHash = traceHash(0x9e3779b97f4a7c15)

func TestReferenceTracesHaveSlotsOfTheirOwn(t *testing.T) {
	slots := map[uint64]bool{}
	for i := 1; i <= 41; i++ {
		slot := testTraceHash.sum(pcommon.TraceID{byte(i)}) >> (64 - passedSetBits)
		if slots[slot] {
			t.Fatalf("trace %d shares a passed-set slot: pick another testTraceHash", i)
		}
		slots[slot] = true
	}
}

// answer is what a caller can see of a trace state.
func answer(ts *traceState) string {
	return fmt.Sprintf("decided=%t join=%t new=%s parent=%s hint=%d root=%t", ts.decided, ts.join, ts.newTrace, ts.parent, ts.hint.kind, ts.rootSeen)
}

// TestTraceMemoryMatchesReference drives the fast trace memory and the
// map reference with the same random operations (batches of spans over a
// small set of traces that join, pass or wait, the passed-before question,
// waiting traces decided outside a batch) and compares every answer.
// Within its bounds (here: far fewer traces than its tables hold, the
// clock well inside keepFor) the fast one must never differ.
func TestTraceMemoryMatchesReference(t *testing.T) {
	for seed := range uint64(200) {
		r := rand.New(rand.NewPCG(seed, 0xd1ff))
		// The passed set keeps one fingerprint per slot (the last ~65,000
		// traces): a collision forgets a trace, by design. Within bounds
		// means no two of the test's traces share a slot, so the hash is
		// fixed, and checked.
		fast := newTraceTableHashed(4096, time.Hour, testTraceHash)
		ref := newMapTraces()
		now := time.Unix(1_700_000_000, 0)
		// decide changes a state the same way in both: a function of the
		// operation's random numbers only.
		decide := func(a, b *traceState, x uint64) {
			for _, ts := range []*traceState{a, b} {
				switch x % 4 {
				case 0: // joins
					ts.decided, ts.join = true, true
					ts.newTrace = pcommon.TraceID{byte(x >> 8), 1}
					ts.parent = pcommon.SpanID{byte(x >> 16), 2}
					ts.hint.kind = hintKind(1 + x>>24%3)
				case 1: // passes
					ts.decided = true
				default: // waits
				}
			}
		}
		traces := 2 + r.IntN(40)
		for op := range 300 {
			step := fmt.Sprintf("seed %d op %d", seed, op)
			if r.IntN(4) > 0 {
				n := 1 + r.IntN(30)
				fast.startBatch(n)
				ref.startBatch(n)
				for range n {
					id := pcommon.TraceID{byte(1 + r.IntN(traces))}
					a, b := fast.inBatch(id), ref.inBatch(id)
					if answer(a) != answer(b) {
						t.Fatalf("%s: inBatch(%s): fast %s, reference %s", step, id, answer(a), answer(b))
					}
					if r.IntN(3) == 0 && !a.rootSeen {
						a.rootSeen, b.rootSeen = true, true
					}
					if a.decided {
						continue
					}
					if !a.rootSeen && r.IntN(2) == 0 {
						pa, pb := fast.passedBefore(a), ref.passedBefore(b)
						if pa != pb {
							t.Fatalf("%s: passedBefore(%s): fast %t, reference %t", step, id, pa, pb)
						}
						if pa {
							a.decided, b.decided = true, true
							continue
						}
					}
					decide(a, b, r.Uint64())
				}
				now = now.Add(time.Duration(r.IntN(2000)) * time.Millisecond)
				fast.settle(now)
				ref.settle(now)
				continue
			}
			id := pcommon.TraceID{byte(1 + r.IntN(traces))}
			x := r.Uint64()
			var da, db *traceState
			a := fast.decideWaiting(id, func(ts *traceState) { da = ts })
			b := ref.decideWaiting(id, func(ts *traceState) { db = ts })
			if (da == nil) != (db == nil) {
				t.Fatalf("%s: decideWaiting(%s) asked to decide: fast %t, reference %t", step, id, da != nil, db != nil)
			}
			if da != nil {
				// Decided now, as the caller would, then settled.
				decide(da, db, x)
				a = fast.decideWaiting(id, func(*traceState) {})
				b = ref.decideWaiting(id, func(*traceState) {})
			}
			if answer(a) != answer(b) {
				t.Fatalf("%s: decideWaiting(%s): fast %s, reference %s", step, id, answer(a), answer(b))
			}
		}
	}
}
