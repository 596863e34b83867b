package k8sstitchprocessor

import (
	"hash/maphash"
	"time"

	"go.opentelemetry.io/collector/pdata/pcommon"

	"github.com/kubestitch/kubestitch/internal/intern"
)

// maxOwnerDepth bounds a walk up the owner chain; deeper is treated as a
// cycle (ownerReferences are not validated by the API server).
const maxOwnerDepth = 16

// ownerGraph maps object UIDs to their owners and operations. It is bounded
// by maxObjects: at the limit an object not seen recently is shed.
type ownerGraph struct {
	// byUID and byName find objects by the hash of their UID and of their
	// kind, namespace and name. Each entry heads a chain (object.nextByUID,
	// nextByName) of the objects whose key has that hash: the chain is
	// walked and each object's key compared, so a collision costs a step,
	// never a wrong object. Maps of integers, not of strings to pointers:
	// the garbage collector does not scan them, and with string-keyed maps
	// a large graph's two indexes were most of its marking work.
	byUID  map[uint64]objRef
	byName map[uint64]objRef
	seed   maphash.Seed
	// hashMask keeps every bit of a hash; a test narrows it to make keys
	// collide.
	hashMask uint64
	// slabs hold the objects, objectSlab to a slab, in slots 0..n-1: a
	// few large allocations rather than one per object, which the garbage
	// collector marks and scans in a sequential sweep. A shed object's slot
	// goes to the object that displaced it, so a *object held across a
	// shed may name another object since: check its UID (see objectOf).
	slabs [][]object
	n     int
	// At the limit the hand sweeps the slots: an object seen since the hand
	// last passed gets a second chance, the first one not seen is shed and
	// the new object takes its slot. This is CLOCK, an approximation of
	// least recently seen that costs a flag per fragment instead of a list
	// operation.
	hand       int
	maxObjects int
	// free are the slots below n of objects dropped (deleted objects whose
	// operations closed): reused before the graph grows or sheds.
	free []int
	// strs keeps one copy of each kind and namespace: every OTLP request
	// decodes its own.
	strs *intern.Table
	// shed lists the objects shed at the limit since takeShed: the owner
	// of the graph reports them (it must not hold on to a shed object: its
	// slot already holds the object that displaced it).
	shed []shedRecord
}

func newOwnerGraph(maxObjects int) *ownerGraph {
	return &ownerGraph{
		byUID:      map[uint64]objRef{},
		byName:     map[uint64]objRef{},
		seed:       maphash.MakeSeed(),
		hashMask:   ^uint64(0),
		maxObjects: maxObjects,
		strs:       intern.New(maxInternedNames),
	}
}

// maxInternedNames bounds the distinct kinds and namespaces kept once.
const maxInternedNames = 4096

// objectSlab is the number of objects allocated at a time (~350 KB).
const objectSlab = 1024

func (g *ownerGraph) at(r objRef) *object { return g.slot(int(r - 1)) }

func (g *ownerGraph) slot(i int) *object { return &g.slabs[i/objectSlab][i%objectSlab] }

func (g *ownerGraph) uidHash(uid string) uint64 { return maphash.String(g.seed, uid) & g.hashMask }

func (g *ownerGraph) nameHash(kind, namespace, name string) uint64 {
	var h maphash.Hash
	h.SetSeed(g.seed)
	h.WriteString(kind)
	h.WriteByte('/')
	h.WriteString(namespace)
	h.WriteByte('/')
	h.WriteString(name)
	return h.Sum64() & g.hashMask
}

// get is the object with this UID, or nil.
func (g *ownerGraph) get(uid string) *object {
	for r := g.byUID[g.uidHash(uid)]; r != 0; {
		o := g.at(r)
		if o.UID == uid {
			return o
		}
		r = o.nextByUID
	}
	return nil
}

// learn records what a fragment says about its object.
func (g *ownerGraph) learn(uid, kind, namespace, name, ownerUID string) *object {
	o := g.get(uid)
	if o == nil {
		o = g.add(uid)
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
		o.Kind, o.Namespace, o.Name = g.strs.String(kind), g.strs.String(namespace), name
		g.index(o)
	}
	if ownerUID != "" && ownerUID != o.OwnerUID {
		if owner := g.get(ownerUID); owner != nil {
			ownerUID = owner.UID // one copy for the owner and its children
		}
		o.OwnerUID = ownerUID
	}
	return o
}

