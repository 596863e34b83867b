package localcluster

import (
	"bytes"
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/resource"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/rest"
	"k8s.io/client-go/tools/clientcmd"

	"github.com/kubestitch/kubestitch/localcluster/criruntime"
)

// Options of a local control plane.
type Options struct {
	// TracingEndpoint is the OTLP gRPC host:port kube-apiserver exports its
	// spans to (sampling 1000000 per million); empty turns tracing off.
	TracingEndpoint string
	// Nodes is the number of kwok nodes. Default: 1.
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
	// KubeletNode is the real kubelet's Node, if Options.Kubelet was set.
	KubeletNode string
	// Client is an admin clientset.
	Client *kubernetes.Clientset
	// RESTConfig is the admin rest.Config.
	RESTConfig *rest.Config

	opts    Options
	bins    Binaries
	pki     *pki
	ownDir  bool
	mu      sync.Mutex
	procs   map[string]*process
	ports   map[string]int
	apiArgs []string
	runLock *os.File
	log     io.Writer
	stopped bool
	runtime *criruntime.Runtime
	sysctls *sysctlGuard
}

type process struct {
	name string
	cmd  *exec.Cmd
	log  string
	done chan struct{}
	err  error
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
	if opts.Nodes <= 0 {
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
	c = &Cluster{opts: opts, procs: map[string]*process{}, ports: map[string]int{}, log: opts.Log, Dir: opts.Dir}
	if c.bins, err = Build(ctx, opts.CacheDir, opts.Kubelet != nil, opts.Log); err != nil {
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
		if err = c.startKubelet(ctx); err != nil {
			return err
		}
	}
	if err = c.waitDefaultServiceAccount(ctx); err != nil {
		return err
	}
	fmt.Fprintf(c.log, "localcluster: up in %s at %s (dir %s)\n", time.Since(start).Round(100*time.Millisecond), c.Server, c.Dir)
	return nil
}

// errPortInUse marks a start that failed because a port was taken between
// picking and binding it; the start is retried with new ports.
var errPortInUse = errors.New("port in use")

func retryPorts(start func() error) error {
	var err error
	for range 3 {
		if err = start(); !errors.Is(err, errPortInUse) {
			return err
		}
	}
	return err
}

// FreePort picks a free loopback port below the kernel's ephemeral range.
// A port from the ephemeral range (what binding :0 gives) can be taken by
// any outgoing connection's local end while its server is down, e.g.
// between a collector's kill and its restart in a fault test; below the
// range only listeners take ports, and ours all come from here.
func FreePort() (int, error) {
	low := ephemeralLow()
	for range 200 {
		p := 10000 + rand.IntN(low-10000)
		l, err := net.Listen("tcp", fmt.Sprintf("127.0.0.1:%d", p))
		if err != nil {
			continue
		}
		l.Close()
		return p, nil
	}
	return 0, errors.New("localcluster: no free loopback port below the ephemeral range")
}

// ephemeralLow is the first port of the kernel's ephemeral range.
func ephemeralLow() int {
	b, err := os.ReadFile("/proc/sys/net/ipv4/ip_local_port_range")
	if err == nil {
		if f := strings.Fields(string(b)); len(f) == 2 {
			if n, err := strconv.Atoi(f[0]); err == nil && n > 11000 {
				return n
			}
		}
	}
	return 32768
}

func (c *Cluster) startEtcd(ctx context.Context) error {
	client, err := FreePort()
	if err != nil {
		return err
	}
	peer, err := FreePort()
	if err != nil {
		return err
	}
	cu := fmt.Sprintf("http://127.0.0.1:%d", client)
	pu := fmt.Sprintf("http://127.0.0.1:%d", peer)
	if err := c.run("etcd", c.bins.Etcd,
		"--name=local", "--data-dir="+filepath.Join(c.Dir, "etcd"),
		"--listen-client-urls="+cu, "--advertise-client-urls="+cu,
		"--listen-peer-urls="+pu, "--initial-advertise-peer-urls="+pu,
		"--initial-cluster=local="+pu, "--unsafe-no-fsync=true",
		"--listen-metrics-urls=", "--log-level=warn",
	); err != nil {
		return err
	}
	c.ports["etcd"] = client
	return c.waitHTTP(ctx, "etcd", cu+"/health", nil, 30*time.Second)
}

func (c *Cluster) issueCerts() error {
	p := c.pki
	if err := p.issue("apiserver", "kube-apiserver", nil, true); err != nil {
		return err
	}
	for _, u := range []struct{ name, cn, org string }{
		{"admin", "kubestitch-admin", "system:masters"},
		{"controller-manager", "system:kube-controller-manager", ""},
		{"scheduler", "system:kube-scheduler", ""},
		{"kwok", "kwok", "system:masters"},
	} {
		var orgs []string
		if u.org != "" {
			orgs = []string{u.org}
		}
		if err := p.issue(u.name, u.cn, orgs, false); err != nil {
			return err
		}
	}
	return nil
}

// startAPIServer starts kube-apiserver on the port Prepare chose: its
// clients already have it in their kubeconfig, so it is not re-picked.
func (c *Cluster) startAPIServer(ctx context.Context) error {
	p := c.pki
	port := c.ports["kube-apiserver"]
	args := []string{
		fmt.Sprintf("--etcd-servers=http://127.0.0.1:%d", c.ports["etcd"]),
		"--bind-address=127.0.0.1", "--advertise-address=127.0.0.1",
		fmt.Sprintf("--secure-port=%d", port),
		"--tls-cert-file=" + p.path("apiserver.crt"), "--tls-private-key-file=" + p.path("apiserver.key"),
		"--client-ca-file=" + p.path("ca.crt"),
		"--service-account-issuer=https://kubernetes.default.svc.cluster.local",
		"--service-account-key-file=" + p.path("sa.pub"),
		"--service-account-signing-key-file=" + p.path("sa.key"),
		"--service-cluster-ip-range=10.96.0.0/16",
		"--authorization-mode=Node,RBAC",
		"--endpoint-reconciler-type=none",
		"--cert-dir=" + filepath.Join(c.Dir, "apiserver-certs"),
		"--enable-priority-and-fairness=true",
	}
	if c.opts.TracingEndpoint != "" {
		tc := filepath.Join(c.Dir, "tracing.yaml")
		body := fmt.Sprintf("apiVersion: apiserver.config.k8s.io/v1\nkind: TracingConfiguration\nendpoint: %s\nsamplingRatePerMillion: 1000000\n", c.opts.TracingEndpoint)
		if err := os.WriteFile(tc, []byte(body), 0o644); err != nil {
			return err
		}
		args = append(args, "--tracing-config-file="+tc)
	}
	if err := c.runEnv("kube-apiserver", c.opts.SpanExportEnv, c.bins.APIServer, args...); err != nil {
		return err
	}
	c.apiArgs = args
	if err := c.waitHTTP(ctx, "kube-apiserver", c.Server+"/readyz", c.adminTLS(), 90*time.Second); err != nil {
		return err
	}
	var err error
	c.RESTConfig, err = clientcmd.BuildConfigFromFlags("", c.Kubeconfig)
	if err != nil {
		return err
	}
	c.RESTConfig.QPS, c.RESTConfig.Burst = 200, 400
	c.Client, err = kubernetes.NewForConfig(c.RESTConfig)
	return err
}

func (c *Cluster) adminTLS() *tls.Config {
	cert, err := tls.LoadX509KeyPair(c.pki.path("admin.crt"), c.pki.path("admin.key"))
	if err != nil {
		return &tls.Config{InsecureSkipVerify: true} //nolint:gosec // loopback readiness probe only
	}
	return &tls.Config{Certificates: []tls.Certificate{cert}, InsecureSkipVerify: true} //nolint:gosec // loopback readiness probe only
}

func (c *Cluster) startControllerManager(ctx context.Context) error {
	port, err := FreePort()
	if err != nil {
		return err
	}
	kc, err := c.pki.kubeconfig("controller-manager", c.Server)
	if err != nil {
		return err
	}
	p := c.pki
	args := []string{
		"--kubeconfig=" + kc, "--authentication-kubeconfig=" + kc, "--authorization-kubeconfig=" + kc,
		"--bind-address=127.0.0.1", fmt.Sprintf("--secure-port=%d", port),
		"--cert-dir=" + filepath.Join(c.Dir, "kcm-certs"), "--leader-elect=false",
		"--service-account-private-key-file=" + p.path("sa.key"), "--root-ca-file=" + p.path("ca.crt"),
		"--use-service-account-credentials=true",
		// kwok renews its nodes' Leases on its own schedule, and stops
		// after an API server restart on a loaded machine (seen in `make
		// shake`): the node lifecycle controller then marks the node
		// NotReady every 50 s and every pod on it Ready=False, which kwok's
		// stages never undo, and a rollout never completes. Nodes here are
		// simulated; their health is not under test.
		"--node-monitor-grace-period=1h",
		"--cluster-signing-cert-file=" + p.path("ca.crt"), "--cluster-signing-key-file=" + p.path("ca.key"),
	}
	if err := c.run("kube-controller-manager", c.bins.ControllerManager, append(args, c.clientRateFlags()...)...); err != nil {
		return err
	}
	c.ports["kube-controller-manager"] = port
	return c.waitHTTP(ctx, "kube-controller-manager", fmt.Sprintf("https://127.0.0.1:%d/healthz", port), &tls.Config{InsecureSkipVerify: true}, 60*time.Second) //nolint:gosec // loopback probe
}

// clientRateFlags are the client QPS and burst flags of Options.ClientQPS.
func (c *Cluster) clientRateFlags() []string {
	if c.opts.ClientQPS <= 0 {
		return nil
	}
	return []string{fmt.Sprintf("--kube-api-qps=%d", c.opts.ClientQPS), fmt.Sprintf("--kube-api-burst=%d", c.opts.ClientQPS)}
}

func (c *Cluster) startScheduler(ctx context.Context) error {
	port, err := FreePort()
	if err != nil {
		return err
	}
	kc, err := c.pki.kubeconfig("scheduler", c.Server)
	if err != nil {
		return err
	}
	args := []string{
		"--kubeconfig=" + kc, "--authentication-kubeconfig=" + kc, "--authorization-kubeconfig=" + kc,
		"--bind-address=127.0.0.1", fmt.Sprintf("--secure-port=%d", port), "--leader-elect=false",
	}
	if err := c.run("kube-scheduler", c.bins.Scheduler, append(args, c.clientRateFlags()...)...); err != nil {
		return err
	}
	c.ports["kube-scheduler"] = port
	return c.waitHTTP(ctx, "kube-scheduler", fmt.Sprintf("https://127.0.0.1:%d/healthz", port), &tls.Config{InsecureSkipVerify: true}, 60*time.Second) //nolint:gosec // loopback probe
}

func (c *Cluster) startKwok(ctx context.Context) error {
	kc, err := c.pki.kubeconfig("kwok", c.Server)
	if err != nil {
		return err
	}
	stageDir := filepath.Join(c.bins.KwokModuleDir, "kustomize", "stage")
	files := []string{
		"node/fast/node-initialize.yaml",
		"node/heartbeat-with-lease/node-heartbeat-with-lease.yaml",
	}
	if c.opts.PodStages == "general" {
		files = append(files, "pod/general/pod-create.yaml", "pod/general/pod-ready.yaml", "pod/general/pod-complete.yaml", "pod/general/pod-delete.yaml")
	} else {
		files = append(files, "pod/fast/pod-ready.yaml", "pod/fast/pod-complete.yaml", "pod/fast/pod-delete.yaml")
	}
	var stages bytes.Buffer
	for _, f := range files {
		b, err := os.ReadFile(filepath.Join(stageDir, f))
		if err != nil {
			return fmt.Errorf("localcluster: kwok stage file: %w", err)
		}
		stages.WriteString("---\n")
		stages.Write(b)
		stages.WriteString("\n")
	}
	cfg := filepath.Join(c.Dir, "kwok-stages.yaml")
	if err := os.WriteFile(cfg, stages.Bytes(), 0o644); err != nil {
		return err
	}
	port, err := FreePort()
	if err != nil {
		return err
	}
	return c.run("kwok", c.bins.Kwok,
		"--kubeconfig="+kc, "--config="+cfg,
		// Only the nodes created for kwok: a real kubelet's node is its own.
		"--manage-nodes-with-annotation-selector=kwok.x-k8s.io/node=fake",
		// Pod IPs apart from the nodes' own: a host-network pod has its
		// node's IP, and no other pod may (test/podrunner routes by IP).
		// 32,766 of them: a /24 runs out at 254 pods.
		"--cidr=10.244.128.0/17", "--node-ip=10.244.0.1",
		fmt.Sprintf("--server-address=127.0.0.1:%d", port),
	)
}

func (c *Cluster) createNodes(ctx context.Context) error {
	for i := range c.opts.Nodes {
		name := fmt.Sprintf("kwok-node-%d", i)
		node := &corev1.Node{
			ObjectMeta: metav1.ObjectMeta{
				Name:        name,
				Annotations: map[string]string{"kwok.x-k8s.io/node": "fake", "node.alpha.kubernetes.io/ttl": "0"},
				Labels:      map[string]string{"type": "kwok", "kubernetes.io/hostname": name, "kubernetes.io/os": "linux", "kubernetes.io/arch": "amd64"},
			},
			Status: corev1.NodeStatus{
				Capacity: corev1.ResourceList{
					corev1.ResourceCPU: resource.MustParse("32"), corev1.ResourceMemory: resource.MustParse("256Gi"), corev1.ResourcePods: resource.MustParse("250"),
				},
				Allocatable: corev1.ResourceList{
					corev1.ResourceCPU: resource.MustParse("32"), corev1.ResourceMemory: resource.MustParse("256Gi"), corev1.ResourcePods: resource.MustParse("250"),
				},
			},
		}
		if _, err := c.Client.CoreV1().Nodes().Create(ctx, node, metav1.CreateOptions{}); err != nil {
			return fmt.Errorf("localcluster: create node %s: %w", name, err)
		}
		c.Nodes = append(c.Nodes, name)
	}
	return c.poll(ctx, "kwok nodes Ready", 60*time.Second, func() (bool, error) {
		for _, n := range c.Nodes {
			node, err := c.Client.CoreV1().Nodes().Get(ctx, n, metav1.GetOptions{})
			if err != nil {
				return false, nil
			}
			ready := false
			for _, cond := range node.Status.Conditions {
				if cond.Type == corev1.NodeReady && cond.Status == corev1.ConditionTrue {
					ready = true
				}
			}
			if !ready {
				return false, nil
			}
		}
		return true, nil
	})
}

func (c *Cluster) waitDefaultServiceAccount(ctx context.Context) error {
	return c.poll(ctx, "the default ServiceAccount", 90*time.Second, func() (bool, error) {
		_, err := c.Client.CoreV1().ServiceAccounts("default").Get(ctx, "default", metav1.GetOptions{})
		return err == nil, nil
	})
}

// poll checks cond every 100ms until it is true, a component died, or
// timeout passes.
func (c *Cluster) poll(ctx context.Context, what string, timeout time.Duration, cond func() (bool, error)) error {
	deadline := time.Now().Add(timeout)
	for {
		ok, err := cond()
		if err != nil {
			return err
		}
		if ok {
			return nil
		}
		if err := c.died(); err != nil {
			return fmt.Errorf("localcluster: waiting for %s: %w", what, err)
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("localcluster: %s not there after %s%s", what, timeout, c.LogTails(10))
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(100 * time.Millisecond):
		}
	}
}

func (c *Cluster) waitHTTP(ctx context.Context, name, url string, tlsCfg *tls.Config, timeout time.Duration) error {
	hc := &http.Client{Timeout: 2 * time.Second, Transport: &http.Transport{TLSClientConfig: tlsCfg}}
	defer hc.CloseIdleConnections()
	return c.poll(ctx, name+" ready at "+url, timeout, func() (bool, error) {
		resp, err := hc.Get(url)
		if err != nil {
			return false, nil
		}
		resp.Body.Close()
		return resp.StatusCode == http.StatusOK, nil
	})
}

// run starts a component in its own process group, logging to a file; it
// is killed with the test process (Pdeathsig) if Down never runs.
func (c *Cluster) run(name, bin string, args ...string) error {
	return c.runEnv(name, nil, bin, args...)
}

// runEnv runs a component with env added to this process's environment.
func (c *Cluster) runEnv(name string, env []string, bin string, args ...string) error {
	logPath := filepath.Join(c.Dir, name+".log")
	f, err := os.Create(logPath)
	if err != nil {
		return err
	}
	cmd := exec.Command(bin, args...)
	cmd.Env = append(os.Environ(), env...)
	cmd.Stdout, cmd.Stderr = f, f
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true, Pdeathsig: syscall.SIGKILL}
	if err := cmd.Start(); err != nil {
		f.Close()
		return fmt.Errorf("localcluster: start %s: %w", name, err)
	}
	p := &process{name: name, cmd: cmd, log: logPath, done: make(chan struct{})}
	go func() {
		p.err = cmd.Wait()
		f.Close()
		close(p.done)
	}()
	c.mu.Lock()
	c.procs[name] = p
	c.mu.Unlock()
	// A port taken between picking and binding shows within a second.
	select {
	case <-p.done:
		tail := LogTail(logPath, 20)
		c.mu.Lock()
		delete(c.procs, name)
		c.mu.Unlock()
		if strings.Contains(tail, "address already in use") {
			return fmt.Errorf("%w: %s", errPortInUse, name)
		}
		return fmt.Errorf("localcluster: %s exited at start (%v); log tail:\n%s", name, p.err, tail)
	case <-time.After(300 * time.Millisecond):
	}
	return nil
}

