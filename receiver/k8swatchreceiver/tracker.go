package k8swatchreceiver

import (
	"sync"
	"time"
)

// tracker turns observations of objects into fragments. It is safe for
// concurrent use: informers of different kinds call it from their own
// goroutines, and Events attach to the state of the object they are about.
// Its lifecycle (lifecycle.go) builds on blocked.go and sli.go; the spans
// themselves are built from an object's state alone (spans.go, podsteps.go).
type tracker struct {
	mu     sync.Mutex
	states map[string]*objectState
	// changes lists, for storage, the objects whose state changed.
	changes changeLog
	// droppedEvents counts Kubernetes Events that had no span to go on.
	droppedEvents int64
	// earlyScheduled are Scheduled Events of pods not seen yet (sli.go).
	earlyScheduled map[string]time.Time
}

func newTracker() *tracker {
	return &tracker{states: map[string]*objectState{}}
}

// markChanged records, with change tracking on, that uid's state changed.
// Called under the lock.
func (t *tracker) markChanged(uid string) {
	t.changes.mark(uid)
}

// trackChanges turns on change tracking for storage.
func (t *tracker) trackChanges() {
	t.mu.Lock()
	defer t.mu.Unlock()
	t.changes.start()
}

// takeChanges calls fn, under the lock, with every object whose state
// changed since the last call (st nil: it is gone), and starts anew.
func (t *tracker) takeChanges(fn func(uid string, st *objectState)) {
	t.mu.Lock()
	defer t.mu.Unlock()
	t.changes.take(func(uid string) { fn(uid, t.states[uid]) })
}

// restore puts a persisted state back before the object is first observed.
func (t *tracker) restore(uid string, st *objectState) {
	t.mu.Lock()
	defer t.mu.Unlock()
	if _, ok := t.states[uid]; !ok {
		st.view.viewDetail = restingDetail // nothing is known of it but its state
		t.states[uid] = st
	}
}

func (t *tracker) tracked() int {
	t.mu.Lock()
	defer t.mu.Unlock()
	return len(t.states)
}

// markQuiet says the object has no status to converge on: the quiet rule
// closes its operations.
func (t *tracker) markQuiet(uid string) {
	t.mu.Lock()
	defer t.mu.Unlock()
	if st := t.states[uid]; st != nil {
		st.Quiet = true
	}
}

func (t *tracker) takeDroppedEvents() int64 {
	t.mu.Lock()
	defer t.mu.Unlock()
	n := t.droppedEvents
	t.droppedEvents = 0
	return n
}
