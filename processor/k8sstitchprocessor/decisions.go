package k8sstitchprocessor

import (
	"math/bits"

	"go.opentelemetry.io/collector/pdata/pcommon"
)

// traceDecision is where a joined trace went.
type traceDecision struct {
	newTrace pcommon.TraceID
	parent   pcommon.SpanID
	hint     hintKind
}

// decisionTable holds the decisions of joined traces, bounded to max:
// once full, a new trace takes the place of the oldest. It is pointer-free
// (the garbage collector never scans it) and costs no allocation per
// trace: the entries are a ring in insertion order, which is also the
// eviction order, and an open-addressing index with linear probing finds
// them by trace ID (a Go map plus a ring of keys cost two map operations
// per insert at the limit).
type decisionTable struct {
	entries []decisionEntry
	// index holds entry positions + 1 (0 is an empty slot); its length is
	// a power of two at least twice len(entries).
	index []uint32
	shift uint
	// next is the entry the next insert overwrites once the table is full.
	next int
	max  int
	hash traceHash
}

type decisionEntry struct {
	id pcommon.TraceID
	d  traceDecision
}

func newDecisionTable(max int, h traceHash) *decisionTable {
	t := &decisionTable{max: max, hash: h}
	t.resize(64)
	return t
}

func (t *decisionTable) resize(slots int) {
	t.index = make([]uint32, slots)
	t.shift = uint(64 - bits.TrailingZeros(uint(slots)))
	for i := range t.entries {
		slot, _ := t.probe(t.entries[i].id)
		t.index[slot] = uint32(i + 1)
	}
}

func (t *decisionTable) home(id pcommon.TraceID) int { return int(t.hash.sum(id) >> t.shift) }

// probe walks id's probe sequence: it returns the slot holding id, or
// the empty slot where id would go, and whether id was found.
func (t *decisionTable) probe(id pcommon.TraceID) (int, bool) {
	mask := len(t.index) - 1
	for i := t.home(id); ; i = (i + 1) & mask {
		e := t.index[i]
		if e == 0 {
			return i, false
		}
		if t.entries[e-1].id == id {
			return i, true
		}
	}
}

func (t *decisionTable) get(id pcommon.TraceID) (traceDecision, bool) {
	if i, ok := t.probe(id); ok {
		return t.entries[t.index[i]-1].d, true
	}
	return traceDecision{}, false
}

// set adds or updates id's decision.
func (t *decisionTable) set(id pcommon.TraceID, d traceDecision) {
	i, ok := t.probe(id)
	if ok {
		t.entries[t.index[i]-1].d = d
		return
	}
	if len(t.entries) < t.max {
		t.entries = append(t.entries, decisionEntry{id: id, d: d})
		if 2*len(t.entries) > len(t.index) {
			t.resize(2 * len(t.index)) // places the new entry too
			return
		}
		t.index[i] = uint32(len(t.entries))
		return
	}
	e := t.next
	t.next = (t.next + 1) % t.max
	old, _ := t.probe(t.entries[e].id)
	t.unindex(old)
	t.entries[e] = decisionEntry{id: id, d: d}
	// Deleting may have moved entries back into id's probe sequence.
	i, _ = t.probe(id)
	t.index[i] = uint32(e + 1)
}

// unindex empties slot i and moves later entries of its probe run back,
// so that no lookup stops early at the hole (backward-shift deletion).
func (t *decisionTable) unindex(i int) {
	mask := len(t.index) - 1
	for j := (i + 1) & mask; t.index[j] != 0; j = (j + 1) & mask {
		h := t.home(t.entries[t.index[j]-1].id)
		// The entry at j may move to i unless its home lies cyclically
		// in (i, j]: then i is before its home and it must stay.
		if (i < j && i < h && h <= j) || (i > j && (i < h || h <= j)) {
			continue
		}
		t.index[i] = t.index[j]
		i = j
	}
	t.index[i] = 0
}
