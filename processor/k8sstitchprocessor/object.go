package k8sstitchprocessor

import (
	"slices"
	"time"

	"go.opentelemetry.io/collector/pdata/pcommon"

	"github.com/kubestitch/kubestitch/internal/fragment"
)

// objRef is an object's slot in the graph, plus one: zero is none.
type objRef int32

// maxOpsPerObject bounds the operations remembered per object: enough for a
// spec change that supersedes another while a deletion starts.
const maxOpsPerObject = 4

// maxSeenPerObject bounds the fragment span IDs remembered per object for
// dropping repeats: a pod's operation has about eight fragments, and an
// object keeps up to maxOpsPerObject operations.
const maxSeenPerObject = 32

// object is one node of the owner graph, learned from fragments.
type object struct {
	UID       string      `json:"u"`
	Kind      string      `json:"k"`
	Namespace string      `json:"n,omitempty"`
	Name      string      `json:"m"`
	OwnerUID  string      `json:"o,omitempty"`
	Ops       []*opRecord `json:"p,omitempty"`
	// Seen are the span IDs of this object's fragments already passed on,
	// oldest first: a repeat (a relist, a restart, two agents) is dropped.
	// Kept with the object rather than in a set of its own: its lookups
	// are a short scan, it leaves with the object, and it is stored with
	// it, so a restart does not let a relist through twice.
	Seen []pcommon.SpanID `json:"sn,omitempty"`

	// recent: seen since the clock hand last passed (ownerGraph.hand).
	recent bool
	// slot is the object's place in the graph; nextByUID and
	// nextByName chain the objects whose UID or name hash the same
	// (ownerGraph.byUID, byName).
	slot                  objRef
	nextByUID, nextByName objRef

	// The usual object has one operation and a handful of fragments:
	// these back Ops and Seen, so that an object is one allocation.
	opsBuf    [1]*opRecord
	firstOp   opRecord
	firstUsed bool
	seenBuf   [8]pcommon.SpanID
}

// markSeen records a fragment's span ID and reports whether it was new.
func (o *object) markSeen(id pcommon.SpanID) bool {
	for _, s := range o.Seen {
		if s == id {
			return false
		}
	}
	if o.Seen == nil {
		o.Seen = o.seenBuf[:0]
	}
	if len(o.Seen) >= maxSeenPerObject {
		o.Seen = append(o.Seen[:0], o.Seen[1:]...)
	}
	o.Seen = append(o.Seen, id)
	return true
}

// hasSeen says whether id is among the fragments already passed on.
func (o *object) hasSeen(id pcommon.SpanID) bool {
	return slices.Contains(o.Seen, id)
}

// unmarkSeen forgets a span ID markSeen recorded: its span was refused
// downstream, and its sender will send it again.
func (o *object) unmarkSeen(id pcommon.SpanID) {
	if i := slices.Index(o.Seen, id); i >= 0 {
		o.Seen = slices.Delete(o.Seen, i, i+1)
	}
}

// opRecord is one trigger of an object and, once known, where it sits:
// the operation's trace and the span its object span hangs under. Once
// placed it never moves, so every fragment of it lands in the same trace.
type opRecord struct {
	Trigger string    `json:"t"`
	Start   time.Time `json:"s"`
	// End is set when the object span arrived (converged or not) or the
	// operation timed out; zero while open.
	End time.Time `json:"e,omitzero"`
	// Traceparent adopted from the object (tracing.k8s.io/traceparent).
	Traceparent string `json:"tp,omitempty"`
	// watchedSince (Unix ns) is when this run began to watch an operation
	// it restored from storage (zero otherwise): the time the store lay
	// unused is not time the operation failed to converge.
	watchedSince int64
	TraceID      pcommon.TraceID `json:"ti"`
	Parent       pcommon.SpanID  `json:"pa"`
	// objectSpan caches the object span's ID (a SHA-256 of the object and
	// trigger): it is the parent of every joined request of the operation.
	objectSpan pcommon.SpanID
	// endGuessed: closed by a newer trigger (supersede.go) at that
	// trigger's time; the genuine end, if it still comes, corrects it.
	endGuessed bool
	// The flags last, together: one object holds its first opRecord
	// inline, and padding between fields is memory per object.
	Closed bool `json:"c,omitempty"`
	// Placed says the placement below is decided.
	Placed bool `json:"pl,omitempty"`
	// Root is true when this trigger opened its own operation.
	Root bool `json:"r,omitempty"`
	// TimedOut marks an operation closed by operation_timeout.
	TimedOut bool `json:"to,omitempty"`
}

// timeoutFrom is when the operation's timeout runs from: its start, or
// for one restored from storage, the restore.
func (r *opRecord) timeoutFrom() time.Time {
	if w := time.Unix(0, r.watchedSince); r.watchedSince != 0 && w.After(r.Start) {
		return w
	}
	return r.Start
}

func (o *object) op(trigger string) *opRecord {
	for _, r := range o.Ops {
		if r.Trigger == trigger {
			return r
		}
	}
	return nil
}

// opAt is the operation of o that was open at t. tol absorbs the second
// precision of object timestamps and the gap between a request and the
// watch event it causes.
//
// afterEnd is how far past a closed operation's end t may still be. A
// child's trigger time is never after the end of the operation that made
// it (object times are truncated down to the second, watch times come
// later than the event but the end is observed later still), so a child
// placed as it arrives takes 0: one that comes after a closed operation
// ended may belong to its owner's next operation, whose trigger can still
// be on its way (another informer, another process). Once it waited out,
// the caller gives the clock tolerance.
func (o *object) opAt(t time.Time, tol, afterEnd time.Duration) *opRecord {
	var best *opRecord
	for _, r := range o.Ops {
		if t.Before(r.Start.Add(-tol)) {
			continue
		}
		if r.Closed && t.After(r.End.Add(afterEnd)) {
			continue
		}
		// The newest trigger wins where two overlap.
		if best == nil || r.Start.After(best.Start) {
			best = r
		}
	}
	return best
}

func (o *object) addOp(trigger string, start time.Time) *opRecord {
	if r := o.op(trigger); r != nil {
		if r.Start.IsZero() || (!start.IsZero() && start.Before(r.Start)) {
			r.Start = start
		}
		return r
	}
	var r *opRecord
	if !o.firstUsed && len(o.Ops) == 0 {
		o.firstUsed = true
		r = &o.firstOp
		o.Ops = o.opsBuf[:0]
	} else {
		r = new(opRecord)
	}
	*r = opRecord{Trigger: trigger, Start: start}
	if len(o.Ops) >= maxOpsPerObject {
		o.Ops = append(o.Ops[:0], o.Ops[1:]...)
	}
	o.Ops = append(o.Ops, r)
	return r
}

// objectSpanID is the span ID of o's object span for the operation r.
func (o *object) objectSpanID(r *opRecord) pcommon.SpanID {
	if r.objectSpan.IsEmpty() {
		r.objectSpan = fragment.ObjectSpanID(o.UID, o.Kind, r.Trigger)
	}
	return r.objectSpan
}

func (o *object) created() time.Time {
	var first time.Time
	for _, r := range o.Ops {
		if first.IsZero() || r.Start.Before(first) {
			first = r.Start
		}
	}
	return first
}

// retiree is a deleted object, and when its deletion closed.
type retiree struct {
	uid    string
	closed time.Time
}
