package harness

import (
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	admissionregv1 "k8s.io/api/admissionregistration/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"sigs.k8s.io/yaml"

	"github.com/kubestitch/kubestitch/internal/waterfall"
	"github.com/kubestitch/kubestitch/localcluster"
	"github.com/kubestitch/kubestitch/localcluster/criruntime"
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
		cmd := exec.Command("go", "build", "-trimpath", "-ldflags=-s -w -buildid=", "-o", builtBin, "./distribution")
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
	Gateway *localcluster.Collector
	Agent   *localcluster.Collector
	Dir     string
	// WebhookURL and WebhookCA are where the gateway's k8sadmission
	// receiver serves, with EnvOptions.Admission.
	WebhookURL string
	WebhookCA  []byte
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
	// Admission runs the gateway with deploy/'s admission config (the
	// k8sadmission receiver) on a loopback port with a certificate from
	// the cluster's CA; RegisterWebhook then points kube-apiserver at it.
	Admission bool
	// SpanExportEnv as in localcluster.Options (nil: as deploy/ ships it).
	SpanExportEnv []string
	// Nodes is the number of kwok nodes (default 1).
	Nodes int
	// Kubelet adds a real kubelet node; the agent then serves that node
	// (its pods, and the kubelet's and runtime's spans), as the DaemonSet
	// pod on that node would. Implies Agent.
	Kubelet bool
	// KubeletRuntime is the real kubelet's runtime: the in-process stand-in
	// (default) or containerd.
	KubeletRuntime localcluster.RuntimeKind
	// KubeletDelays are the real kubelet's runtime's slow calls. Default:
	// criruntime.DefaultDelays.
	KubeletDelays *criruntime.Delays
	// KubeletFaults make the real kubelet's runtime fail chosen images.
	KubeletFaults criruntime.Faults
}

// StartEnv starts the control plane with the gateway (receiving
// kube-apiserver's spans) and the agent (the kubelet's) in localcluster's
// start-up sequence, through StartStack.
func StartEnv(t testing.TB, o EnvOptions) *Env {
	t.Helper()
	if testing.Short() {
		t.Skip("needs the local control plane; `make test` runs it")
	}
	root, err := localcluster.RepoRoot()
	if err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	e := &Env{Dir: dir}
	overrides := o.GatewayOverrides
	if o.Admission {
		overrides = append([]string{
			filepath.Join(root, "deploy", "components", "admission", "admission.yaml"),
			"yaml:receivers::k8s_admission::endpoint: ${env:KUBESTITCH_WEBHOOK_ENDPOINT}",
			"yaml:receivers::k8s_admission::tls::cert_file: ${env:KUBESTITCH_WEBHOOK_CERT}",
			"yaml:receivers::k8s_admission::tls::key_file: ${env:KUBESTITCH_WEBHOOK_KEY}",
			// kube-apiserver's client certificate for webhooks is of the
			// cluster's CA here (localcluster's admission configuration).
			"yaml:receivers::k8s_admission::tls::client_ca_file: ${env:KUBESTITCH_WEBHOOK_CLIENT_CA}",
		}, overrides...)
	}
	// With Agent, the gateway watches everything but pods (their agents
	// do), as in the install. A kubelet node gets an agent too (below),
	// but its gateway keeps watching pods and Events: with the split, a
	// stuck rollout's root would not name the pod's first cause
	// (TestStuckOnTheRealKubelet), a gap of the agent/gateway split that
	// is not closed yet.
	if o.Agent {
		overrides = append([]string{"yaml:receivers::k8s_watch::kinds: [ReplicaSet, Deployment, StatefulSet, DaemonSet, Job, CronJob, Node]"}, overrides...)
	}
	so := localcluster.StackOptions{
		Dir:     dir,
		Cluster: localcluster.Options{PodStages: o.PodStages, SpanExportEnv: o.SpanExportEnv, Nodes: o.Nodes},
		Collectors: []localcluster.StackCollector{{Name: "gateway", Config: filepath.Join(root, "test", "harness", "testdata", "gateway.yaml"),
			Overrides: overrides, Env: o.GatewayEnv, APIServerSpans: true}},
	}
	node := "kwok-node-0"
	if o.Kubelet {
		o.Agent = true
		node = "kubelet-node-0"
		so.Cluster.Kubelet = &localcluster.KubeletOptions{NodeName: node, Runtime: o.KubeletRuntime, Delays: o.KubeletDelays, Faults: o.KubeletFaults}
	}
	if o.Agent {
		so.Collectors = append(so.Collectors, localcluster.StackCollector{Name: "agent", Config: filepath.Join(root, "test", "harness", "testdata", "agent.yaml"),
			Env: []string{"K8S_NODE_NAME=" + node}, KubeletSpans: o.Kubelet})
	}
	StartStack(t, so, func(s *localcluster.Stack) {
		e.Cluster, e.Gateway, e.Agent = s.Cluster, s.Collector("gateway"), s.Collector("agent")
		if e.Agent != nil {
			e.Agent.SetEnv("KUBESTITCH_GATEWAY_ENDPOINT=" + e.Gateway.OTLPEndpoint)
		}
		if !o.Admission {
			return
		}
		cert, key, ca, err := e.Cluster.ServingCert("webhook")
		if err != nil {
			t.Fatal(err)
		}
		port, err := localcluster.FreePort()
		if err != nil {
			t.Fatal(err)
		}
		e.WebhookURL, e.WebhookCA = fmt.Sprintf("https://127.0.0.1:%d/validate", port), ca
		e.Gateway.SetEnv(fmt.Sprintf("KUBESTITCH_WEBHOOK_ENDPOINT=127.0.0.1:%d", port), "KUBESTITCH_WEBHOOK_CERT="+cert, "KUBESTITCH_WEBHOOK_KEY="+key,
			"KUBESTITCH_WEBHOOK_CLIENT_CA="+e.Cluster.WebhookClientCA())
	})
	return e
}

