package fragment

import (
	"testing"

	"github.com/stretchr/testify/assert"
)

func TestSpanIDIsStableAndDistinct(t *testing.T) {
	a := SpanID("uid-1", PhasePodSchedule, "gen:1")
	assert.Equal(t, a, SpanID("uid-1", PhasePodSchedule, "gen:1"), "same input, same ID")
	assert.NotEqual(t, a, SpanID("uid-2", PhasePodSchedule, "gen:1"))
	assert.NotEqual(t, a, SpanID("uid-1", PhasePodReady, "gen:1"))
	assert.NotEqual(t, a, SpanID("uid-1", PhasePodSchedule, "gen:2"))
	// The separator keeps "a"+"bc" apart from "ab"+"c".
	assert.NotEqual(t, SpanID("a", "bc", ""), SpanID("ab", "c", ""))
	assert.False(t, a.IsEmpty())
}

func TestRecipeIsPinned(t *testing.T) {
	// The recipe is a contract with every stored trace: a change must be
	// deliberate (bump idVersion) and show up here. Expected values computed
	// independently: python3 hashlib.sha256(b"kubestitch/v1\x00span\x00u\x00p\x00d").
	assert.Equal(t, "cfe196f9c26266f3", SpanID("u", "p", "d").String())
	assert.Equal(t, "b1731df0e1eece3d3bcaf260148b5cc0", TraceID("u", "gen:1").String())
}

func TestObjectPhase(t *testing.T) {
	assert.Equal(t, PhaseDeploymentRollout, ObjectPhase("Deployment", "gen:2"))
	assert.Equal(t, PhaseDelete, ObjectPhase("Deployment", TriggerDelete))
	assert.Equal(t, PhaseReconcile, ObjectPhase("Widget", "gen:1"))
}

func BenchmarkSpanID(b *testing.B) {
	b.ReportAllocs()
	for range b.N {
		SpanID("3f8a2c1e-0b7d-4e59-9c61-000000000001", PhasePodSchedule, "gen:1")
	}
}