// put adds an object restored from storage and returns the graph's copy,
// or nil if its UID is known already.
func (g *ownerGraph) put(stored *object) *object {
	if g.get(stored.UID) != nil {
		return nil
	}
	o := g.add(stored.UID)
	slot, next := o.slot, o.nextByUID
	*o = *stored
	// Its Ops and Seen were decoded into slices of their own, not into
	// stored's buffers, so they may be shared.
	o.slot, o.nextByUID, o.nextByName, o.recent = slot, next, 0, false
	g.index(o)
	return o
}

// add places a new object in a free slot, or in the slot of the object
// it sheds at the limit.
func (g *ownerGraph) add(uid string) *object {
	var i int
	if k := len(g.free); k > 0 {
		i, g.free = g.free[k-1], g.free[:k-1]
	} else if g.n < g.maxObjects {
		i = g.n
		if i/objectSlab == len(g.slabs) {
			g.slabs = append(g.slabs, make([]object, min(objectSlab, g.maxObjects-i)))
		}
		g.n++
	} else {
		i = g.shedOne()
	}
	o := g.slot(i)
	*o = object{UID: uid, slot: objRef(i + 1)}
	h := g.uidHash(uid)
	o.nextByUID = g.byUID[h]
	g.byUID[h] = o.slot
	return o
}

// shedOne sheds the first object the hand finds not seen since its last
// pass and returns its slot.
func (g *ownerGraph) shedOne() int {
	for {
		i := g.hand
		g.hand = (g.hand + 1) % g.n
		o := g.slot(i)
		if o.recent {
			o.recent = false
			continue
		}
		g.remove(o)
		g.shed = append(g.shed, shedRecord{uid: o.UID, kind: o.Kind})
		return i
	}
}

// shedRecord is an object shed at the limit.
type shedRecord struct{ uid, kind string }

// takeShed returns the objects shed since the last call.
func (g *ownerGraph) takeShed() []shedRecord {
	s := g.shed
	g.shed = nil
	return s
}

// drop takes o out of the graph for good and frees its slot: a deleted
// object whose operations all closed.
func (g *ownerGraph) drop(o *object) {
	i := int(o.slot - 1)
	g.remove(o)
	*o = object{}
	g.free = append(g.free, i)
}

// remove takes o out of both indexes; its slot is the caller's to reuse.
func (g *ownerGraph) remove(o *object) {
	g.unlink(g.byUID, g.uidHash(o.UID), o, func(x *object) *objRef { return &x.nextByUID })
	g.unindex(o)
}

func (g *ownerGraph) index(o *object) {
	if o.Name == "" {
		return
	}
	h := g.nameHash(o.Kind, o.Namespace, o.Name)
	o.nextByName = g.byName[h]
	g.byName[h] = o.slot
}

func (g *ownerGraph) unindex(o *object) {
	if o.Name == "" {
		return
	}
	g.unlink(g.byName, g.nameHash(o.Kind, o.Namespace, o.Name), o, func(x *object) *objRef { return &x.nextByName })
}

// unlink takes o out of the chain at index[h]; next is the chain's link.
func (g *ownerGraph) unlink(index map[uint64]objRef, h uint64, o *object, next func(*object) *objRef) {
	if o.slot == 0 || g.at(o.slot) != o {
		return // not in the graph: its slot may be another object's now
	}
	head, ok := index[h]
	switch {
	case !ok:
	case head == o.slot && *next(o) == 0:
		delete(index, h)
	case head == o.slot:
		index[h] = *next(o)
	default:
		for r := head; r != 0; {
			x := g.at(r)
			if *next(x) == o.slot {
				*next(x) = *next(o)
				break
			}
			r = *next(x)
		}
	}
	*next(o) = 0
}

// byNameAt is the object that had this name at t: names are reused after a
// deletion, so of several UIDs the newest one created before t wins.
func (g *ownerGraph) byNameAt(kind, namespace, name string, t time.Time, tol time.Duration) *object {
	var best *object
	var bestStart time.Time
	for r := g.byName[g.nameHash(kind, namespace, name)]; r != 0; r = g.at(r).nextByName {
		o := g.at(r)
		if o.Kind != kind || o.Namespace != namespace || o.Name != name {
			continue // another name with the same hash
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

func (g *ownerGraph) len() int { return g.n - len(g.free) }
