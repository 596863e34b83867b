// Command kubestitch-demo is `make demo`: it starts the local control plane
// with kube-apiserver tracing pointed at a Kubestitch gateway, applies a
// 3-replica Deployment, waits for the rollout, writes what the collector
// exported to OUT/traces.json (traces) and OUT/metrics.json (the span
// metrics: pod-startup SLIs), prints a summary, the waterfall and the SLI
// table, and stops everything it started. With -stuck (`make demo-stuck`)
// it also applies a Deployment whose image cannot be pulled, and prints
// its trace: the blocked step and, at the progress deadline, the root
// naming the cause.
package main

import (
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"io"
	"os"
	"os/signal"
	"path/filepath"
	"slices"
	"strings"
	"syscall"
	"time"

	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/utils/ptr"

	"github.com/kubestitch/kubestitch/internal/fragment"
	"github.com/kubestitch/kubestitch/internal/slitable"
	"github.com/kubestitch/kubestitch/internal/waterfall"
	"github.com/kubestitch/kubestitch/localcluster"
)

func main() {
	bin := flag.String("collector", "bin/otelcol-kubestitch", "the built distribution binary")
	out := flag.String("out", ".demo", "output directory")
	stages := flag.String("pod-stages", "general", "kwok pod lifecycle: general (staged, visible bars) or fast")
	replicas := flag.Int("replicas", 3, "replicas of the demo Deployment")
	config := flag.String("config", "test/harness/testdata/gateway.yaml", "the collector configuration")
	keep := flag.Bool("keep", false, "keep the collector's work directory (log, state) and print where it is")
	kubelet := flag.Bool("kubelet", true, "run the pods on a real kubelet node (kubelet and runtime spans in the trace) instead of kwok")
	rt := flag.String("runtime", "containerd", "the kubelet node's runtime: containerd (real containers; falls back to stand-in where the machine cannot run them) or stand-in (in-process CRI, nothing runs)")
	stuck := flag.Bool("stuck", false, "also apply a Deployment whose image pull fails (needs -kubelet) and show why it is stuck")
	flag.Parse()
	runtimeKind := localcluster.RuntimeContainerd
	switch *rt {
	case "containerd":
		if err := localcluster.ContainerdUsable(); err != nil {
			fmt.Printf("demo: this machine cannot run containers (%v); the kubelet runs on the in-process stand-in runtime\n", err)
			runtimeKind = localcluster.RuntimeStandIn
		}
	case "stand-in":
		runtimeKind = localcluster.RuntimeStandIn
	default:
		fmt.Fprintf(os.Stderr, "demo: -runtime %q: want containerd or stand-in\n", *rt)
		os.Exit(2)
	}
	if *stuck && !*kubelet {
		fmt.Fprintln(os.Stderr, "demo: -stuck needs -kubelet (the runtime fails the pull)")
		os.Exit(2)
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	if err := run(ctx, *bin, *config, *out, *stages, int32(*replicas), *keep, *kubelet, runtimeKind, *stuck); err != nil {
		fmt.Fprintln(os.Stderr, "demo:", err)
		os.Exit(1)
	}
}

// stuckImage is the image the demo's stand-in runtime refuses to pull; on
// containerd, the stuck image is a tag the loopback registry does not
// have, and the pull really fails.
const stuckImage = "registry.example/missing:1"

// stuckDeadline is the stuck Deployment's progressDeadlineSeconds.
const stuckDeadline = 20

func run(ctx context.Context, bin, config, out, stages string, replicas int32, keep, kubelet bool, rt localcluster.RuntimeKind, stuck bool) error {
	if err := os.MkdirAll(out, 0o755); err != nil {
		return err
	}
	work, err := os.MkdirTemp("", "kubestitch-demo-")
	if err != nil {
		return err
	}
	if keep {
		fmt.Println("demo: keeping", work)
	} else {
		defer os.RemoveAll(work)
	}
	// The gateway receives kube-apiserver's spans; it starts first, so it
	// has them from the first request on (its watches retry until the
	// apiserver answers).
	gw := localcluster.StackCollector{Name: "gateway", Config: config, APIServerSpans: true}
	opts := localcluster.Options{PodStages: stages, Log: os.Stdout}
	if kubelet {
		// The kubelet and its runtime export to the gateway too (no agent
		// in the demo). Their CRI spans leave before their syncPod root
		// ends: the wait covers the kubelet's 5 s export delay.
		opts.Kubelet = &localcluster.KubeletOptions{Runtime: rt}
		if stuck && rt == localcluster.RuntimeStandIn {
			opts.Kubelet.Faults.PullFails = []string{stuckImage}
		}
		gw.Env = append(gw.Env, "KUBESTITCH_WAIT=10s")
	}
	fmt.Println("demo: starting the local control plane (kube-apiserver traces to the gateway)")
	st, err := localcluster.UpStack(ctx, localcluster.StackOptions{Cluster: opts, Bin: bin, Dir: work, Collectors: []localcluster.StackCollector{gw}})
	if err != nil {
		return err
	}
	defer st.Down() //nolint:errcheck // taken down explicitly below; this is for early returns
	cluster, col := st.Cluster, st.Collector("gateway")
	fmt.Printf("demo: collector running (pid %d, OTLP at %s); applying Deployment web with %d replicas\n", col.PID(), col.OTLPEndpoint, replicas)
	begin := time.Now()
	d := localcluster.DemoDeployment("web", replicas)
	missing := stuckImage
	if kubelet {
		d.Spec.Template.Spec.NodeSelector = map[string]string{"kubernetes.io/hostname": cluster.KubeletNode}
		d.Spec.Template.Spec.Containers[0].ImagePullPolicy = corev1.PullAlways
		if cluster.DemoImage != "" {
			// Real containers: the test bed's workload, ready when its
			// own HTTP endpoint answers.
			fmt.Printf("demo: the pods run %s on containerd (pulled from the loopback registry)\n", cluster.DemoImage)
			localcluster.RunDemoImage(d, cluster.DemoImage)
			missing = cluster.Registry.Host + "/kubestitch/missing:1"
		}
	}
	if _, err := cluster.Client.AppsV1().Deployments("default").Create(ctx, d, metav1.CreateOptions{}); err != nil {
		return err
	}
	if stuck {
		s := localcluster.DemoDeployment("stuck", 1)
		s.Spec.ProgressDeadlineSeconds = ptr.To(int32(stuckDeadline))
		s.Spec.Template.Spec.NodeSelector = d.Spec.Template.Spec.NodeSelector
		s.Spec.Template.Spec.Containers[0].Image = missing
		fmt.Printf("demo: applying Deployment stuck, image %s (its pull fails), progressDeadlineSeconds %d\n", missing, stuckDeadline)
		if _, err := cluster.Client.AppsV1().Deployments("default").Create(ctx, s, metav1.CreateOptions{}); err != nil {
			return err
		}
	}
	if err := waitRollout(ctx, cluster, "web", replicas); err != nil {
		return err
	}
	if stuck {
		if err := waitDeadline(ctx, cluster, "stuck"); err != nil {
			return err
		}
		fmt.Println("demo: Deployment stuck passed its progress deadline")
	}
	fmt.Printf("demo: rollout complete in %s; waiting for the last spans (apiserver exports every 5s)\n", time.Since(begin).Round(10*time.Millisecond))
	select {
	case <-time.After(12 * time.Second):
	case <-ctx.Done():
		return ctx.Err()
	}
	if rss, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", col.PID())); err == nil {
		for _, l := range strings.Split(string(rss), "\n") {
			if strings.HasPrefix(l, "VmRSS:") || strings.HasPrefix(l, "VmHWM:") {
				fmt.Println("demo: collector", strings.Join(strings.Fields(l), " "))
			}
		}
	}
	// The pods as the API has them, to check the trace's phase times.
	pods, err := cluster.Client.CoreV1().Pods("default").List(ctx, metav1.ListOptions{LabelSelector: "app=web"})
	if err != nil {
		return err
	}
	if b, err := json.Marshal(pods); err == nil {
		_ = os.WriteFile(filepath.Join(out, "pods.json"), b, 0o644)
	}
	// The control plane first: the kubelet and its runtime flush their
	// last spans to a collector that is still there.
	if err := st.Down(); err != nil {
		return err
	}
	dst := filepath.Join(out, "traces.json")
	if err := copyFile(col.TracesFile, dst); err != nil {
		return fmt.Errorf("copy traces: %w", err)
	}
	td, err := waterfall.ReadTraces(dst)
	if err != nil {
		return err
	}
	traces := waterfall.Build(td)
	fmt.Printf("demo: %d spans in %d traces written to %s\n", td.SpanCount(), len(traces), dst)
	for _, tr := range traces {
		if tr.Root != nil && tr.Root.Name == "deployment.rollout" && tr.Root.Object == "Deployment default/web" {
			fmt.Printf("\nThe trace of the Deployment's rollout (%d spans, %d services):\n\n", len(tr.Spans), len(tr.Services()))
			waterfall.Render(os.Stdout, tr, waterfall.Options{Width: 40, Collapse: waterfall.CollapseAPIRequests})
		}
		if stuck && tr.Root != nil && tr.Root.Name == "deployment.rollout" && tr.Root.Object == "Deployment default/stuck" {
			fmt.Printf("\nThe trace of the stuck rollout (%d spans):\n\n", len(tr.Spans))
			waterfall.Render(os.Stdout, tr, waterfall.Options{Width: 40, Collapse: waterfall.CollapseAPIRequests})
		}
	}
	metrics := filepath.Join(out, "metrics.json")
	if err := copyFile(col.SpanMetricsFile, metrics); err != nil {
		return fmt.Errorf("copy metrics: %w", err)
	}
	shown := append(slices.Clone(fragment.SLITransitions), fragment.PhaseImagePull, fragment.PhasePodStartup, fragment.PhaseReplicaSetScale, fragment.PhaseDeploymentRollout)
	all, err := slitable.ReadFile(metrics, shown)
	if err != nil {
		return err
	}
	var rows []slitable.Row
	for _, r := range all {
		if slices.Contains(shown, r.Name) {
			rows = append(rows, r)
		}
	}
	fmt.Printf("\nPod startup and operation durations as the gateway exported them (span metrics in %s, every span\nname there; p50/p99 estimated within the histogram's buckets, as histogram_quantile does):\n\n", metrics)
	slitable.Format(os.Stdout, rows)
	return nil
}

