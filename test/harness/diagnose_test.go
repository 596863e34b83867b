package harness

import (
	"fmt"
	"net/http"
	"net/http/httptest"
	"sort"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"go.opentelemetry.io/collector/pdata/pcommon"
	"go.opentelemetry.io/collector/pdata/ptrace"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/kubestitch/kubestitch/internal/fragment"
	"github.com/kubestitch/kubestitch/internal/waterfall"
)

var (
	t0     = time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC)
	traceA = pcommon.TraceID{0xaa, 0xbb, 0xcc, 0xdd, 1}
	traceB = pcommon.TraceID{0xbb, 0xcc, 0xdd, 0xee, 2}
)

// fragmentSpan adds a fragment of the object uid (level "object", or ""
// for a plain span without the fragment keys).
func fragmentSpan(ss ptrace.SpanSlice, trace pcommon.TraceID, id byte, name, uid, trig, level string) {
	s := ss.AppendEmpty()
	s.SetTraceID(trace)
	s.SetSpanID(pcommon.SpanID{id})
	s.SetName(name)
	s.SetStartTimestamp(pcommon.NewTimestampFromTime(t0))
	s.SetEndTimestamp(pcommon.NewTimestampFromTime(t0.Add(time.Duration(id) * time.Millisecond)))
	if level != "" {
		s.Attributes().PutStr(fragment.KeyLevel, level)
	}
	if uid != "" {
		s.Attributes().PutStr(fragment.KeyUID, uid)
	}
	if trig != "" {
		s.Attributes().PutStr(fragment.KeyTrigger, trig)
	}
}

// output is a gateway's output: a rollout in trace A with a Deployment's
// and a ReplicaSet's fragments of two generations, a pod's fragments split
// across traces A and B, and an apiserver span (no fragment) carrying a
// uid.
func output() []*waterfall.Trace {
	td := ptrace.NewTraces()
	rs := td.ResourceSpans().AppendEmpty()
	rs.Resource().Attributes().PutStr(fragment.KeyServiceName, "kubestitch")
	ss := rs.ScopeSpans().AppendEmpty().Spans()
	fragmentSpan(ss, traceA, 1, fragment.PhaseDeploymentRollout, "dep-uid", "gen:1", fragment.LevelObject)
	fragmentSpan(ss, traceA, 2, fragment.PhaseReplicaSetScale, "rs-uid", "gen:1", fragment.LevelObject)
	fragmentSpan(ss, traceA, 3, fragment.PhaseReplicaSetScale, "rs-uid", "gen:2", fragment.LevelObject)
	fragmentSpan(ss, traceA, 4, fragment.PhasePodStartup, "pod-uid", "gen:1", fragment.LevelObject)
	fragmentSpan(ss, traceB, 5, fragment.PhasePodReady, "pod-uid", "gen:1", "phase")
	fragmentSpan(ss, traceB, 6, "unkeyed", "", "gen:1", fragment.LevelObject)
	api := td.ResourceSpans().AppendEmpty()
	api.Resource().Attributes().PutStr(fragment.KeyServiceName, "apiserver")
	fragmentSpan(api.ScopeSpans().AppendEmpty().Spans(), traceA, 7, "POST /apis/apps/v1/namespaces/{:namespace}/deployments", "dep-uid", "", "")
	return waterfall.Build(td)
}

func spanNamed(t *testing.T, all []*waterfall.Trace, name string) *waterfall.Node {
	t.Helper()
	for _, tr := range all {
		for _, s := range tr.Spans {
			if s.Name == name {
				return s
			}
		}
	}
	t.Fatalf("no span %q", name)
	return nil
}

func TestIsFragmentAndTrigger(t *testing.T) {
	all := output()
	rollout := spanNamed(t, all, fragment.PhaseDeploymentRollout)
	assert.True(t, rollout.IsFragment())
	assert.Equal(t, "gen:1", rollout.Trigger())
	assert.True(t, spanNamed(t, all, fragment.PhasePodReady).IsFragment(), "any level is a fragment")
	api := spanNamed(t, all, "POST /apis/apps/v1/namespaces/{:namespace}/deployments")
	assert.False(t, api.IsFragment(), "a span without the level key is not a fragment, uid or not")
	assert.Empty(t, api.Trigger())
}

