package localcluster

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/kubestitch/kubestitch/localcluster/criruntime"
)

// RuntimeKind is the container runtime of the real kubelet's node.
type RuntimeKind string

const (
	// RuntimeStandIn is the in-process CRI stand-in (criruntime): pods
	// "run" without any container; pulls and starts only take time.
	RuntimeStandIn RuntimeKind = ""
	// RuntimeContainerd is containerd 2.x with runc and CNI: images are
	// pulled from the test bed's loopback registry and containers run.
	RuntimeContainerd RuntimeKind = "containerd"
)

// KubeletOptions add one node run by a real kubelet, next to the kwok
// nodes, on the in-process CRI stand-in or on containerd.
type KubeletOptions struct {
	// Runtime of the node. Default: RuntimeStandIn.
	Runtime RuntimeKind
	// NodeName of the kubelet's Node. Default: kubelet-node-0.
	NodeName string
	// TracingEndpoint is the OTLP gRPC host:port the kubelet and the
	// runtime export spans to (a node agent, as in a real cluster).
	// Default: Options.TracingEndpoint.
	TracingEndpoint string
	// Delays of the stand-in's slow calls. Default: criruntime.DefaultDelays.
	Delays *criruntime.Delays
	// Faults of the stand-in (none by default).
	Faults criruntime.Faults
	// Nodes is the number of real nodes, kubelet-node-0 on (more than one
	// needs Runtime containerd). Default: 1.
	Nodes int
	// NodeAgentTracing points the nodes' kubelet and containerd at
	// NodeAgentEndpoint inside each node, and kube-apiserver at the first
	// node's, as deploy/control-plane ships them: the install's agents
	// receive them (the first node plays the control-plane node). Needs
	// Runtime containerd; TracingEndpoint must be empty.
	NodeAgentTracing bool
}

// NodeAgentEndpoint is where a node's agent listens for OTLP (gRPC),
// inside the node: deploy/base/workloads.yaml's host-network agent.
const NodeAgentEndpoint = "127.0.0.1:4317"

// CanaryFile is written into the kubelet's working directory
// (KubeletWorkDir) before it starts.
const CanaryFile = "CANARY"

// KubeletWorkDir is the kubelet's working directory.
func (c *Cluster) KubeletWorkDir() string { return filepath.Join(c.Dir, "kubelet", "work") }

// hostAddress is the machine's own non-loopback IPv4 address. The kubelet
// refuses a loopback node IP; nothing here ever dials this address (the
// kubelet listens on 127.0.0.1 only, and no test uses logs, exec or
// port-forward).
func hostAddress() (string, error) {
	ifs, err := net.Interfaces()
	if err != nil {
		return "", err
	}
	for _, i := range ifs {
		if i.Flags&net.FlagUp == 0 || i.Flags&net.FlagLoopback != 0 {
			continue
		}
		addrs, err := i.Addrs()
		if err != nil {
			continue
		}
		for _, a := range addrs {
			if n, ok := a.(*net.IPNet); ok && n.IP.To4() != nil && n.IP.IsGlobalUnicast() {
				return n.IP.String(), nil
			}
		}
	}
	return "", errors.New("localcluster: the kubelet needs a non-loopback IPv4 node address and this machine has none")
}

// startKubelets starts the real nodes: each one's runtime and kubelet
// (and, on containerd, its kube-proxy and network), one after the other.
func (c *Cluster) startKubelets(ctx context.Context) (err error) {
	ko := *c.opts.Kubelet
	nodes := max(ko.Nodes, 1)
	if nodes > 1 && ko.Runtime != RuntimeContainerd {
		return errors.New("localcluster: more than one real node needs Kubelet.Runtime containerd")
	}
	if nodes > 1 && ko.NodeName != "" {
		return errors.New("localcluster: Kubelet.NodeName names a single real node")
	}
	if ko.NodeAgentTracing && ko.TracingEndpoint != "" {
		return errors.New("localcluster: Kubelet.NodeAgentTracing and Kubelet.TracingEndpoint: set one")
	}
	if ko.NodeAgentTracing && ko.Runtime != RuntimeContainerd {
		return errors.New("localcluster: Kubelet.NodeAgentTracing needs Kubelet.Runtime containerd (a node network of its own)")
	}
	if ko.TracingEndpoint == "" && !ko.NodeAgentTracing {
		ko.TracingEndpoint = c.opts.TracingEndpoint
	}
	if ko.Runtime == RuntimeContainerd {
		if err := c.pushNodeImages(ctx); err != nil {
			return err
		}
		if c.network, err = c.startClusterNetwork(ctx); err != nil {
			return err
		}
	}
	if c.sysctls, err = newSysctlGuard(); err != nil {
		return err
	}
	for i := range nodes {
		name := ko.NodeName
		if name == "" {
			name = fmt.Sprintf("kubelet-node-%d", i)
		}
		if err := c.startKubelet(ctx, ko, i, nodes, name); err != nil {
			return err
		}
		c.KubeletNodes = append(c.KubeletNodes, name)
	}
	c.KubeletNode = c.KubeletNodes[0]
	return nil
}

