package k8swatchreceiver

import (
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"go.opentelemetry.io/collector/pdata/ptrace"

	"github.com/kubestitch/kubestitch/internal/fragment"
)

// An open operation's trigger goes again, with the IDs it first went with,
// every reannounce interval until the operation ends, and with its object
// span for a while after: a gateway that took over the namespace from a
// dead one learns the operation from them.
func TestOpenOperationsTriggerIsSentAgainUntilItEnds(t *testing.T) {
	tr := newTracker()
	open := tr.observe(viewDeployment(testDeployment(2, 3), nil), t0, false)
	require.Equal(t, []string{fragment.PhaseTrigger}, names(open))
	first := open[0]

	tick := func(d time.Duration) []fragmentSpan {
		var out []fragmentSpan
		for _, f := range tr.quiet(t0.Add(d), time.Hour, 2*time.Second) {
			if f.name == fragment.PhaseTrigger {
				out = append(out, f)
			}
		}
		return out
	}
	assert.Empty(t, tick(time.Second), "the trigger went moments ago")
	assert.Empty(t, tick(2*time.Second), "not before an interval")
	again := tick(3 * time.Second)
	require.Len(t, again, 1)
	assert.Equal(t, first.traceID, again[0].traceID)
	assert.Equal(t, first.spanID, again[0].spanID, "the same span: a gateway that has it drops it as a repeat")
	assert.Equal(t, first.parentID, again[0].parentID)
	assert.Equal(t, first.start, again[0].start, "the trigger's own time, not the tick's")
	td := toTraces(again, "test")
	s := td.ResourceSpans().At(0).ScopeSpans().At(0).Spans().At(0)
	v, ok := s.Attributes().Get(fragment.KeyReannounced)
	assert.True(t, ok && v.Bool(), "marked, so a gateway that knows the operation drops it quietly")
	assert.Equal(t, "gen:2", attrStr(s, fragment.KeyTrigger))

	assert.Empty(t, tick(4*time.Second))
	assert.Len(t, tick(5*time.Second), 1)

	done := tr.observe(viewDeployment(convergedDeployment(testDeployment(2, 3)), nil), t0.Add(6*time.Second), false)
	require.Len(t, done, 1)
	assert.Empty(t, tr.quiet(t0.Add(7*time.Second), time.Hour, 2*time.Second), "the object span went moments ago")
	ended := tr.quiet(t0.Add(9*time.Second), time.Hour, 2*time.Second)
	require.Equal(t, []string{fragment.PhaseTrigger, fragment.PhaseDeploymentRollout}, names(ended),
		"after its end, the trigger and the object span: a gateway that takes the namespace over places the operation's late children")
	assert.Equal(t, done[0].spanID, ended[1].spanID)
	assert.Equal(t, done[0].end, ended[1].end)
	tr.quiet(t0.Add(6*time.Second+reannounceAfterEnd), time.Hour, 2*time.Second)
	assert.Empty(t, tr.quiet(t0.Add(9*time.Second+reannounceAfterEnd), time.Hour, 2*time.Second), "not after reannounceAfterEnd")
}

// A pod that never starts is not sent forever: past the processor's
// default operation_timeout its operation is closed there anyway.
func TestReannounceStopsAfterTheResumeWindow(t *testing.T) {
	tr := newTracker()
	tr.observe(viewPod(testPod("pod-1"), nil), t0, false)
	tr.quiet(t0.Add(time.Second), time.Hour, 2*time.Second)
	assert.Len(t, tr.quiet(t0.Add(time.Minute), time.Hour, 2*time.Second), 1, "a pod starting for a minute: sent again")
	assert.Empty(t, tr.quiet(t0.Add(resumeWindow+time.Minute), time.Hour, 2*time.Second), "not after the window")

	off := newTracker()
	off.observe(viewPod(testPod("pod-1"), nil), t0, false)
	off.quiet(t0.Add(time.Second), time.Hour, 0)
	assert.Empty(t, off.quiet(t0.Add(time.Minute), time.Hour, 0), "0 turns it off")
}

func attrStr(s ptrace.Span, key string) string {
	v, _ := s.Attributes().Get(key)
	return v.AsString()
}

// A long rollout (its trigger more than resumeWindow ago) that ends now is
// still sent again after its end: the window after an end runs from the
// end.
func TestALongOperationIsReannouncedAfterItsEnd(t *testing.T) {
	tr := newTracker()
	tr.observe(viewDeployment(testDeployment(2, 3), nil), t0, false)
	end := t0.Add(resumeWindow + time.Minute)
	tr.observe(viewDeployment(convergedDeployment(testDeployment(2, 3)), nil), end, false)
	tr.quiet(end.Add(time.Second), time.Hour, time.Second)
	assert.Len(t, tr.quiet(end.Add(3*time.Second), time.Hour, time.Second), 2, "its trigger and its end")
}

// A replica that is not watching (it lost the Lease, or never held it)
// reannounces nothing: its tracker is frozen.
func TestOnlyAWatchingReceiverReannounces(t *testing.T) {
	r := &watchReceiver{cfg: &Config{ReannounceInterval: time.Second}}
	assert.Zero(t, r.reannounceInterval(), "not watching")
	r.watching.Store(true)
	assert.Equal(t, time.Second, r.reannounceInterval())
}
