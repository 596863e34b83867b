package harness

import (
	"context"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/kubestitch/kubestitch/internal/waterfall"
	"github.com/kubestitch/kubestitch/test/localcluster"
)

var (
	buildOnce sync.Once
	buildErr  error
	builtBin  string
)

// CollectorBinary builds bin/otelcol-kubestitch (incrementally; seconds
// when warm) once per test process, so e2e tests never run a stale binary.
func CollectorBinary(t testing.TB) string {
	t.Helper()
	buildOnce.Do(func() {
		root, err := localcluster.RepoRoot()
		if err != nil {
			buildErr = err
			return
		}
		builtBin = filepath.Join(root, "bin", "otelcol-kubestitch")
		cmd := exec.Command("go", "build", "-trimpath", "-ldflags=-s -w", "-o", builtBin, "./distribution")
		cmd.Dir = root
		cmd.Env = append(os.Environ(), "CGO_ENABLED=0")
		out, err := cmd.CombinedOutput()
		if err != nil {
			buildErr = err
			t.Logf("%s", out)
		}
	})
	if buildErr != nil {
		t.Fatalf("building the collector: %v", buildErr)
	}
	return builtBin
}

// Env is a local control plane with a Kubestitch gateway, and optionally a
// node agent, as separate processes.
type Env struct {
	Cluster *localcluster.Cluster
	Gateway *Collector
	Agent   *Collector
	Dir     string
}

// EnvOptions of an Env.
type EnvOptions struct {
	// Agent runs a node agent for the kwok node, and the gateway then
	// watches everything but pods.
	Agent bool
	// PodStages as in localcluster.Options.
	PodStages string
	// GatewayOverrides are merged over the gateway config.
	GatewayOverrides []string
	// GatewayEnv adds environment variables to the gateway process.
	GatewayEnv []string
	// Kubelet adds a real kubelet node; the agent then serves that node
	// (its pods, and the kubelet's and runtime's spans), as the DaemonSet
	// pod on that node would. Implies Agent.
	Kubelet bool
}

// StartEnv prepares the cluster, starts the collectors on its kubeconfig
// (so the apiserver's first spans reach them), then starts the cluster.
func StartEnv(t testing.TB, o EnvOptions) *Env {
	t.Helper()
	if testing.Short() {
		t.Skip("needs the local control plane; `make test` runs it")
	}
	root, err := localcluster.RepoRoot()
	if err != nil {
		t.Fatal(err)
	}
	bin := CollectorBinary(t)
	dir := t.TempDir()
	e := &Env{Dir: dir}
	overrides := o.GatewayOverrides
	if o.Agent {
		overrides = append([]string{"yaml:receivers::k8swatch::kinds: [ReplicaSet, Deployment, StatefulSet, DaemonSet, Job, CronJob, Node]"}, overrides...)
	}
	e.Gateway, err = NewCollector(CollectorOptions{Name: "gateway", Bin: bin, Config: filepath.Join(root, "test", "harness", "testdata", "gateway.yaml"), Dir: dir, Overrides: overrides, Env: o.GatewayEnv})
	if err != nil {
		t.Fatal(err)
	}
	if o.Kubelet {
		o.Agent = true
	}
	if o.Agent {
		e.Agent, err = NewCollector(CollectorOptions{Name: "agent", Bin: bin, Config: filepath.Join(root, "test", "harness", "testdata", "agent.yaml"), Dir: dir})
		if err != nil {
			t.Fatal(err)
		}
	}
	ctx, cancel := context.WithTimeout(context.Background(), 45*time.Minute)
	defer cancel()
	opts := localcluster.Options{TracingEndpoint: e.Gateway.OTLPEndpoint, PodStages: o.PodStages, Log: tlog{t}}
	node := "kwok-node-0"
	if o.Kubelet {
		node = "kubelet-node-0"
		opts.Kubelet = &localcluster.KubeletOptions{NodeName: node, TracingEndpoint: e.Agent.OTLPEndpoint}
	}
	e.Cluster, err = localcluster.Prepare(ctx, opts)
	if err != nil {
		t.Fatalf("local control plane: %v", err)
	}
	t.Cleanup(e.Cluster.Down)
	e.Gateway.SetEnv("KUBECONFIG=" + e.Cluster.Kubeconfig)
	if err := e.Gateway.Start(ctx); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { dumpOnFailure(t, e.Gateway); _ = e.Gateway.Stop() })
	if o.Agent {
		e.Agent.SetEnv("KUBECONFIG="+e.Cluster.Kubeconfig, "K8S_NODE_NAME="+node, "KUBESTITCH_GATEWAY_ENDPOINT="+e.Gateway.OTLPEndpoint)
		if err := e.Agent.Start(ctx); err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { dumpOnFailure(t, e.Agent); _ = e.Agent.Stop() })
	}
	if err := e.Cluster.Start(ctx); err != nil {
		t.Fatalf("local control plane: %v", err)
	}
	// Cleanups run last-registered first: the control plane (and the
	// kubelet exporting to the agent) stops before the collectors do.
	t.Cleanup(e.Cluster.Down)
	return e
}

func dumpOnFailure(t testing.TB, c *Collector) {
	if t.Failed() {
		t.Logf("--- %s log tail ---\n%s", c.Name, localcluster.LogTail(c.Log, 40))
	}
}

type tlog struct{ t testing.TB }

func (w tlog) Write(b []byte) (int, error) {
	w.t.Logf("%s", b)
	return len(b), nil
}

// WaitTrace polls the gateway's output until find returns a trace that
// ready accepts, and returns it with every trace read; it fails the test
// with what it last saw after timeout.
func (e *Env) WaitTrace(t testing.TB, timeout time.Duration, find func([]*waterfall.Trace) *waterfall.Trace, ready func(*waterfall.Trace) bool) (*waterfall.Trace, []*waterfall.Trace) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	var last *waterfall.Trace
	for {
		td, err := ReadTraces(e.Gateway.TracesFile)
		if err != nil {
			t.Fatal(err)
		}
		all := waterfall.Build(td)
		if tr := find(all); tr != nil {
			last = tr
			if ready(tr) {
				return tr, all
			}
		}
		if time.Now().After(deadline) {
			if last != nil {
				var b strings.Builder
				waterfall.Render(&b, last, waterfall.Options{Collapse: waterfall.CollapseAPIRequests})
				t.Fatalf("trace not complete after %s; last seen:\n%s", timeout, b.String())
			}
			t.Fatalf("no such trace after %s", timeout)
		}
		time.Sleep(500 * time.Millisecond)
	}
}
