package localcluster

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/rest"

	"github.com/kubestitch/kubestitch/localcluster/criruntime"
)

// Options of a local control plane.
type Options struct {
	// TracingEndpoint is the OTLP gRPC host:port kube-apiserver exports its
	// spans to (sampling 1000000 per million); empty turns tracing off.
	TracingEndpoint string
	// Nodes is the number of kwok nodes. Default: 1; negative: none (a
	// cluster of real nodes only, Kubelet.Nodes).
	Nodes int
	// PodStages is "fast" (a pod is ready as soon as it is scheduled) or
	// "general" (kwok's staged lifecycle with delays, for visible bars).
	// Default: fast.
	PodStages string
	// CacheDir holds the built binaries. Default: DefaultCacheDir().
	CacheDir string
	// Dir is where PKI, data and logs go; default a new temp dir, removed
	// by Down.
	Dir string
	// Log receives progress lines. Default: os.Stderr.
	Log io.Writer
	// Kubelet adds a node run by a real kubelet; nil: kwok nodes only.
	Kubelet *KubeletOptions
	// SpanExportEnv is the environment of kube-apiserver and the kubelet
	// for the OpenTelemetry SDK's batch span processor. nil: the one
	// deploy/ ships (deploy/control-plane/otel-bsp.env); empty, not nil:
	// the SDK's defaults (5 s delay, 2,048 spans queued).
	SpanExportEnv []string
	// ClientQPS, when set, is kube-controller-manager's and
	// kube-scheduler's client QPS and burst (--kube-api-qps,
	// --kube-api-burst), raised as a big cluster raises them: the defaults
	// (20/30 and 50/100) pace a 2,000-pod rollout at the client, not at
	// the API server. 0: the defaults.
	ClientQPS int
}

// ShippedSpanExportEnv reads deploy/control-plane/otel-bsp.env: KEY=VALUE
// lines, as systemd's EnvironmentFile= reads them.
func ShippedSpanExportEnv() ([]string, error) {
	root, err := RepoRoot()
	if err != nil {
		return nil, err
	}
	b, err := os.ReadFile(filepath.Join(root, "deploy", "control-plane", "otel-bsp.env"))
	if err != nil {
		return nil, err
	}
	var env []string
	for _, l := range strings.Split(string(b), "\n") {
		l = strings.TrimSpace(l)
		if l == "" || strings.HasPrefix(l, "#") {
			continue
		}
		if !strings.Contains(l, "=") {
			return nil, fmt.Errorf("localcluster: otel-bsp.env: not KEY=VALUE: %q", l)
		}
		env = append(env, l)
	}
	return env, nil
}

// Cluster is a running local control plane.
type Cluster struct {
	// Kubeconfig is an admin (system:masters) kubeconfig.
	Kubeconfig string
	// Server is the apiserver URL.
	Server string
	// Dir holds PKI, data and logs.
	Dir string
	// Nodes are the names of the kwok nodes.
	Nodes []string
	// KubeletNode is the real kubelet's Node, if Options.Kubelet was set;
	// KubeletNodes every real node's, KubeletNode first.
	KubeletNode  string
	KubeletNodes []string
	// Registry serves the images of a containerd node on 127.0.0.1, and
	// PauseImage and DemoImage are in it (Kubelet.Runtime containerd).
	Registry              *ImageRegistry
	PauseImage, DemoImage string
	// Client is an admin clientset.
	Client *kubernetes.Clientset
	// RESTConfig is the admin rest.Config.
	RESTConfig *rest.Config

	opts    Options
	bins    Binaries
	pki     *pki
	ownDir  bool
	procs   components
	ports   map[string]int
	apiArgs []string
	runLock *os.File
	log     io.Writer
	mu      sync.Mutex // guards stopped
	stopped bool
	runtime *criruntime.Runtime
	// network joins the containerd nodes, and nodes are they.
	network *clusterNetwork
	nodes   []*containerdNode
	// firstNodeNet is the first real node's network, once it runs, and
	// controlPlaneAgent carries kube-apiserver's spans to its agent
	// (Kubelet.NodeAgentTracing).
	firstNodeNet      atomic.Pointer[netNS]
	controlPlaneAgent *forwarder
	sysctls           *sysctlGuard
}

// Up builds what is missing, starts everything and waits until a workload
// can be created. On error everything started is stopped again.
func Up(ctx context.Context, opts Options) (*Cluster, error) {
	c, err := Prepare(ctx, opts)
	if err != nil {
		return nil, err
	}
	if err := c.Start(ctx); err != nil {
		return nil, err
	}
	return c, nil
}

