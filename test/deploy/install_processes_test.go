package deploy

import (
	"fmt"
	"net"
	"net/url"
	"os"
	"sort"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"

	"github.com/kubestitch/kubestitch/internal/fragment"
	"github.com/kubestitch/kubestitch/internal/waterfall"
	"github.com/kubestitch/kubestitch/localcluster"
	"github.com/kubestitch/kubestitch/test/otlpsink"
	"github.com/kubestitch/kubestitch/test/podrunner"
	"github.com/kubestitch/kubestitch/test/promtext"
	"github.com/kubestitch/kubestitch/test/shippedimage"
	"github.com/kubestitch/kubestitch/test/tracecheck"
)

// backends is the test's OTLP backend, one sink per gateway pod, so that
// the test sees which gateway sent what.
type backends struct {
	t     *testing.T
	mu    sync.Mutex
	sinks map[string]*otlpsink.Sink
}

func (b *backends) endpoint(pod string) string {
	b.mu.Lock()
	defer b.mu.Unlock()
	s := b.sinks[pod]
	if s == nil {
		s = otlpsink.Start(b.t)
		b.sinks[pod] = s
	}
	return s.Endpoint
}

// find is the trace of object's operation at each gateway that has one.
func (b *backends) find(phase, object, trigger string) map[string]*waterfall.Trace {
	b.mu.Lock()
	defer b.mu.Unlock()
	out := map[string]*waterfall.Trace{}
	for pod, s := range b.sinks {
		if tr := tracecheck.Find(waterfall.Build(s.Traces()), phase, object, trigger); tr != nil {
			out[pod] = tr
		}
	}
	return out
}

// startInstall brings up the local control plane (opts, tracing to
// kwok-node-0's agent) and the sharded overlay installed for real, every
// pod of it run as a process (test/podrunner), and waits until all of them
// are ready, a gateway holds the k8swatch Lease and every load-balancing
// exporter has the 3 gateways.
func startInstall(t *testing.T, opts localcluster.Options) (*localcluster.Cluster, *podrunner.Runner, *backends) {
	ctx := t.Context()
	// Every pod runs the image users pull: built as make image builds it,
	// pushed to a registry, pulled back by digest, its entrypoint run as
	// the pod's user with the install's args.
	image := shippedimage.ForPods(t)
	be := &backends{t: t, sinks: map[string]*otlpsink.Sink{}}
	runner := podrunner.New(podrunner.Options{
		Image:      image,
		Namespaces: []string{"kubestitch", "kubestitch-node"}, Selector: "app.kubernetes.io/name=kubestitch",
		Backends: map[string]func(string) string{"observability/tempo": be.endpoint},
		Dir:      t.TempDir(), Log: localcluster.TestLog(t),
		// The nodes' agents first, as a DaemonSet's pods often are: they
		// must not lose what they watch before any gateway is resolvable.
		StartAfter: func(p *corev1.Pod) time.Duration {
			if p.Namespace == "kubestitch" {
				return 10 * time.Second
			}
			return 0
		},
	})
	// kwok-node-0 plays the control-plane node: kube-apiserver exports to
	// its agent's 127.0.0.1:4317, as deploy/control-plane/ configures it.
	tracing, err := runner.NodeEndpoint("kwok-node-0", 4317)
	require.NoError(t, err)
	opts.TracingEndpoint, opts.Log = tracing, localcluster.TestLog(t)
	cluster := localcluster.Start(t, opts)
	t.Cleanup(runner.Stop)
	t.Cleanup(func() {
		if t.Failed() {
			for _, p := range runner.Pods() {
				t.Logf("%s/%s log:\n%s", p.Namespace, p.Name, localcluster.LogTail(p.Log, 60))
				t.Logf("%s/%s counters:\n%s", p.Namespace, p.Name, podCounters(runner, p))
			}
		}
	})

	// The backend the gateway's env names (tempo.observability.svc:4317).
	for _, ns := range []string{"observability"} {
		_, err := cluster.Client.CoreV1().Namespaces().Create(ctx, &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: ns}}, metav1.CreateOptions{})
		require.NoError(t, err)
	}
	_, err = cluster.Client.CoreV1().Services("observability").Create(ctx, &corev1.Service{
		ObjectMeta: metav1.ObjectMeta{Name: "tempo"},
		Spec:       corev1.ServiceSpec{Ports: []corev1.ServicePort{{Name: "otlp-grpc", Port: 4317}}},
	}, metav1.CreateOptions{})
	require.NoError(t, err)
	apply(t, cluster.RESTConfig, append(withPlaintextBackend(t, build(t, "sharded")), installSecrets(t)...))
	server, err := url.Parse(cluster.Server)
	require.NoError(t, err)
	runner.Start(cluster.Client, server.Host)

	// Every pod of the install runs and is ready.
	want := map[string]int{"kubestitch-node": len(cluster.Nodes), "kubestitch": 3}
	waitRunning(t, runner, 3*time.Minute, "an agent on each node and 3 gateways run and report ready", func() bool {
		got := map[string]int{}
		for _, p := range runner.Pods() {
			if b, _ := os.ReadFile(p.Log); strings.Contains(string(b), "Everything is ready") {
				got[p.Namespace]++
			}
		}
		return got["kubestitch-node"] == want["kubestitch-node"] && got["kubestitch"] == want["kubestitch"]
	})
	require.Eventually(t, func() bool {
		l, err := cluster.Client.CoordinationV1().Leases("kubestitch").Get(ctx, "kubestitch-k8swatch", metav1.GetOptions{})
		return err == nil && l.Spec.HolderIdentity != nil
	}, time.Minute, 200*time.Millisecond, "a gateway takes the k8swatch Lease, with its own ServiceAccount's permissions")

	// The load-balancing exporters re-resolve the headless Service every
	// 5 s: until each has all 3 gateways, the Lease holder and the agents
	// may route a namespace differently (the window deploy/README.md
	// describes). The first rollouts wait for one ring everywhere.
	waitRunning(t, runner, time.Minute, "every load-balancing exporter has the 3 gateways in its ring", func() bool {
		for _, p := range runner.Pods() {
			if n, ok := gauge(runner, p, "otelcol_loadbalancer_num_backends"); !ok || n != 3 {
				return false
			}
		}
		return true
	})
	return cluster, runner, be
}

