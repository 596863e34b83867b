package k8sstitchprocessor

import (
	"encoding/binary"
	"math/rand/v2"
	"testing"

	"github.com/stretchr/testify/require"
	"go.opentelemetry.io/collector/pdata/pcommon"
)

// The table answers as a map bounded to its last max inserted traces
// would, through growth, updates and evictions. A small hash multiplier
// and few distinct IDs make long probe runs and wrap-around at the end of
// the index, where backward-shift deletion goes wrong if it does.
func TestDecisionTableIsABoundedFIFOMap(t *testing.T) {
	for _, hash := range []traceHash{newTraceHash(), 1, 3} {
		const max = 300
		table := newDecisionTable(max, hash)
		want := map[pcommon.TraceID]traceDecision{}
		var order []pcommon.TraceID // insertion order of the live keys
		rng := rand.New(rand.NewPCG(1, uint64(hash)))
		id := func(n uint64) pcommon.TraceID {
			var t pcommon.TraceID
			binary.LittleEndian.PutUint64(t[8:], n)
			return t
		}
		for step := range 20000 {
			k := id(rng.Uint64N(2000))
			d := traceDecision{parent: pcommon.SpanID{byte(step)}, hint: hintKind(step % 4)}
			if _, ok := want[k]; !ok {
				if len(order) == max {
					delete(want, order[0])
					order = order[1:]
				}
				order = append(order, k)
			}
			want[k] = d
			table.set(k, d)

			probe := id(rng.Uint64N(2000))
			got, ok := table.get(probe)
			w, wok := want[probe]
			require.Equal(t, wok, ok, "step %d: presence of %v", step, probe)
			require.Equal(t, w, got, "step %d", step)
		}
		require.Len(t, table.entries, max)
		for k, w := range want {
			got, ok := table.get(k)
			require.True(t, ok)
			require.Equal(t, w, got)
		}
	}
}