// startKubelet starts real node index's CRI runtime and kubelet in a
// private mount namespace, with temp dirs over /var/lib and /var/log (it
// writes hard-coded paths there) and an empty working directory (it
// deletes files there when a runtime reports no log path), and waits for
// its Node to be Ready. A containerd node has a network namespace of its
// own too (nodeNetwork) and runs kube-proxy.
func (c *Cluster) startKubelet(ctx context.Context, ko KubeletOptions, index, nodes int, name string) error {
	delays := criruntime.DefaultDelays
	if ko.Delays != nil {
		delays = *ko.Delays
	}
	base := filepath.Join(c.Dir, "kubelet"+nodeSuffix(index))
	dirs := map[string]string{}
	for _, d := range []string{"root", "certs", "pod-logs", "var-lib", "var-log", "work"} {
		dirs[d] = filepath.Join(base, d)
		if err := os.MkdirAll(dirs[d], 0o755); err != nil {
			return err
		}
	}
	// A file the kubelet must leave alone: it is gone if the kubelet ever
	// globs and deletes its working directory (see criruntime).
	if err := os.WriteFile(filepath.Join(dirs["work"], CanaryFile), []byte("the kubelet's working directory\n"), 0o644); err != nil {
		return err
	}
	socket := filepath.Join(base, "cri.sock")
	// What the kubelet's config adds for a node whose containers run.
	realNode := ""
	var node *containerdNode
	server := c.Server
	// The stand-in's kubelet runs in this machine's network, on free
	// loopback ports; a containerd node's in its own, on the usual ones.
	nodeIP, address := "", "127.0.0.1"
	port, healthz := 10250, 10248
	if ko.Runtime == RuntimeContainerd {
		tracing, hostPorts := ko.TracingEndpoint, []string(nil)
		if ko.NodeAgentTracing {
			tracing = NodeAgentEndpoint
		} else if tracing != "" {
			hostPorts = append(hostPorts, tracing)
		}
		var err error
		node, err = c.startContainerdNode(ctx, index, nodes, name, base, tracing, hostPorts, c.network, dirs)
		if node != nil {
			c.nodes = append(c.nodes, node) // stopped by Down, even half made
		}
		if err != nil {
			return err
		}
		if index == 0 {
			c.firstNodeNet.Store(node.netns)
		}
		socket, nodeIP, address = node.socket, node.net.ip, node.net.ip
		server = fmt.Sprintf("https://%s:%d", ControlPlaneIP, c.ports["kube-apiserver"])
		// Pods in their QoS cgroups under the node's own root; eviction
		// and image GC thresholds off: the machine's disk is shared. DNS
		// from the cluster network (clusterdns.go).
		realNode = fmt.Sprintf(`cgroupsPerQOS: true
cgroupRoot: %s
enforceNodeAllocatable: [pods]
evictionHard: {memory.available: "0%%", nodefs.available: "0%%", imagefs.available: "0%%"}
imageGCHighThresholdPercent: 100
clusterDNS: [%s]
clusterDomain: %s
`, node.cgroupRoot, ControlPlaneIP, strings.TrimSuffix(clusterDomain, "."))
		if ko.NodeAgentTracing {
			ko.TracingEndpoint = NodeAgentEndpoint
		}
	} else {
		var err error
		if nodeIP, err = hostAddress(); err != nil {
			return err
		}
		if port, err = FreePort(); err != nil {
			return err
		}
		if healthz, err = FreePort(); err != nil {
			return err
		}
		c.runtime, err = criruntime.Start(criruntime.Options{Socket: socket, TracingEndpoint: ko.TracingEndpoint, Delays: delays, Faults: ko.Faults})
		if err != nil {
			return err
		}
		realNode = "cgroupsPerQOS: false\nenforceNodeAllocatable: []\n"
	}
	certName := "kubelet" + nodeSuffix(index)
	if err := c.pki.issue(certName, "system:node:"+name, []string{"system:nodes"}, false); err != nil {
		return err
	}
	kc, err := c.pki.kubeconfig(certName, server)
	if err != nil {
		return err
	}
	tracing := ""
	if ko.TracingEndpoint != "" {
		tracing = fmt.Sprintf("tracing:\n  endpoint: %s\n  samplingRatePerMillion: 1000000\n", ko.TracingEndpoint)
	}
	cfg := filepath.Join(base, "config.yaml")
	body := fmt.Sprintf(`apiVersion: kubelet.config.k8s.io/v1beta1
kind: KubeletConfiguration
address: %s
port: %d
readOnlyPort: 0
healthzBindAddress: 127.0.0.1
healthzPort: %d
containerRuntimeEndpoint: unix://%s
cgroupDriver: cgroupfs
%sfailSwapOn: false
failCgroupV1: false
localStorageCapacityIsolation: true
makeIPTablesUtilChains: false
resolvConf: ""
podLogsDir: %s
registerNode: true
authentication:
  anonymous: {enabled: false}
  webhook: {enabled: true}
  x509: {clientCAFile: %s}
authorization:
  mode: Webhook
%s`, address, port, healthz, socket, realNode, dirs["pod-logs"], c.pki.path("ca.crt"), tracing)
	if err := os.WriteFile(cfg, []byte(body), 0o644); err != nil {
		return err
	}
	kubelet := []string{c.bins.Kubelet,
		"--config=" + cfg, "--kubeconfig=" + kc,
		"--hostname-override=" + name, "--node-ip=" + nodeIP,
		"--root-dir=" + dirs["root"], "--cert-dir=" + dirs["certs"],
		"--node-labels=type=kubelet",
	}
	var launcher string
	var args []string
	if node != nil {
		// In the namespaces it shares with containerd.
		launcher, args = "nsenter", node.enter(append([]string{"/bin/sh", "-c", `cd "$1"; shift; exec "$@"`, "kubelet", dirs["work"]}, kubelet...)...)
	} else {
		// unshare execs sh, sh execs the kubelet: one PID, so stop() and
		// Pdeathsig reach the kubelet itself.
		script := `set -e; mount --bind "$1" /var/lib; mount --bind "$2" /var/log; cd "$3"; shift 3; exec "$@"`
		launcher, args = "unshare", append([]string{"-m", "--propagation", "private", "--", "/bin/sh", "-c", script, "kubelet",
			dirs["var-lib"], dirs["var-log"], dirs["work"]}, kubelet...)
	}
	if err := c.runEnv("kubelet"+nodeSuffix(index), c.opts.SpanExportEnv, launcher, args...); err != nil {
		return err
	}
	healthzURL := fmt.Sprintf("http://127.0.0.1:%d/healthz", healthz)
	if node != nil {
		err = c.waitHTTPIn(ctx, node.netns, "kubelet"+nodeSuffix(index), healthzURL, 60*time.Second)
	} else {
		err = c.waitHTTP(ctx, "kubelet", healthzURL, nil, 60*time.Second)
	}
	if err != nil {
		return err
	}
	if node != nil {
		if err := c.startKubeProxy(ctx, node); err != nil {
			return err
		}
	}
	if err := c.poll(ctx, "kubelet node "+name+" Ready", 60*time.Second, func() (bool, error) {
		node, err := c.Client.CoreV1().Nodes().Get(ctx, name, metav1.GetOptions{})
		if err != nil {
			return false, nil
		}
		for _, cond := range node.Status.Conditions {
			if cond.Type == corev1.NodeReady && cond.Status == corev1.ConditionTrue {
				return true, nil
			}
		}
		return false, nil
	}); err != nil {
		return err
	}
	if index == 0 {
		c.ports["kubelet"] = port
	}
	return nil
}