// waitRunning waits until cond holds, failing at once when a pod of the
// install cannot run or exits on its own.
func waitRunning(t *testing.T, runner *podrunner.Runner, timeout time.Duration, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for !cond() {
		require.NoError(t, runner.Err(), what)
		if time.Now().After(deadline) {
			t.Fatalf("%s: not after %v", what, timeout)
		}
		time.Sleep(200 * time.Millisecond)
	}
}

// wholeAtOneGateway waits until the rollout (trigger) of ns/web is one
// whole trace, with its apiserver requests and replicas pod.ready spans,
// at exactly one gateway other than not, and returns that gateway.
func wholeAtOneGateway(t *testing.T, be *backends, ns, trigger string, replicas int, not string) string {
	t.Helper()
	object := fmt.Sprintf("Deployment %s/web", ns)
	expect := tracecheck.Expect{Root: fragment.PhaseDeploymentRollout, Services: []string{"apiserver", "kube-scheduler", "kube-controller-manager"}, ClockTolerance: time.Second}
	var at []string
	whole := ""
	ok := assert.Eventually(t, func() bool {
		at, whole = at[:0], ""
		for pod, tr := range be.find(fragment.PhaseDeploymentRollout, object, trigger) {
			at = append(at, pod)
			if pod != not && tracecheck.Count(tr, fragment.PhasePodReady) == replicas && tracecheck.CountService(tr, "apiserver") > 0 && len(tracecheck.Check(tr, expect)) == 0 {
				whole = pod
			}
		}
		return whole != "" && len(at) == 1
	}, 2*time.Minute, time.Second, "%s %s: one whole trace, with its apiserver requests, at one gateway (found at %v)", object, trigger, at)
	if !ok {
		for pod, tr := range be.find(fragment.PhaseDeploymentRollout, object, trigger) {
			t.Logf("%s %s at %s: %d pod.ready; %v", object, trigger, pod, tracecheck.Count(tr, fragment.PhasePodReady), tracecheck.Check(tr, expect))
		}
		be.mu.Lock()
		for gw, s := range be.sinks {
			for _, tr := range waterfall.Build(s.Traces()) {
				n := 0
				for _, sp := range tr.Spans {
					if strings.HasPrefix(sp.Object, "Pod "+ns+"/") {
						n++
					}
				}
				if n > 0 && tr.Root != nil {
					t.Logf("at %s: trace %s %s (%d spans of %s pods)", gw, tr.Root.Name, tr.Root.Object, n, ns)
				}
			}
		}
		be.mu.Unlock()
		t.FailNow()
	}
	return whole
}