// waitDeployment polls Deployment name until done says so, for up to 2
// minutes; what names what it waited for.
func waitDeployment(ctx context.Context, c *localcluster.Cluster, name, what string, done func(*appsv1.Deployment) bool) error {
	deadline := time.Now().Add(2 * time.Minute)
	for time.Now().Before(deadline) {
		d, err := c.Client.AppsV1().Deployments("default").Get(ctx, name, metav1.GetOptions{})
		if err == nil && done(d) {
			return nil
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(200 * time.Millisecond):
		}
	}
	return fmt.Errorf("deployment %s: not %s after 2 minutes", name, what)
}

func waitRollout(ctx context.Context, c *localcluster.Cluster, name string, replicas int32) error {
	return waitDeployment(ctx, c, name, "rolled out", func(d *appsv1.Deployment) bool {
		return d.Status.ObservedGeneration >= d.Generation && d.Status.AvailableReplicas == replicas && d.Status.UpdatedReplicas == replicas
	})
}

func waitDeadline(ctx context.Context, c *localcluster.Cluster, name string) error {
	return waitDeployment(ctx, c, name, "past its progress deadline", func(d *appsv1.Deployment) bool {
		return slices.ContainsFunc(d.Status.Conditions, func(c appsv1.DeploymentCondition) bool {
			return c.Type == appsv1.DeploymentProgressing && c.Reason == "ProgressDeadlineExceeded"
		})
	})
}

func copyFile(src, dst string) error {
	in, err := os.Open(src)
	if err != nil {
		return err
	}
	defer in.Close()
	o, err := os.Create(dst)
	if err != nil {
		return err
	}
	if _, err := io.Copy(o, in); err != nil {
		o.Close()
		return err
	}
	return o.Close()
}
