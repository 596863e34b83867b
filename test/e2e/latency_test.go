package e2e

import (
	"slices"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/kubestitch/kubestitch/internal/fragment"
	"github.com/kubestitch/kubestitch/internal/waterfall"
	"github.com/kubestitch/kubestitch/localcluster"
	"github.com/kubestitch/kubestitch/test/harness"
	"github.com/kubestitch/kubestitch/test/stats"
	"github.com/kubestitch/kubestitch/test/tracecheck"
)

// TestReadyToExportLatency measures, for a 50-replica rollout, how long a
// pod's pod.ready span takes from the moment the pod was seen Ready (the
// span's end, watch arrival) to the gateway's output file (polled every
// 20 ms; the file exporter flushes every 200 ms). It reports; the only
// assertion is that every span arrives.
func TestReadyToExportLatency(t *testing.T) {
	e := harness.StartEnv(t, harness.EnvOptions{})
	_, err := e.Cluster.Client.AppsV1().Deployments("default").Create(t.Context(), localcluster.DemoDeployment("timed", 50), metav1.CreateOptions{})
	require.NoError(t, err)
	seen := map[string]time.Duration{}
	deadline := time.Now().Add(2 * time.Minute)
	var tr *waterfall.Trace
	for len(seen) < 50 && time.Now().Before(deadline) {
		td, err := waterfall.ReadTraces(e.Gateway.TracesFile)
		require.NoError(t, err)
		now := time.Now()
		tr = tracecheck.Find(waterfall.Build(td), fragment.PhaseDeploymentRollout, "Deployment default/timed", "")
		if tr != nil {
			for _, s := range tr.Spans {
				if s.Name == fragment.PhasePodReady {
					if _, ok := seen[s.Object]; !ok {
						seen[s.Object] = now.Sub(s.End)
					}
				}
			}
		}
		time.Sleep(20 * time.Millisecond)
	}
	if len(seen) < 50 {
		e.Diagnose(t, deadline.Add(-2*time.Minute))
	}
	require.Len(t, seen, 50, "every pod.ready reached the output inside the rollout's trace")
	var ds []time.Duration
	for _, d := range seen {
		ds = append(ds, d)
	}
	slices.Sort(ds)
	t.Logf("pod Ready -> pod.ready span in the gateway's output, 50 pods: p50 %s, p99 %s, max %s; trace %d spans",
		stats.Percentile(ds, 0.5).Round(time.Millisecond), stats.Percentile(ds, 0.99).Round(time.Millisecond), ds[len(ds)-1].Round(time.Millisecond), len(tr.Spans))
}
