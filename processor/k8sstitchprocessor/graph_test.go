package k8sstitchprocessor

import (
	"fmt"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"go.opentelemetry.io/collector/pdata/pcommon"
	"go.opentelemetry.io/collector/pdata/ptrace"

	"github.com/kubestitch/kubestitch/internal/fragment"
)

func TestOwnerGraphShedsWhatWasNotSeenAgain(t *testing.T) {
	g := newOwnerGraph(3)
	var shed []string
	learn := func(uid string) {
		g.learn(uid, "Pod", "ns", uid, "")
		for _, s := range g.takeShed() {
			shed = append(shed, s.uid)
		}
	}
	for _, uid := range []string{"a", "b", "c"} {
		learn(uid)
	}
	// a is seen again: a later fragment of a pod still starting.
	learn("a")
	learn("d")
	assert.Equal(t, []string{"b"}, shed)
	assert.Equal(t, 3, g.len())
	assert.NotNil(t, g.get("a"))
	assert.Nil(t, g.byNameAt("Pod", "ns", "b", time.Now(), 0), "a shed object is not found by name")

	// The hand moved on: c was not seen again either, d is new.
	learn("e")
	assert.Equal(t, []string{"b", "c"}, shed)
	for i := range g.len() {
		assert.Contains(t, []string{"a", "d", "e"}, g.slot(i).UID)
	}
	for _, uid := range []string{"b", "c"} {
		assert.Nil(t, g.get(uid))
	}
}

func TestObjectDropsRepeatedFragments(t *testing.T) {
	o := &object{UID: "u"}
	id := pcommon.SpanID{1}
	require.True(t, o.markSeen(id))
	require.False(t, o.markSeen(id), "a relisted fragment is a duplicate")
	for i := range maxSeenPerObject {
		o.markSeen(pcommon.SpanID{byte(i + 2)})
	}
	assert.Len(t, o.Seen, maxSeenPerObject)
	assert.True(t, o.markSeen(id), "the oldest ID left the bounded list")
}

// A name is reused after a deletion: a path hint names the object that had
// the name when the request was made, and an object that leaves the graph
// leaves the others of its name in place.
func TestOwnerGraphFindsTheNameHolderOfTheTime(t *testing.T) {
	g := newOwnerGraph(10)
	t0 := time.Date(2026, 11, 26, 10, 0, 0, 0, time.UTC)
	for i, uid := range []string{"first", "second", "third"} {
		o := g.learn(uid, "Pod", "ns", "web-0", "")
		o.addOp("generation/1", t0.Add(time.Duration(i)*time.Minute))
	}
	at := func(d time.Duration) string {
		if o := g.byNameAt("Pod", "ns", "web-0", t0.Add(d), 0); o != nil {
			return o.UID
		}
		return ""
	}
	assert.Equal(t, "first", at(30*time.Second))
	assert.Equal(t, "second", at(90*time.Second))
	assert.Equal(t, "third", at(time.Hour))

	g.unindex(g.get("second"))
	assert.Equal(t, "first", at(90*time.Second), "the older holder is still found")
	assert.Equal(t, "third", at(time.Hour))
	g.unindex(g.get("third"))
	assert.Equal(t, "first", at(time.Hour))
	g.unindex(g.get("first"))
	assert.Empty(t, at(time.Hour))
	assert.Empty(t, g.byName, "no empty chain is left behind")

	// Renamed: found by the new name only.
	o := g.learn("first", "Pod", "ns", "web-1", "")
	o.addOp("generation/1", t0)
	assert.Empty(t, at(time.Hour))
	assert.Equal(t, "first", g.byNameAt("Pod", "ns", "web-1", t0, 0).UID)
}

// Keys whose hashes collide share a chain: every lookup still finds its
// own object, through learning, renames and shedding at the limit. The
// hash is narrowed to two values to make every key collide with half the
// others.
func TestOwnerGraphKeysThatCollide(t *testing.T) {
	const limit = 20
	g := newOwnerGraph(limit)
	g.hashMask = 1
	t0 := time.Date(2026, 11, 26, 10, 0, 0, 0, time.UTC)
	live := map[string]string{} // uid -> name
	var order []string          // uids, in learning order
	for i := range 200 {
		uid := fmt.Sprintf("uid-%d", i%60)
		name := fmt.Sprintf("pod-%d", (i*7)%45) // renames, and names reused
		o := g.learn(uid, "Pod", "ns", name, "")
		for _, s := range g.takeShed() {
			delete(live, s.uid)
		}
		o.addOp("generation/1", t0)
		if _, ok := live[uid]; !ok {
			order = append(order, uid)
		}
		live[uid] = name

		require.Len(t, live, g.len())
		for uid, name := range live {
			o := g.get(uid)
			require.NotNil(t, o, "step %d: %s", i, uid)
			require.Equal(t, uid, o.UID)
			found := g.byNameAt("Pod", "ns", name, t0, 0)
			require.NotNil(t, found, "step %d: %s by name %s", i, uid, name)
			require.Equal(t, name, found.Name)
		}
	}
	for _, uid := range order {
		if _, ok := live[uid]; !ok {
			assert.Nil(t, g.get(uid), "shed %s is gone", uid)
		}
	}
	assert.LessOrEqual(t, len(g.byUID), 2)
}

// An object shed while its own batch is read gives its slot to another
// object: its fragment must still land in its own operation, not in the
// operation of the object that now holds the slot.
func TestFragmentOfAnObjectShedInItsBatchKeepsItsOperation(t *testing.T) {
	h := newHarness(t, func(c *Config) { c.MaxObjects = 2 })
	m := newSpanMaker()
	t0 := time.Date(2026, 11, 26, 10, 0, 0, 0, time.UTC)
	uids := []string{"dep-a", "dep-b", "dep-c"}
	for i, uid := range uids {
		at := t0.Add(time.Duration(i) * time.Second)
		fragmentSpan(m, "kube-controller-manager", "Deployment", uid, uid, "", fragment.PhaseDeploymentRollout, fragment.LevelObject, at, at, time.Second)
	}
	h.feed(t, m.td)
	h.drain()

	got := map[string]pcommon.TraceID{}
	forEachSpan(h.output(), func(_ pcommon.Map, s ptrace.Span) {
		uid, _ := s.Attributes().Get(fragment.KeyUID)
		got[uid.Str()] = s.TraceID()
	})
	require.Len(t, got, len(uids))
	for _, uid := range uids {
		assert.Equal(t, fragment.TraceID(uid, "gen:1"), got[uid], uid)
	}
	assert.LessOrEqual(t, h.p.graph.len(), 2)
}