func setImage(t *testing.T, cluster *localcluster.Cluster, ns, image string) {
	t.Helper()
	patch := fmt.Sprintf(`{"spec":{"template":{"spec":{"containers":[{"name":"app","image":%q}]}}}}`, image)
	_, err := cluster.Client.AppsV1().Deployments(ns).Patch(t.Context(), "web", types.StrategicMergePatchType, []byte(patch), metav1.PatchOptions{})
	require.NoError(t, err)
}

func waitConverged(t *testing.T, cluster *localcluster.Cluster, ns string) {
	t.Helper()
	require.Eventually(t, func() bool {
		d, err := cluster.Client.AppsV1().Deployments(ns).Get(t.Context(), "web", metav1.GetOptions{})
		if apierrors.IsNotFound(err) {
			return false
		}
		require.NoError(t, err)
		return d.Status.ObservedGeneration == d.Generation && d.Status.UpdatedReplicas == *d.Spec.Replicas &&
			d.Status.AvailableReplicas == *d.Spec.Replicas && d.Status.Replicas == *d.Spec.Replicas
	}, 2*time.Minute, 200*time.Millisecond, "%s/web converges", ns)
}

// logMemory logs each running process's resident set, now and at its peak.
func logMemory(t *testing.T, runner *podrunner.Runner, when string) {
	pods := runner.Pods()
	sort.Slice(pods, func(i, j int) bool { return pods[i].Namespace+pods[i].Name < pods[j].Namespace+pods[j].Name })
	var lines []string
	for _, p := range pods {
		rss, peak := p.Memory()
		lines = append(lines, fmt.Sprintf("%s/%s (%s): RSS %.1f MiB, peak %.1f MiB", p.Namespace, p.Name, p.Node, float64(rss)/(1<<20), float64(peak)/(1<<20)))
	}
	t.Logf("memory %s:\n  %s", when, strings.Join(lines, "\n  "))
}

// podCounters are a collector pod's own span counters, read inside its
// network.
func podCounters(runner *podrunner.Runner, p *podrunner.Pod) string {
	samples, err := podMetrics(runner, p)
	if err != nil {
		return err.Error()
	}
	var out []string
	for _, s := range samples {
		for _, m := range []string{"otelcol_exporter_sent_spans", "otelcol_exporter_send_failed_spans", "otelcol_receiver_accepted_spans", "otelcol_receiver_refused_spans",
			"otelcol_loadbalancer_num_backends", "otelcol_loadbalancer_backend_outcome", "otelcol_k8sstitch_fragments", "otelcol_k8sstitch_spans_joined", "otelcol_k8sstitch_spans_passed"} {
			if strings.HasPrefix(s.Name, m) {
				out = append(out, "  "+s.String())
			}
		}
	}
	return strings.Join(out, "\n")
}

// gauge reads one gauge of a collector pod's own telemetry.
func gauge(runner *podrunner.Runner, p *podrunner.Pod, name string) (float64, bool) {
	vs := metricValues(runner, p, name)
	if len(vs) == 0 {
		return 0, false
	}
	return vs[0], true
}

// metricValues are the values of a metric's samples (one per label set)
// in a collector pod's own telemetry; a counter's _total name included.
func metricValues(runner *podrunner.Runner, p *podrunner.Pod, name string) []float64 {
	samples, err := podMetrics(runner, p)
	if err != nil {
		return nil
	}
	return samples.Values(name)
}

// podMetrics are the samples of a collector pod's own telemetry
// (Prometheus text), read inside its network where the shipped config
// serves it: a gateway on its pod IP, port 8888, an agent on its node's IP
// (a host-network pod's IP), port 18888.
func podMetrics(runner *podrunner.Runner, p *podrunner.Pod) (promtext.Samples, error) {
	body, err := runner.Get(p, "http://"+net.JoinHostPort(p.IP, strconv.Itoa(metricsPort(p)))+"/metrics")
	if err != nil {
		return nil, err
	}
	return promtext.Parse(body)
}

// The container ports named `metrics` of deploy/base/workloads.yaml, where
// the configs' telemetry readers listen (TestTelemetryServedOnMetricsPort
// holds them to it).
const (
	gatewayMetricsPort = 8888
	agentMetricsPort   = 18888
)

// metricsPort is where a pod of the install serves its own telemetry: the
// agents are the host-network pods of kubestitch-node.
func metricsPort(p *podrunner.Pod) int {
	if p.Namespace == "kubestitch-node" {
		return agentMetricsPort
	}
	return gatewayMetricsPort
}
