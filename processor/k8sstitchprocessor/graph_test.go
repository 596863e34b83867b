package k8sstitchprocessor

import (
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"go.opentelemetry.io/collector/pdata/pcommon"
)

func TestOwnerGraphShedsWhatWasNotSeenAgain(t *testing.T) {
	g := newOwnerGraph(3)
	var shed []string
	g.onShed = func(o *object) { shed = append(shed, o.UID) }
	for _, uid := range []string{"a", "b", "c"} {
		g.learn(uid, "Pod", "ns", uid, "")
	}
	// a is seen again: a later fragment of a pod still starting.
	g.learn("a", "Pod", "ns", "a", "")
	g.learn("d", "Pod", "ns", "d", "")
	assert.Equal(t, []string{"b"}, shed)
	assert.Equal(t, 3, g.len())
	assert.NotNil(t, g.objects["a"])
	assert.Nil(t, g.byNameAt("Pod", "ns", "b", time.Now(), 0), "a shed object is not found by name")

	// The hand moved on: c was not seen again either, d is new.
	g.learn("e", "Pod", "ns", "e", "")
	assert.Equal(t, []string{"b", "c"}, shed)
	for uid := range g.objects {
		assert.Contains(t, []string{"a", "d", "e"}, uid)
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
