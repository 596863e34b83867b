package localcluster

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"
	runtimeapi "k8s.io/cri-api/pkg/apis/runtime/v1"
)

// containerdNode is a real node and its container runtime: containerd
// (built from containerdbin), the machine's runc and the CNI plugins
// (cnibin). It shares one private mount namespace and one network
// namespace with the node's kubelet and kube-proxy (the kubelet mounts
// pods' volumes there and runc bind-mounts them into containers), with
// temp dirs over /var/lib and /var/log and a tmpfs over /run, so that
// nothing it writes lands on the host's paths, and the node's own network
// (nodeNetwork). Its root, state and cgroup root are its own and named
// after the run; Stop removes them all.
type containerdNode struct {
	index int
	// name is the node's Node; suffix names its processes (kubelet,
	// containerd...): "" for the first node, "-N" for node N.
	name, suffix string
	dir          string
	socket       string
	// cgroupRoot is the kubelet's cgroupRoot and holds the shims too.
	cgroupRoot string
	net        nodeNetwork
	// holder keeps the node's mount and network namespaces; containerd,
	// the kubelet and kube-proxy enter them with nsenter. mountNS is that
	// mount namespace (/proc/PID/ns/mnt), read once while the holder is
	// known to live: a PID can be reused; netns the network namespace.
	holder  *Process
	mountNS string
	netns   *netNS
	// forwarders carry the node's 127.0.0.1 ports that lead to this
	// machine's (a collector the test runs).
	forwarders []*forwarder
	// alive is held while the node runs, machine-wide (an abstract unix
	// socket named after the node's id): a sweep removes only what no
	// live node holds.
	alive    net.Listener
	c        *Cluster
	stopOnce sync.Once
}

// nodeNamePrefix names what a real node leaves on the machine while it
// runs (cgroups, a bridge): a sweep at the next start removes what a
// killed run left behind.
const nodeNamePrefix = "kubestitch-"

// startContainerdNode prepares real node index (of nodes) on the cluster
// network, starts its runtime and waits until its CRI server answers.
// tracingEndpoint is what containerd exports to, as the node sees it;
// hostPorts are this machine's loopback ports that the node's 127.0.0.1
// leads to. On error, what it made is removed again.
func (c *Cluster) startContainerdNode(ctx context.Context, index, nodes int, name, base, tracingEndpoint string, hostPorts []string, cn *clusterNetwork, dirs map[string]string) (n *containerdNode, err error) {
	runc, err := exec.LookPath("runc")
	if err != nil {
		return nil, errors.New("localcluster: the real node needs runc (apt-get install -y runc)")
	}
	// What a killed run's node left (no live node holds its id).
	sweepStaleNodes(c.log)
	sum := sha256.Sum256([]byte(fmt.Sprintf("%s/%d", c.Dir, index)))
	id := hex.EncodeToString(sum[:4])
	alive, err := holdNodeID(id)
	if err != nil {
		return nil, err
	}
	n = &containerdNode{
		index:      index,
		name:       name,
		suffix:     nodeSuffix(index),
		dir:        filepath.Join(base, "containerd"),
		cgroupRoot: "/" + nodeNamePrefix + id,
		net:        newNodeNetwork(index),
		alive:      alive,
		c:          c,
	}
	n.socket = filepath.Join(n.dir, "containerd.sock")
	defer func() {
		if err != nil {
			n.Stop()
		}
	}()
	for _, d := range []string{"root", "state", "certs.d", "cni"} {
		if err = os.MkdirAll(filepath.Join(n.dir, d), 0o755); err != nil {
			return n, err
		}
	}
	if err = makeCgroup(n.cgroupRoot); err != nil {
		return n, err
	}
	if err = makeCgroup(n.cgroupRoot + "/shims"); err != nil {
		return n, err
	}
	if err = n.writeConfig(runc); err != nil {
		return n, err
	}
	ready := filepath.Join(base, "mount-namespace-ready")
	script := `set -e; mount --bind "$1" /var/lib; mount --bind "$2" /var/log; mount -t tmpfs -o mode=0755 tmpfs /run; touch "$3"; exec sleep infinity`
	if err = c.run("node-namespaces"+n.suffix, "unshare", "-m", "-n", "--propagation", "private", "--", "/bin/sh", "-c", script, "node",
		dirs["var-lib"], dirs["var-log"], ready); err != nil {
		return n, err
	}
	n.holder = c.procs.get("node-namespaces" + n.suffix)
	if err = c.poll(ctx, "the node's mount namespace", 10*time.Second, func() (bool, error) {
		_, err := os.Stat(ready)
		return err == nil, nil
	}); err != nil {
		return n, err
	}
	if n.mountNS, err = os.Readlink(fmt.Sprintf("/proc/%d/ns/mnt", n.holder.PID())); err != nil {
		return n, err
	}
	if own, _ := os.Readlink("/proc/self/ns/mnt"); n.mountNS == own {
		return n, errors.New("localcluster: the node's mount namespace is this process's")
	}
	if n.netns, err = openNetNS(n.holder.PID()); err != nil {
		return n, err
	}
	if err = n.net.up(n.netns, cn, nodes); err != nil {
		return n, err
	}
	for _, addr := range hostPorts {
		if err = n.carryFromHost(addr); err != nil {
			return n, err
		}
	}
	env, err := containerdTracingEnv(tracingEndpoint)
	if err != nil {
		return n, err
	}
	// The shim is found on PATH, runc by the config's BinaryName.
	env = append(env, "PATH="+c.bins.ContainerdDir+":"+os.Getenv("PATH"))
	if err = c.runEnv("containerd"+n.suffix, env, "nsenter", n.enter(c.bins.Containerd, "--config", filepath.Join(n.dir, "config.toml"))...); err != nil {
		return n, err
	}
	if err = c.poll(ctx, "containerd's CRI server", 30*time.Second, func() (bool, error) {
		return n.criVersion(ctx) == nil, nil
	}); err != nil {
		return n, err
	}
	return n, nil
}

