package k8sstitchprocessor

import (
	"container/list"
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

	// lru is nil once the object left the graph.
	lru *list.Element
}

// markSeen records a fragment's span ID and reports whether it was new.
func (o *object) markSeen(id pcommon.SpanID) bool {
	for _, s := range o.Seen {
		if s == id {
			return false
		}
	}
	if o.Seen == nil {
		o.Seen = make([]pcommon.SpanID, 0, 8)
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
	r := &opRecord{Trigger: trigger, Start: start}
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
// by maxObjects: at the limit the least recently seen object is shed.
type ownerGraph struct {
	objects    map[string]*object
	byName     map[nameKey][]string
	lru        *list.List
	maxObjects int
	// onShed is called for every object shed at the limit.
	onShed func(*object)
}

func newOwnerGraph(maxObjects int) *ownerGraph {
	return &ownerGraph{
		objects:    map[string]*object{},
		byName:     map[nameKey][]string{},
		lru:        list.New(),
		maxObjects: maxObjects,
	}
}

// learn records what a fragment says about its object.
func (g *ownerGraph) learn(uid, kind, namespace, name, ownerUID string) *object {
	o := g.objects[uid]
	if o == nil {
		for len(g.objects) >= g.maxObjects {
			g.shedOldest()
		}
		o = &object{UID: uid}
		g.objects[uid] = o
		o.lru = g.lru.PushFront(o)
	} else {
		g.lru.MoveToFront(o.lru)
	}
	if o.Name != name || o.Namespace != namespace || o.Kind != kind {
		g.unindex(o)
		if o.Kind != kind {
			for _, r := range o.Ops {
				r.objectSpan = pcommon.SpanID{}
			}
		}
		o.Kind, o.Namespace, o.Name = kind, namespace, name
		k := nameKey{kind, namespace, name}
		g.byName[k] = append(g.byName[k], uid)
	}
	if ownerUID != "" {
		o.OwnerUID = ownerUID
	}
	return o
}

func (g *ownerGraph) put(o *object) {
	if old := g.objects[o.UID]; old != nil {
		return
	}
	for len(g.objects) >= g.maxObjects {
		g.shedOldest()
	}
	g.objects[o.UID] = o
	o.lru = g.lru.PushBack(o)
	k := nameKey{o.Kind, o.Namespace, o.Name}
	g.byName[k] = append(g.byName[k], o.UID)
}

func (g *ownerGraph) shedOldest() {
	e := g.lru.Back()
	if e == nil {
		return
	}
	o := e.Value.(*object)
	g.remove(o)
	if g.onShed != nil {
		g.onShed(o)
	}
}

func (g *ownerGraph) remove(o *object) {
	g.lru.Remove(o.lru)
	o.lru = nil
	delete(g.objects, o.UID)
	g.unindex(o)
}

func (g *ownerGraph) unindex(o *object) {
	if o.Name == "" {
		return
	}
	k := nameKey{o.Kind, o.Namespace, o.Name}
	uids := g.byName[k]
	for i, u := range uids {
		if u == o.UID {
			uids = append(uids[:i], uids[i+1:]...)
			break
		}
	}
	if len(uids) == 0 {
		delete(g.byName, k)
	} else {
		g.byName[k] = uids
	}
}

// byNameAt is the object that had this name at t: names are reused after a
// deletion, so of several UIDs the newest one created before t wins.
func (g *ownerGraph) byNameAt(kind, namespace, name string, t time.Time, tol time.Duration) *object {
	var best *object
	var bestStart time.Time
	for _, uid := range g.byName[nameKey{kind, namespace, name}] {
		o := g.objects[uid]
		if o == nil {
			continue
		}
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
