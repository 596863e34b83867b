package tracecheck

import (
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"go.opentelemetry.io/collector/pdata/pcommon"
	"go.opentelemetry.io/collector/pdata/ptrace"

	"github.com/kubestitch/kubestitch/internal/fragment"
	"github.com/kubestitch/kubestitch/internal/waterfall"
)

// A forgery k8sstitch quarantined arrives first and looks like the
// operation's root by name, object and trigger; Find must still pick the
// genuine one (the trust e2e test failed in CI on this order).
func TestFindSkipsAQuarantinedRoot(t *testing.T) {
	td := ptrace.NewTraces()
	root := func(traceID byte, unverified bool) {
		s := td.ResourceSpans().AppendEmpty().ScopeSpans().AppendEmpty().Spans().AppendEmpty()
		s.SetTraceID(pcommon.TraceID{traceID})
		s.SetSpanID(pcommon.SpanID{traceID})
		s.SetName(fragment.PhaseDeploymentRollout)
		s.SetStartTimestamp(pcommon.NewTimestampFromTime(time.Unix(100, 0)))
		s.SetEndTimestamp(pcommon.NewTimestampFromTime(time.Unix(101, 0)))
		a := s.Attributes()
		a.PutStr(fragment.KeyLevel, fragment.LevelObject)
		a.PutStr(fragment.KeyKind, "Deployment")
		a.PutStr(fragment.KeyNamespace, "default")
		a.PutStr(fragment.KeyName, "forged")
		a.PutStr(fragment.KeyTrigger, "gen:1")
		if unverified {
			a.PutBool(fragment.KeyUnverified, true)
		}
	}
	root(1, true)
	root(2, false)
	all := waterfall.Build(td)
	require.Len(t, all, 2)
	got := Find(all, fragment.PhaseDeploymentRollout, "Deployment default/forged", "gen:1")
	require.NotNil(t, got)
	assert.Equal(t, pcommon.TraceID{2}, got.Root.TraceID)
}