// died reports a component that exited, with its log tail.
func (c *Cluster) died() error {
	c.mu.Lock()
	defer c.mu.Unlock()
	for _, p := range c.procs {
		select {
		case <-p.done:
			return fmt.Errorf("%s exited (%v); log tail:\n%s", p.name, p.err, LogTail(p.log, 30))
		default:
		}
	}
	return nil
}

// LogTails is the last n lines of the named running components' logs
// (kube-apiserver, kube-controller-manager, kube-scheduler, kwok...), or
// of all of them without names.
func (c *Cluster) LogTails(n int, names ...string) string {
	c.mu.Lock()
	defer c.mu.Unlock()
	var b strings.Builder
	for _, p := range c.procs {
		if len(names) > 0 && !slices.Contains(names, p.name) {
			continue
		}
		fmt.Fprintf(&b, "\n--- %s log tail ---\n%s", p.name, LogTail(p.log, n))
	}
	return b.String()
}

// LogTail is the last n lines of a log file.
func LogTail(path string, n int) string {
	b, err := os.ReadFile(path)
	if err != nil {
		return "(no log: " + err.Error() + ")"
	}
	lines := strings.Split(strings.TrimRight(string(b), "\n"), "\n")
	if len(lines) > n {
		lines = lines[len(lines)-n:]
	}
	return strings.Join(lines, "\n")
}