// Prepare builds what is missing and writes the PKI and the admin
// kubeconfig, with the apiserver's port chosen, but starts nothing: a
// collector can be started on the kubeconfig first, so it receives
// kube-apiserver's spans from the first request on.
func Prepare(ctx context.Context, opts Options) (c *Cluster, err error) {
	if opts.Nodes == 0 {
		opts.Nodes = 1
	}
	if opts.PodStages == "" {
		opts.PodStages = "fast"
	}
	if opts.CacheDir == "" {
		opts.CacheDir = DefaultCacheDir()
	}
	if opts.Log == nil {
		opts.Log = os.Stderr
	}
	if opts.SpanExportEnv == nil {
		if opts.SpanExportEnv, err = ShippedSpanExportEnv(); err != nil {
			return nil, err
		}
	}
	c = &Cluster{opts: opts, procs: components{procs: map[string]*Process{}}, ports: map[string]int{}, log: opts.Log, Dir: opts.Dir}
	if c.bins, err = Build(ctx, opts.CacheDir, BuildOptions{Kubelet: opts.Kubelet != nil, Containerd: opts.Kubelet != nil && opts.Kubelet.Runtime == RuntimeContainerd}, opts.Log); err != nil {
		return nil, err
	}
	// One control plane at a time on this machine: test packages run in
	// parallel, and two control planes on two cores starve each other's
	// timing. Down releases the lock.
	if c.runLock, err = lockFile(filepath.Join(opts.CacheDir, "run.lock")); err != nil {
		return nil, err
	}
	if c.Dir == "" {
		if c.Dir, err = os.MkdirTemp("", "kubestitch-localcluster-"); err != nil {
			return nil, err
		}
		c.ownDir = true
	} else if err = os.MkdirAll(c.Dir, 0o755); err != nil {
		return nil, err
	}
	defer func() {
		if err != nil {
			c.Down()
		}
	}()
	if c.pki, err = newPKI(c.Dir); err != nil {
		return nil, err
	}
	if err = c.issueCerts(); err != nil {
		return nil, err
	}
	port, err := FreePort()
	if err != nil {
		return nil, err
	}
	c.ports["kube-apiserver"] = port
	c.Server = fmt.Sprintf("https://127.0.0.1:%d", port)
	if opts.Kubelet != nil && opts.Kubelet.NodeAgentTracing {
		if err = c.traceToFirstNodeAgent(); err != nil {
			return nil, err
		}
	}
	if c.Kubeconfig, err = c.pki.kubeconfig("admin", c.Server); err != nil {
		return nil, err
	}
	return c, nil
}

// Start starts the prepared control plane and waits until a workload can be
// created. On error everything started is stopped again.
func (c *Cluster) Start(ctx context.Context) (err error) {
	defer func() {
		if err != nil {
			c.Down()
		}
	}()
	start := time.Now()
	if err = retryPorts(func() error { return c.startEtcd(ctx) }); err != nil {
		return err
	}
	if err = c.startAPIServer(ctx); err != nil {
		return err
	}
	if err = retryPorts(func() error { return c.startControllerManager(ctx) }); err != nil {
		return err
	}
	if err = retryPorts(func() error { return c.startScheduler(ctx) }); err != nil {
		return err
	}
	if err = c.startKwok(ctx); err != nil {
		return err
	}
	if err = c.createNodes(ctx); err != nil {
		return err
	}
	if c.opts.Kubelet != nil {
		if err = c.startKubelets(ctx); err != nil {
			return err
		}
	}
	if err = c.waitDefaultServiceAccount(ctx); err != nil {
		return err
	}
	fmt.Fprintf(c.log, "localcluster: up in %s at %s (dir %s)\n", time.Since(start).Round(100*time.Millisecond), c.Server, c.Dir)
	return nil
}

// RestartAPIServer stops kube-apiserver and starts it again on the same
// port: every watch breaks and clients relist. kwok is restarted after it:
// kwok drops a pod's stage on an error it does not retry (the restarted
// apiserver answers some requests before it is fully up) and, unlike a
// kubelet, never resyncs its pods, so a rollout would stall there; a
// restart makes it replay every pod's pending stage, as a kubelet's
// periodic sync would.
func (c *Cluster) RestartAPIServer(ctx context.Context) error {
	c.procs.stop("kube-apiserver", 30*time.Second)
	if err := c.runEnv("kube-apiserver", c.opts.SpanExportEnv, c.bins.APIServer, c.apiArgs...); err != nil {
		return err
	}
	if err := c.waitHTTP(ctx, "kube-apiserver", c.Server+"/readyz", c.adminTLS(), 90*time.Second); err != nil {
		return err
	}
	c.procs.stop("kwok", 20*time.Second)
	return c.startKwok(ctx)
}

// Down stops every component (apiserver before etcd: the other order makes
// the apiserver hang for half a minute) and removes the temp dir.
func (c *Cluster) Down() {
	c.mu.Lock()
	if c.stopped {
		c.mu.Unlock()
		return
	}
	c.stopped = true
	c.mu.Unlock()
	if c.controlPlaneAgent != nil {
		c.controlPlaneAgent.Close()
	}
	c.stopKubelet()
	if c.Registry != nil {
		c.Registry.Close()
	}
	for _, name := range []string{"kwok", "kube-scheduler", "kube-controller-manager", "kube-apiserver", "etcd"} {
		c.procs.stop(name, 20*time.Second)
	}
	if c.ownDir {
		os.RemoveAll(c.Dir)
	}
	if c.runLock != nil {
		unlockFile(c.runLock)
	}
}

// traceToFirstNodeAgent points kube-apiserver's tracing at a port of this
// machine's loopback that leads to NodeAgentEndpoint inside the first
// real node, where deploy/control-plane's kube-apiserver finds its
// node's agent. Until that node runs, connections are refused.
func (c *Cluster) traceToFirstNodeAgent() error {
	if c.opts.TracingEndpoint != "" {
		return errors.New("localcluster: Kubelet.NodeAgentTracing and TracingEndpoint: set one")
	}
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return err
	}
	c.controlPlaneAgent = forward(l, func(ctx context.Context) (net.Conn, error) {
		ns := c.firstNodeNet.Load()
		if ns == nil {
			return nil, errors.New("no node yet")
		}
		return ns.DialContext(ctx, "tcp", NodeAgentEndpoint)
	})
	c.opts.TracingEndpoint = l.Addr().String()
	return nil
}
