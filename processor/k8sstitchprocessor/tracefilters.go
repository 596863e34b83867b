package k8sstitchprocessor

import (
	"encoding/binary"
	"math/bits"
	"math/rand/v2"
	"time"

	"go.opentelemetry.io/collector/pdata/pcommon"
)

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

// foreignBit marks, in a fingerprint's second bit, a trace that passed
// because it holds a span of a service outside join_services.
const foreignBit = 2

// add records that the trace passed, for a foreign span if foreign. A
// trace that passed for a foreign span stays marked when later spans of it
// pass for another reason (its CRI spans before their root).
func (s passedSet) add(id pcommon.TraceID, foreign bool) {
	x := s.hash.sum(id)&^foreignBit | 1
	slot := &s.fps[x>>(64-passedSetBits)]
	if foreign || *slot == x|foreignBit {
		x |= foreignBit
	}
	*slot = x
}

// has says whether the trace passed, and whether for a foreign span.
func (s passedSet) has(id pcommon.TraceID) (passed, foreign bool) {
	x := s.hash.sum(id)&^foreignBit | 1
	fp := s.fps[x>>(64-passedSetBits)]
	return fp&^foreignBit == x, fp&foreignBit != 0
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