// PIDs are the process IDs of the running components, by name.
func (c *Cluster) PIDs() map[string]int {
	c.mu.Lock()
	defer c.mu.Unlock()
	out := map[string]int{}
	for n, p := range c.procs {
		out[n] = p.cmd.Process.Pid
	}
	return out
}

// RestartAPIServer stops kube-apiserver and starts it again on the same
// port: every watch breaks and clients relist. kwok is restarted after it:
// kwok drops a pod's stage on an error it does not retry (the restarted
// apiserver answers some requests before it is fully up) and, unlike a
// kubelet, never resyncs its pods, so a rollout would stall there; a
// restart makes it replay every pod's pending stage, as a kubelet's
// periodic sync would.
func (c *Cluster) RestartAPIServer(ctx context.Context) error {
	c.stop("kube-apiserver", 30*time.Second)
	if err := c.runEnv("kube-apiserver", c.opts.SpanExportEnv, c.bins.APIServer, c.apiArgs...); err != nil {
		return err
	}
	if err := c.waitHTTP(ctx, "kube-apiserver", c.Server+"/readyz", c.adminTLS(), 90*time.Second); err != nil {
		return err
	}
	c.stop("kwok", 20*time.Second)
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
	c.stopKubelet()
	for _, name := range []string{"kwok", "kube-scheduler", "kube-controller-manager", "kube-apiserver", "etcd"} {
		c.stop(name, 20*time.Second)
	}
	if c.ownDir {
		os.RemoveAll(c.Dir)
	}
	if c.runLock != nil {
		_ = syscall.Flock(int(c.runLock.Fd()), syscall.LOCK_UN)
		c.runLock.Close()
	}
}

// lockFile takes an exclusive lock on path, waiting for it.
func lockFile(path string) (*os.File, error) {
	f, err := os.OpenFile(path, os.O_CREATE|os.O_RDWR, 0o644)
	if err != nil {
		return nil, err
	}
	if err := syscall.Flock(int(f.Fd()), syscall.LOCK_EX); err != nil {
		f.Close()
		return nil, err
	}
	return f, nil
}

// stop sends SIGTERM to a component's process group, and SIGKILL after
// grace.
func (c *Cluster) stop(name string, grace time.Duration) {
	c.mu.Lock()
	p := c.procs[name]
	delete(c.procs, name)
	c.mu.Unlock()
	if p == nil {
		return
	}
	pgid := p.cmd.Process.Pid
	_ = syscall.Kill(-pgid, syscall.SIGTERM)
	select {
	case <-p.done:
	case <-time.After(grace):
		_ = syscall.Kill(-pgid, syscall.SIGKILL)
		<-p.done
	}
}
