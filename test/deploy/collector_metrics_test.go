package deploy

import (
	"bytes"
	"fmt"
	"os"
	"sort"
	"strconv"
	"strings"
	"testing"

	"github.com/stretchr/testify/require"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/utils/ptr"

	"github.com/kubestitch/kubestitch/localcluster"
	"github.com/kubestitch/kubestitch/test/podrunner"
)

// The collectors' own telemetry read from inside their pods: CPU, heap,
// counters, and which gateway holds the Lease.

// cpuSeconds is each install process's CPU time so far, its children's
// included (utime, stime, cutime, cstime of /proc/PID/stat).
func cpuSeconds(runner *podrunner.Runner) map[string]float64 {
	out := map[string]float64{}
	for _, p := range runner.Pods() {
		b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", p.PID))
		if err != nil {
			continue
		}
		f := strings.Fields(string(b[bytes.LastIndexByte(b, ')')+2:]))
		var ticks float64
		for _, i := range []int{11, 12, 13, 14} { // fields 14-17, after pid and comm
			v, _ := strconv.ParseFloat(f[i], 64)
			ticks += v
		}
		out[p.Name] = ticks / 100 // USER_HZ
	}
	return out
}

// counter sums a counter of a collector pod's own telemetry over its labels.
func counter(runner *podrunner.Runner, p *podrunner.Pod, name string) float64 {
	var sum float64
	for _, v := range metricValues(runner, p, name) {
		sum += v
	}
	return sum
}

func leaseHolder(t *testing.T, cluster *localcluster.Cluster, runner *podrunner.Runner) *podrunner.Pod {
	l, err := cluster.Client.CoordinationV1().Leases("kubestitch").Get(t.Context(), "kubestitch-k8swatch", metav1.GetOptions{})
	require.NoError(t, err)
	for _, p := range runner.Pods() {
		if p.Name == ptr.Deref(l.Spec.HolderIdentity, "") {
			return p
		}
	}
	t.Fatalf("the Lease holder %q runs here", ptr.Deref(l.Spec.HolderIdentity, ""))
	return nil
}

// heaps is each process's Go heap in use (the collector's own
// otelcol_process_runtime_heap_alloc_bytes).
func heaps(runner *podrunner.Runner) map[string]float64 {
	out := map[string]float64{}
	for _, p := range runner.Pods() {
		if heap, ok := gauge(runner, p, "otelcol_process_runtime_heap_alloc_bytes"); ok {
			out[p.Name] = heap
		}
	}
	return out
}

// logHeap logs each process's heap now, and its growth since before the
// workload per 1,000 pods alive.
func logHeap(t *testing.T, runner *podrunner.Runner, before map[string]float64, alive int) {
	var lines []string
	for _, p := range runner.Pods() {
		heap, ok := gauge(runner, p, "otelcol_process_runtime_heap_alloc_bytes")
		if !ok {
			continue
		}
		grew := heap - before[p.Name]
		lines = append(lines, fmt.Sprintf("%s/%s: heap %.1f MiB, %+.1f MiB since before the workload, %+.2f MiB per 1,000 pods alive",
			p.Namespace, p.Name, heap/(1<<20), grew/(1<<20), grew/(1<<20)*1000/float64(max(alive, 1))))
	}
	sort.Strings(lines)
	t.Logf("heap with %d pods alive (a heap gauge is a moment: garbage not yet collected counts):\n  %s", alive, strings.Join(lines, "\n  "))
}
