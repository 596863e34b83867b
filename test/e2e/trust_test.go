package e2e

import (
	"fmt"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"go.opentelemetry.io/collector/pdata/pcommon"
	"go.opentelemetry.io/collector/pdata/ptrace"
	"go.opentelemetry.io/collector/pdata/ptrace/ptraceotlp"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"

	"github.com/kubestitch/kubestitch/internal/fragment"
	"github.com/kubestitch/kubestitch/internal/waterfall"
	"github.com/kubestitch/kubestitch/localcluster"
	"github.com/kubestitch/kubestitch/test/harness"
	"github.com/kubestitch/kubestitch/test/otlpsink"
)

// TestForgedFragmentsShapeNothing is the attack of the trust issue on the
// local control plane: an OTLP client with no key and read access to
// Deployments and Pods sends, 290 ms after a Deployment is created, a span
// imitating its converged deployment.rollout object span (the same trace
// and span ID, computed from the README's recipe), and, once a pod
// exists, one imitating the pod's pod.startup span with another owner.
// The genuine root and pod spans must reach the backend in the one whole
// operation trace, the forgeries must not be in it, and the gateway must
// count them.
func TestForgedFragmentsShapeNothing(t *testing.T) {
	e := harness.StartEnv(t, harness.EnvOptions{Agent: true})
	ctx := t.Context()
	const replicas = 3
	d, err := e.Cluster.Client.AppsV1().Deployments("default").Create(ctx, localcluster.DemoDeployment("forged", replicas), metav1.CreateOptions{})
	require.NoError(t, err)

	forger := otlpsink.Client(t, e.Gateway.OTLPEndpoint)
	send := func(uid types.UID, kind, name, owner string, traceID pcommon.TraceID) {
		td := ptrace.NewTraces()
		rs := td.ResourceSpans().AppendEmpty()
		rs.Resource().Attributes().PutStr(fragment.KeyServiceName, "forger")
		s := rs.ScopeSpans().AppendEmpty().Spans().AppendEmpty()
		s.SetTraceID(traceID)
		s.SetSpanID(fragment.ObjectSpanID(string(uid), kind, "gen:1"))
		s.SetName(fragment.ObjectPhase(kind, "gen:1"))
		now := time.Now()
		s.SetStartTimestamp(pcommon.NewTimestampFromTime(now.Add(-time.Second)))
		s.SetEndTimestamp(pcommon.NewTimestampFromTime(now))
		a := s.Attributes()
		a.PutStr(fragment.KeyLevel, fragment.LevelObject)
		a.PutStr(fragment.KeyKind, kind)
		a.PutStr(fragment.KeyUID, string(uid))
		a.PutStr(fragment.KeyName, name)
		a.PutStr(fragment.KeyNamespace, "default")
		a.PutStr(fragment.KeyTrigger, "gen:1")
		a.PutInt(fragment.KeyTriggerTime, now.Add(-time.Second).UnixNano())
		a.PutBool(fragment.KeyConverged, true)
		if owner != "" {
			a.PutStr(fragment.KeyOwnerKind, "ReplicaSet")
			a.PutStr(fragment.KeyOwnerUID, owner)
		}
		_, err := forger.Export(ctx, ptraceotlp.NewExportRequestFromTraces(td))
		require.NoError(t, err, "the gateway's OTLP receiver takes anyone's spans")
	}
	time.Sleep(290 * time.Millisecond)
	rolloutTrace := fragment.TraceID(string(d.UID), "gen:1")
	send(d.UID, "Deployment", d.Name, "", rolloutTrace)
	var pod types.UID
	e.WaitFor(t, "a pod of the Deployment exists", 30*time.Second, func() (bool, string) {
		pods, err := e.Cluster.Client.CoreV1().Pods("default").List(ctx, metav1.ListOptions{LabelSelector: "app=forged"})
		if err != nil || len(pods.Items) == 0 {
			return false, fmt.Sprint("no pod yet: ", err)
		}
		pod = pods.Items[0].UID
		send(pod, "Pod", pods.Items[0].Name, "00000000-0000-0000-0000-00000000f00d", rolloutTrace)
		return true, ""
	})

	tr, _ := e.WaitTrace(t, traceTimeout, byRoot(fragment.PhaseDeploymentRollout, "Deployment default/forged", "gen:1"),
		whole(fragment.PhaseDeploymentRollout, expectPodServices, complete(replicas)))
	check(t, tr, fragment.PhaseDeploymentRollout, expectPodServices)
	assert.NotEqual(t, "forger", tr.Root.Service, "the root is the genuine one")
	assert.Zero(t, tr.Duplicates, "no forged span beside a genuine one")
	var podSpan *waterfall.Node
	for _, s := range tr.Spans {
		assert.NotEqual(t, "forger", s.Service, "no forged span in the operation's trace: %s", s.Name)
		if s.SpanID == fragment.ObjectSpanID(string(pod), "Pod", "gen:1") {
			podSpan = s
		}
	}
	require.NotNil(t, podSpan, "the genuine pod.startup of the forged pod is in the trace")
	require.NotNil(t, podSpan.Parent)
	assert.Equal(t, fragment.PhaseReplicaSetScale, podSpan.Parent.Name, "under its real owner")
	assert.True(t, tr.Root.End.After(podSpan.End) || tr.Root.End.Equal(podSpan.End), "the root ended at convergence, not at the forgery")

	assert.GreaterOrEqual(t, scrape(t, e.Gateway.MetricsEndpoint).Sum("otelcol_k8sstitch_fragments_unverified"), 2.0, "the gateway counted both forgeries")

	// What a backend shows of the forgeries: each in a trace apart from the
	// operation's, marked unverified.
	e.WaitFor(t, "both forgeries reach the backend, marked, outside the operation's trace", 30*time.Second, func() (bool, string) {
		td, err := waterfall.ReadTraces(e.Gateway.TracesFile)
		if err != nil {
			return false, err.Error()
		}
		marked := 0
		for _, other := range waterfall.Build(td) {
			for _, s := range other.Spans {
				if s.Service != "forger" {
					continue
				}
				if v, ok := s.Attributes.Get(fragment.KeyUnverified); !ok || !v.Bool() || other.Root.TraceID == tr.Root.TraceID {
					return false, fmt.Sprintf("forged %s in trace %s, unverified mark %v", s.Name, other.Root.TraceID, v.AsRaw())
				}
				marked++
			}
		}
		return marked == 2, fmt.Sprintf("%d of 2 forgeries seen", marked)
	})
}