func TestFragmentsByObject(t *testing.T) {
	frags := fragmentsByObject(output())
	got := map[string][]string{}
	for uid, ns := range frags {
		for _, n := range ns {
			got[uid] = append(got[uid], n.Name+" "+n.Trigger())
		}
		sort.Strings(got[uid])
	}
	assert.Equal(t, map[string][]string{
		// The apiserver's span with the Deployment's uid is no fragment,
		// and the fragment without a uid is under no object.
		"dep-uid": {fragment.PhaseDeploymentRollout + " gen:1"},
		"rs-uid":  {fragment.PhaseReplicaSetScale + " gen:1", fragment.PhaseReplicaSetScale + " gen:2"},
		// Fragments of one object in two traces are both there.
		"pod-uid": {fragment.PhasePodReady + " gen:1", fragment.PhasePodStartup + " gen:1"},
	}, got)
	assert.Empty(t, fragmentsByObject(nil))
}

func TestHasFragment(t *testing.T) {
	frags := fragmentsByObject(output())
	assert.True(t, hasFragment(frags["rs-uid"], fragment.PhaseReplicaSetScale, "gen:2"))
	assert.False(t, hasFragment(frags["rs-uid"], fragment.PhaseReplicaSetScale, "gen:3"), "another trigger")
	assert.False(t, hasFragment(frags["rs-uid"], fragment.PhaseDeploymentRollout, "gen:1"), "another name")
	assert.True(t, hasFragment(frags["pod-uid"], fragment.PhasePodReady, "gen:1"))
	assert.False(t, hasFragment(frags["missing"], fragment.PhasePodReady, "gen:1"), "no fragments")
}

func TestNames(t *testing.T) {
	frags := fragmentsByObject(output())
	a, b := traceA.String()[:8], traceB.String()[:8]
	// Sorted, each with the first 8 hex digits of its trace: a pod split
	// across two traces shows it.
	assert.Equal(t, fragment.PhasePodReady+"@"+b+" "+fragment.PhasePodStartup+"@"+a, names(frags["pod-uid"], "gen:1"))
	assert.Equal(t, fragment.PhaseReplicaSetScale+"@"+a, names(frags["rs-uid"], "gen:2"), "only the trigger asked for")
	assert.Equal(t, "none", names(frags["rs-uid"], "gen:9"))
	assert.Equal(t, "none", names(nil, "gen:1"))
}

func TestPodReadyAt(t *testing.T) {
	at := metav1.NewTime(t0)
	p := &corev1.Pod{Status: corev1.PodStatus{Conditions: []corev1.PodCondition{
		{Type: corev1.PodScheduled, Status: corev1.ConditionTrue, LastTransitionTime: metav1.NewTime(t0.Add(-time.Minute))},
		{Type: corev1.PodReady, Status: corev1.ConditionFalse, LastTransitionTime: metav1.NewTime(t0.Add(-time.Second))},
	}}}
	assert.True(t, podReadyAt(p).IsZero(), "not Ready")
	p.Status.Conditions[1] = corev1.PodCondition{Type: corev1.PodReady, Status: corev1.ConditionTrue, LastTransitionTime: at}
	assert.Equal(t, t0, podReadyAt(p).UTC())
	assert.True(t, podReadyAt(&corev1.Pod{}).IsZero())
}

// TestCounters: the collector's own k8s_stitch and k8s_watch counters,
// summed over their labels, others left out.
func TestCounters(t *testing.T) {
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		assert.Equal(t, "/metrics", r.URL.Path)
		fmt.Fprint(w, `# HELP otelcol_k8sstitch_traces_total Traces.
# TYPE otelcol_k8sstitch_traces_total counter
otelcol_k8sstitch_traces_total{outcome="complete"} 3
otelcol_k8sstitch_traces_total{outcome="timeout"} 2
otelcol_k8swatch_events_total 7
otelcol_process_uptime 12.5
`)
	}))
	defer srv.Close()
	assert.Equal(t, "k8sstitch_traces_total=5 k8swatch_events_total=7", counters(strings.TrimPrefix(srv.URL, "http://")))
	assert.Equal(t, "-", counters(""))
	srv.Close()
	assert.NotEmpty(t, counters(strings.TrimPrefix(srv.URL, "http://")), "an unreachable collector says why")
}
