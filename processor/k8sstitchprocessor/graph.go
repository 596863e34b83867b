package k8sstitchprocessor

import (
	"time"

	"go.opentelemetry.io/collector/pdata/pcommon"

	"github.com/kubestitch/kubestitch/internal/fragment"
)

// maxOpsPerObject bounds the operations remembered per object: enough for a
// spec change that supersedes another while a deletion starts.
const maxOpsPerObject = 4

// maxSeenPerObject bounds the fragment span IDs remembered per object for
// dropping repeats: a pod's operation has about eight fragments, and an
// object keeps up to maxOpsPerObject operations.
const maxSeenPerObject = 32

// maxOwnerDepth bounds a walk up the owner chain; deeper is treated as a
// cycle (ownerReferences are not validated by the API server).
const maxOwnerDepth = 16

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

	// recent: seen since the clock hand last passed (ownerGraph.clock).
	recent bool
	// gone: shed from the graph.
	gone bool

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

// opRecord is one trigger of an object and, once known, where it sits:
// the operation's trace and the span its object span hangs under. Once
// placed it never moves, so every fragment of it lands in the same trace.
type opRecord struct {
	Trigger string    `json:"t"`
	Start   time.Time `json:"s"`
	// End is set when the object span arrived (converged or not) or the
	// operation timed out; zero while open.
	End    time.Time `json:"e,omitzero"`
	Closed bool      `json:"c,omitempty"`
	// Placed says the placement below is decided.
	Placed  bool            `json:"pl,omitempty"`
	TraceID pcommon.TraceID `json:"ti"`
	Parent  pcommon.SpanID  `json:"pa"`
	// Root is true when this trigger opened its own operation.
	Root bool `json:"r,omitempty"`
	// Traceparent adopted from the object (tracing.k8s.io/traceparent).
	Traceparent string `json:"tp,omitempty"`
	// TimedOut marks an operation closed by operation_timeout.
	TimedOut bool `json:"to,omitempty"`

	// objectSpan caches the object span's ID (a SHA-256 of the object and
	// trigger): it is the parent of every joined request of the operation.
	objectSpan pcommon.SpanID
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
func (o *object) opAt(t time.Time, tol time.Duration) *opRecord {
	var best *opRecord
	for _, r := range o.Ops {
		if t.Before(r.Start.Add(-tol)) {
			continue
		}
		if r.Closed && t.After(r.End.Add(tol)) {
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

type nameKey struct{ kind, namespace, name string }

// ownerGraph maps object UIDs to their owners and operations. It is bounded
// by maxObjects: at the limit an object not seen recently is shed.
type ownerGraph struct {
	objects map[string]*object
	byName  map[nameKey][]*object
	// clock holds every object once. At the limit the hand sweeps it: an
	// object seen since the hand last passed gets a second chance, the
	// first one not seen is shed and the new object takes its slot. This
	// is CLOCK, an approximation of least recently seen that costs a flag
	// per fragment instead of a list operation.
	clock      []*object
	hand       int
	maxObjects int
	// onShed is called for every object shed at the limit.
	onShed func(*object)
}

func newOwnerGraph(maxObjects int) *ownerGraph {
	return &ownerGraph{
		objects:    map[string]*object{},
		byName:     map[nameKey][]*object{},
		maxObjects: maxObjects,
	}
}

// learn records what a fragment says about its object.
func (g *ownerGraph) learn(uid, kind, namespace, name, ownerUID string) *object {
	o := g.objects[uid]
	if o == nil {
		o = &object{UID: uid}
		g.add(o)
	} else {
		o.recent = true
	}
	if o.Name != name || o.Namespace != namespace || o.Kind != kind {
		g.unindex(o)
		if o.Kind != kind {
			for _, r := range o.Ops {
				r.objectSpan = pcommon.SpanID{}
			}
		}
		o.Kind, o.Namespace, o.Name = kind, namespace, name
		g.index(o)
	}
	if ownerUID != "" {
		o.OwnerUID = ownerUID
	}
	return o
}

// put adds an object restored from storage.
func (g *ownerGraph) put(o *object) {
	if old := g.objects[o.UID]; old != nil {
		return
	}
	g.add(o)
	g.index(o)
}

func (g *ownerGraph) add(o *object) {
	g.objects[o.UID] = o
	if len(g.clock) < g.maxObjects {
		g.clock = append(g.clock, o)
		return
	}
	g.clock[g.shedOne()] = o
}

// shedOne sheds the first object the hand finds not seen since its last
// pass and returns its slot.
func (g *ownerGraph) shedOne() int {
	for {
		i := g.hand
		g.hand = (g.hand + 1) % len(g.clock)
		o := g.clock[i]
		if o.recent {
			o.recent = false
			continue
		}
		delete(g.objects, o.UID)
		g.unindex(o)
		o.gone = true
		if g.onShed != nil {
			g.onShed(o)
		}
		return i
	}
}

func (g *ownerGraph) index(o *object) {
	if o.Name == "" {
		return
	}
	k := nameKey{o.Kind, o.Namespace, o.Name}
	g.byName[k] = append(g.byName[k], o)
}

func (g *ownerGraph) unindex(o *object) {
	if o.Name == "" {
		return
	}
	k := nameKey{o.Kind, o.Namespace, o.Name}
	objs := g.byName[k]
	for i, x := range objs {
		if x == o {
			objs = append(objs[:i], objs[i+1:]...)
			break
		}
	}
	if len(objs) == 0 {
		delete(g.byName, k)
	} else {
		g.byName[k] = objs
	}
}

// byNameAt is the object that had this name at t: names are reused after a
// deletion, so of several UIDs the newest one created before t wins.
func (g *ownerGraph) byNameAt(kind, namespace, name string, t time.Time, tol time.Duration) *object {
	var best *object
	var bestStart time.Time
	for _, o := range g.byName[nameKey{kind, namespace, name}] {
		created := o.created()
		if !created.IsZero() && t.Before(created.Add(-tol)) {
			continue
		}
		if best == nil || created.After(bestStart) {
			best, bestStart = o, created
		}
	}
	return best
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

func (g *ownerGraph) len() int { return len(g.objects) }