// nodeSuffix names node index's processes: none for the first node.
func nodeSuffix(index int) string {
	if index == 0 {
		return ""
	}
	return "-" + strconv.Itoa(index)
}

// enter is the nsenter arguments that run cmd in the node's mount and
// network namespaces.
//
// By the holder's PID: the launched process must hold both namespaces
// for as long as it runs. The holder is this process's child and is
// checked alive here; its PID is not reused before it is reaped.
func (n *containerdNode) enter(cmd ...string) []string {
	if n.holder.Exited() {
		// nsenter fails on a PID that is gone, rather than enter another's.
		return append([]string{"-t", "0", "-m", "-n", "--"}, cmd...)
	}
	return append([]string{"-t", fmt.Sprint(n.holder.PID()), "-m", "-n", "--"}, cmd...)
}

// carryFromHost makes addr (a 127.0.0.1 host:port) inside the node lead
// to the same address on this machine: a collector the test runs on the
// machine's loopback is then where the node's components export.
func (n *containerdNode) carryFromHost(addr string) error {
	l, err := n.netns.Listen("tcp", addr)
	if err != nil {
		return err
	}
	n.forwarders = append(n.forwarders, forward(l, func(ctx context.Context) (net.Conn, error) {
		var d net.Dialer
		return d.DialContext(ctx, "tcp", addr)
	}))
	return nil
}

// criClient dials containerd's CRI server.
func (n *containerdNode) criClient() (runtimeapi.RuntimeServiceClient, func(), error) {
	conn, err := grpc.NewClient("unix://"+n.socket, grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		return nil, nil, err
	}
	return runtimeapi.NewRuntimeServiceClient(conn), func() { conn.Close() }, nil
}

func (n *containerdNode) criVersion(ctx context.Context) error {
	rt, closeConn, err := n.criClient()
	if err != nil {
		return err
	}
	defer closeConn()
	ctx, cancel := context.WithTimeout(ctx, 2*time.Second)
	defer cancel()
	_, err = rt.Version(ctx, &runtimeapi.VersionRequest{})
	return err
}

// removePods stops and removes every pod sandbox, as a drained node's
// runtime would: containers stop, CNI tears the pods' networks down.
func (n *containerdNode) removePods() {
	rt, closeConn, err := n.criClient()
	if err != nil {
		return
	}
	defer closeConn()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	list, err := rt.ListPodSandbox(ctx, &runtimeapi.ListPodSandboxRequest{})
	if err != nil {
		return
	}
	for _, s := range list.Items {
		if _, err := rt.StopPodSandbox(ctx, &runtimeapi.StopPodSandboxRequest{PodSandboxId: s.Id}); err != nil {
			fmt.Fprintf(n.c.log, "localcluster: stopping pod sandbox %s: %v\n", s.Id, err)
		}
		if _, err := rt.RemovePodSandbox(ctx, &runtimeapi.RemovePodSandboxRequest{PodSandboxId: s.Id}); err != nil {
			fmt.Fprintf(n.c.log, "localcluster: removing pod sandbox %s: %v\n", s.Id, err)
		}
	}
}

// Stop stops the node's runtime after its kubelet: the pods, containerd,
// anything left in its cgroups or namespaces, then the namespaces (their
// mounts, interfaces and iptables rules go with them) and the cgroups.
func (n *containerdNode) Stop() { n.stopOnce.Do(n.stop) }

func (n *containerdNode) stop() {
	c := n.c
	if c.procs.get("containerd"+n.suffix) != nil {
		n.removePods()
		c.procs.stop("containerd"+n.suffix, 20*time.Second)
	}
	for _, f := range n.forwarders {
		f.Close()
	}
	killCgroup(n.cgroupRoot)
	if n.holder != nil {
		if n.mountNS != "" && !n.holder.Exited() {
			killMountNamespace(n.mountNS, n.holder.PID())
		}
		c.procs.stop("node-namespaces"+n.suffix, 5*time.Second)
	}
	if n.netns != nil {
		n.netns.Close()
	}
	if err := removeCgroup(n.cgroupRoot); err != nil {
		fmt.Fprintf(c.log, "localcluster: cleaning up the real node: %v\n", err)
	}
	if n.alive != nil {
		n.alive.Close()
	}
}

// ContainerdUsable says why this machine cannot run a containerd node,
// or nil: it needs root, overlayfs, runc, unshare and nsenter.
func ContainerdUsable() error {
	if os.Geteuid() != 0 {
		return errors.New("not root")
	}
	if b, err := os.ReadFile("/proc/filesystems"); err != nil || !strings.Contains(string(b), "\toverlay\n") {
		return errors.New("the kernel has no overlayfs")
	}
	for _, cmd := range []string{"runc", "unshare", "nsenter", "ip"} {
		if _, err := exec.LookPath(cmd); err != nil {
			return fmt.Errorf("%s is missing", cmd)
		}
	}
	return nil
}