// KubeletMetrics is where the first real kubelet serves /metrics
// (Prometheus text), and a client that reads it as the cluster's admin
// (inside the node's network, for a containerd node).
func (c *Cluster) KubeletMetrics() (*http.Client, string, error) {
	if c.ports["kubelet"] == 0 {
		return nil, "", errors.New("localcluster: no real kubelet")
	}
	tr := &http.Transport{TLSClientConfig: c.adminTLS()}
	host := "127.0.0.1"
	if len(c.nodes) > 0 {
		tr.DialContext, host = c.nodes[0].netns.DialContext, c.nodes[0].net.ip
	}
	client := &http.Client{Timeout: 10 * time.Second, Transport: tr}
	return client, fmt.Sprintf("https://%s:%d/metrics", host, c.ports["kubelet"]), nil
}

// stopKubelet stops the kubelets, then their runtimes and networks, then
// puts the sysctls back.
func (c *Cluster) stopKubelet() {
	for i := len(c.nodes) - 1; i >= 0; i-- {
		c.procs.stop("kube-proxy"+c.nodes[i].suffix, 10*time.Second)
		c.procs.stop("kubelet"+c.nodes[i].suffix, 20*time.Second)
	}
	c.procs.stop("kubelet", 20*time.Second)
	for i := len(c.nodes) - 1; i >= 0; i-- {
		c.nodes[i].Stop()
	}
	c.nodes = nil
	if c.network != nil {
		c.network.Stop()
		c.network = nil
	}
	if c.runtime != nil {
		c.runtime.Stop()
		c.runtime = nil
	}
	if c.sysctls != nil {
		if err := c.sysctls.close(); err != nil {
			fmt.Fprintf(c.log, "localcluster: %v\n", err)
		}
		c.sysctls.mu.Lock()
		if len(c.sysctls.restored) > 0 {
			fmt.Fprintf(c.log, "localcluster: sysctls the kubelet changed, restored: %s\n", strings.Join(c.sysctls.restored, ", "))
		}
		c.sysctls.mu.Unlock()
		c.sysctls = nil
	}
}
