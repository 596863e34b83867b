package spans

import (
	"testing"

	"github.com/stretchr/testify/assert"
	"go.opentelemetry.io/collector/pdata/ptrace"
)

func TestAllYieldsEverySpanWithItsResource(t *testing.T) {
	td := ptrace.NewTraces()
	for _, svc := range []string{"a", "b"} {
		rs := td.ResourceSpans().AppendEmpty()
		rs.Resource().Attributes().PutStr("service.name", svc)
		for range 2 {
			ss := rs.ScopeSpans().AppendEmpty()
			ss.Spans().AppendEmpty().SetName(svc + "1")
			ss.Spans().AppendEmpty().SetName(svc + "2")
		}
	}
	var got []string
	for res, s := range All(td) {
		v, _ := res.Get("service.name")
		got = append(got, v.Str()+":"+s.Name())
	}
	assert.Equal(t, []string{"a:a1", "a:a2", "a:a1", "a:a2", "b:b1", "b:b2", "b:b1", "b:b2"}, got)
	n := 0
	for range All(td) {
		n++
		if n == 3 {
			break
		}
	}
	assert.Equal(t, 3, n, "stops when asked")
}
