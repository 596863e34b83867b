package k8swatchreceiver

import "sync"

// maxRetrySpans bounds the fragments kept for another try after the
// pipeline refused them (memory_limiter under load); beyond it the oldest
// are dropped, logged and counted.
const maxRetrySpans = 20_000

// retryQueue holds fragments the next consumer refused: the tracker already
// counts them as emitted, so they must not be lost. Safe for concurrent
// use.
type retryQueue struct {
	mu    sync.Mutex
	spans []fragmentSpan
}

// add keeps frags for another try, and says how many of the oldest it
// dropped to stay within maxRetrySpans.
func (q *retryQueue) add(frags []fragmentSpan) (dropped int) {
	q.mu.Lock()
	defer q.mu.Unlock()
	q.spans = append(q.spans, frags...)
	if over := len(q.spans) - maxRetrySpans; over > 0 {
		q.spans = append(q.spans[:0], q.spans[over:]...)
		return over
	}
	return 0
}

// take hands out everything kept, and empties the queue.
func (q *retryQueue) take() []fragmentSpan {
	q.mu.Lock()
	defer q.mu.Unlock()
	out := q.spans
	q.spans = nil
	return out
}
