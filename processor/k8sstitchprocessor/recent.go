package k8sstitchprocessor

import "time"

// recentMap holds a value per key for keepFor, at most max keys, oldest
// out first: what a replay or a forged annotation is checked against
// (retired objects' UIDs, the operation traces opened here). order holds
// the keys oldest first from head on: expiring moves head, and the slice
// is compacted once half of it is spent, so a put costs O(1) amortized at
// the bound too.
type recentMap[K comparable, V any] struct {
	keepFor time.Duration
	max     int
	m       map[K]recentEntry[V]
	order   []K
	head    int
}

type recentEntry[V any] struct {
	v  V
	at time.Time
}

func newRecentMap[K comparable, V any](keepFor time.Duration, max int) recentMap[K, V] {
	return recentMap[K, V]{keepFor: keepFor, max: max, m: map[K]recentEntry[V]{}}
}

// put sets k's value as of now, and expires what is due.
func (r *recentMap[K, V]) put(k K, v V, now time.Time) {
	if _, ok := r.m[k]; !ok {
		r.order = append(r.order, k)
	}
	r.m[k] = recentEntry[V]{v, now}
	r.expire(now)
}

// get is k's value, if it is still held.
func (r *recentMap[K, V]) get(k K) (V, bool) {
	e, ok := r.m[k]
	return e.v, ok
}

// expire drops the keys older than keepFor, and the oldest beyond max.
func (r *recentMap[K, V]) expire(now time.Time) {
	for r.head < len(r.order) {
		k := r.order[r.head]
		if now.Sub(r.m[k].at) < r.keepFor && len(r.order)-r.head <= r.max {
			break
		}
		delete(r.m, k)
		r.head++
	}
	if r.head > len(r.order)/2 {
		r.order = append(r.order[:0], r.order[r.head:]...)
		r.head = 0
	}
}

// opTrace is what is remembered of an operation trace opened here
// (stitchProcessor.opTraces): its namespace, for a traceparent may
// continue a trace of its own namespace only; and whether its ID is this
// processor's own (fragment.TraceID), not a user's traceparent continued,
// so that no span but the ones it rewrites into it may carry it.
type opTrace struct {
	namespace string
	derived   bool
}

// How long, and how many at most (about 100 bytes each), retired objects'
// UIDs (tombstones) and operation traces are remembered.
const (
	tombstoneFor  = time.Hour
	maxTombstones = 100_000
	opTraceFor    = time.Hour
	maxOpTraces   = 100_000
)
