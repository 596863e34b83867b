package e2e

import (
	"os"
	"strconv"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/kubestitch/kubestitch/internal/waterfall"
	"github.com/kubestitch/kubestitch/localcluster"
	"github.com/kubestitch/kubestitch/test/harness"
	"github.com/kubestitch/kubestitch/test/promtext"
	"github.com/kubestitch/kubestitch/test/tracecheck"
)

// Server spans of the two writes a pod's startup needs, as kube-apiserver
// names them.
const (
	spanPodCreate  = "POST /api/v1/namespaces/{:namespace}/pods"
	spanPodBinding = "POST /api/v1/namespaces/{:namespace}/pods/{:name}/binding"
)

// servedWrites sums kube-apiserver's own apiserver_request_total for
// successful POSTs of pods (subresource "": creates; "binding": bindings).
func servedWrites(t *testing.T, e *harness.Env, subresource string) int {
	t.Helper()
	body, err := e.Cluster.Client.CoreV1().RESTClient().Get().AbsPath("/metrics").DoRaw(t.Context())
	require.NoError(t, err)
	samples, err := promtext.Parse(string(body))
	require.NoError(t, err)
	return int(samples.Sum("apiserver_request_total", "verb", "POST", "resource", "pods", "subresource", subresource, "code", "201"))
}

// inTraces counts the server spans of that name the gateway exported, in
// any trace.
func inTraces(all []*waterfall.Trace, name string) int {
	n := 0
	for _, tr := range all {
		n += tracecheck.Count(tr, name)
	}
	return n
}

// TestNoSpanLostAtTheSource: in a 500-replica burst, every pod create and
// binding kube-apiserver served (its own apiserver_request_total) is a span
// in the gateway's output, with the batch span processor settings deploy/
// ships (deploy/control-plane/otel-bsp.env). KUBESTITCH_SPAN_EXPORT=sdk
// runs the same burst with the SDK's defaults, to measure the difference.
func TestNoSpanLostAtTheSource(t *testing.T) {
	opts := harness.EnvOptions{Nodes: 3} // 250 pods fit a kwok node
	if os.Getenv("KUBESTITCH_SPAN_EXPORT") == "sdk" {
		opts.SpanExportEnv = []string{}
	}
	e := harness.StartEnv(t, opts)
	const replicas = 500
	created := time.Now()
	_, err := e.Cluster.Client.AppsV1().Deployments("default").Create(t.Context(), localcluster.DemoDeployment("burst", replicas), metav1.CreateOptions{})
	require.NoError(t, err)
	e.WaitFor(t, "the control plane runs the 500 pods", 4*time.Minute, func() (bool, string) {
		d, err := e.Cluster.Client.AppsV1().Deployments("default").Get(t.Context(), "burst", metav1.GetOptions{})
		if err != nil {
			return false, err.Error()
		}
		return d.Status.AvailableReplicas == replicas, "available " + strconv.Itoa(int(d.Status.AvailableReplicas))
	})
	converged := time.Since(created)
	creates, bindings := servedWrites(t, e, ""), servedWrites(t, e, "binding")
	require.GreaterOrEqual(t, creates, replicas)
	var gotCreates, gotBindings int
	e.WaitFor(t, "every served create and binding is in the output", 60*time.Second, func() (bool, string) {
		td, err := waterfall.ReadTraces(e.Gateway.TracesFile)
		if err != nil {
			return false, err.Error()
		}
		all := waterfall.Build(td)
		gotCreates, gotBindings = inTraces(all, spanPodCreate), inTraces(all, spanPodBinding)
		return gotCreates >= creates && gotBindings >= bindings,
			"creates " + strconv.Itoa(gotCreates) + "/" + strconv.Itoa(creates) + ", bindings " + strconv.Itoa(gotBindings) + "/" + strconv.Itoa(bindings)
	})
	t.Logf("500-replica burst (%s span export): converged in %s; pod creates served %d, in traces %d; bindings served %d, in traces %d",
		map[bool]string{true: "SDK default", false: "shipped"}[opts.SpanExportEnv != nil], converged.Round(time.Millisecond), creates, gotCreates, bindings, gotBindings)
	assert.Equal(t, creates, gotCreates, "pod creates: served vs in traces")
	assert.Equal(t, bindings, gotBindings, "bindings: served vs in traces")
}