// RegisterWebhook creates deploy/'s ValidatingWebhookConfiguration with
// its clientConfig pointed at url (the gateway's receiver, or anything
// else), and waits until kube-apiserver calls it: a dry-run create is
// reviewed, as reviewed() reports.
func (e *Env) RegisterWebhook(t testing.TB, url string, ca []byte, reviewed func() bool) {
	t.Helper()
	root, err := localcluster.RepoRoot()
	if err != nil {
		t.Fatal(err)
	}
	b, err := os.ReadFile(filepath.Join(root, "deploy", "components", "admission", "webhook.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	hook := &admissionregv1.ValidatingWebhookConfiguration{}
	if err := yaml.Unmarshal(b, hook); err != nil {
		t.Fatal(err)
	}
	for i := range hook.Webhooks {
		hook.Webhooks[i].ClientConfig = admissionregv1.WebhookClientConfig{URL: &url, CABundle: ca}
	}
	ctx := t.Context()
	hooks := e.Cluster.Client.AdmissionregistrationV1().ValidatingWebhookConfigurations()
	if old, err := hooks.Get(ctx, hook.Name, metav1.GetOptions{}); err == nil {
		hook.ResourceVersion = old.ResourceVersion
		_, err = hooks.Update(ctx, hook, metav1.UpdateOptions{})
		if err != nil {
			t.Fatal(err)
		}
	} else if _, err = hooks.Create(ctx, hook, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	if reviewed == nil {
		return
	}
	// The apiserver picks the configuration up from its informer.
	probe := localcluster.DemoDeployment("webhook-probe", 1)
	deadline := time.Now().Add(30 * time.Second)
	for !reviewed() {
		if time.Now().After(deadline) {
			t.Fatal("kube-apiserver never called the webhook")
		}
		_, _ = e.Cluster.Client.AppsV1().Deployments("default").Create(ctx, probe, metav1.CreateOptions{DryRun: []string{metav1.DryRunAll}})
		time.Sleep(200 * time.Millisecond)
	}
}

// WaitTrace polls the gateway's output until find returns a trace that
// ready accepts, and returns it with every trace read. After timeout it
// fails the test with what it last saw and a diagnosis (see diagnose):
// the API's view, where the fragments went, and which component stalled.
func (e *Env) WaitTrace(t testing.TB, timeout time.Duration, find func([]*waterfall.Trace) *waterfall.Trace, ready func(*waterfall.Trace) bool) (*waterfall.Trace, []*waterfall.Trace) {
	t.Helper()
	start := time.Now()
	deadline := start.Add(timeout)
	var last *waterfall.Trace
	for {
		td, err := waterfall.ReadTraces(e.Gateway.TracesFile)
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
			e.diagnose(t, start, last, all)
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

// WaitFor polls cond until it holds. After timeout it fails the test with
// what cond last saw (its second result) and the diagnosis of WaitTrace.
func (e *Env) WaitFor(t testing.TB, what string, timeout time.Duration, cond func() (bool, string)) {
	t.Helper()
	start := time.Now()
	for {
		ok, saw := cond()
		if ok {
			return
		}
		if time.Since(start) > timeout {
			e.Diagnose(t, start)
			t.Fatalf("%s: not after %s; last saw: %s", what, timeout, saw)
		}
		time.Sleep(200 * time.Millisecond)
	}
}

// Diagnose logs the diagnosis of WaitTrace for a wait that began at since.
func (e *Env) Diagnose(t testing.TB, since time.Time) {
	t.Helper()
	td, err := waterfall.ReadTraces(e.Gateway.TracesFile)
	if err != nil {
		t.Logf("diagnosis: reading the gateway's output: %v", err)
		return
	}
	e.diagnose(t, since, nil, waterfall.Build(td))
}
