package localcluster

import (
	"context"
	"errors"
	"fmt"
	"net"
	"strconv"
	"strings"
	"sync"
	"time"

	discoveryv1 "k8s.io/api/discovery/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/utils/ptr"
)

// The addresses of the cluster network: the real nodes' network, in a
// network namespace of its own, so that nothing of the machine's (its
// interfaces, routes, iptables, sysctls) is touched and no packet of the
// test bed can leave it. Each node is on it with an address of its own;
// ControlPlaneIP leads to what runs on this machine's loopback (the
// apiserver, the image registry) and serves the cluster's DNS.
const (
	clusterNetworkPrefix = "10.243.0."
	// ControlPlaneIP is the control plane's address on the cluster
	// network, as nodes and pods reach it: the apiserver's port, the
	// registry's port and DNS (53, UDP) on it lead to this machine's.
	ControlPlaneIP = clusterNetworkPrefix + "1"
	// clusterBridge joins the nodes in the cluster network's namespace.
	clusterBridge = "nodes"
	// serviceCIDR is kube-apiserver's --service-cluster-ip-range.
	serviceCIDR = "10.96.0.0/16"
	// clusterCIDR holds every node's pod CIDR.
	clusterCIDR = "10.244.0.0/16"
)

// nodeAddress is real node index's IP on the cluster network.
func nodeAddress(index int) string { return clusterNetworkPrefix + strconv.Itoa(index+2) }

// clusterNetwork is the real nodes' network: a bridge in a namespace of
// its own, the nodes' uplinks on it, and the control plane's address with
// this process carrying its ports to the machine's loopback.
type clusterNetwork struct {
	ns         *netNS
	forwarders []*forwarder
	dns        *clusterDNS
	c          *Cluster
	stopOnce   sync.Once
}

// startClusterNetwork makes the network and starts carrying the
// apiserver's and the registry's ports and serving DNS on ControlPlaneIP.
// On error, what it made is removed again.
func (c *Cluster) startClusterNetwork(ctx context.Context) (cn *clusterNetwork, err error) {
	if err := c.run("cluster-network", "unshare", "-n", "--", "sleep", "infinity"); err != nil {
		return nil, err
	}
	made := &clusterNetwork{c: c}
	defer func() {
		if err != nil {
			made.Stop()
		}
	}()
	if made.ns, err = c.enteredNetNS(ctx, "cluster-network"); err != nil {
		return nil, err
	}
	for _, args := range [][]string{
		{"link", "set", "lo", "up"},
		{"link", "add", clusterBridge, "type", "bridge"},
		{"addr", "add", ControlPlaneIP + "/24", "dev", clusterBridge},
		{"link", "set", clusterBridge, "up"},
	} {
		if err = made.ns.ip(args...); err != nil {
			return nil, err
		}
	}
	ports := []int{c.ports["kube-apiserver"]}
	if c.Registry != nil {
		_, p, _ := net.SplitHostPort(c.Registry.Host)
		rp, _ := strconv.Atoi(p)
		ports = append(ports, rp)
	}
	for _, port := range ports {
		l, err := made.ns.Listen("tcp", net.JoinHostPort(ControlPlaneIP, strconv.Itoa(port)))
		if err != nil {
			return nil, err
		}
		target := net.JoinHostPort("127.0.0.1", strconv.Itoa(port))
		made.forwarders = append(made.forwarders, forward(l, func(ctx context.Context) (net.Conn, error) {
			var d net.Dialer
			return d.DialContext(ctx, "tcp", target)
		}))
	}
	pc, err := made.ns.ListenPacket("udp", net.JoinHostPort(ControlPlaneIP, "53"))
	if err != nil {
		return nil, err
	}
	made.dns = serveClusterDNS(pc, c.Client, c.log)
	// kube-apiserver reconciles no endpoints here
	// (--endpoint-reconciler-type=none): the kubernetes Service leads to
	// its address on the cluster network, where pods reach it.
	if err = c.publishAPIServerEndpoint(ctx); err != nil {
		return nil, err
	}
	return made, nil
}

// enteredNetNS waits until process name has left this machine's network
// namespace (unshare -n, then exec) and opens its namespace.
func (c *Cluster) enteredNetNS(ctx context.Context, name string) (*netNS, error) {
	p := c.procs.get(name)
	if p == nil {
		return nil, fmt.Errorf("localcluster: %s is not running", name)
	}
	var ns *netNS
	err := c.poll(ctx, name+"'s network namespace", 10*time.Second, func() (bool, error) {
		if p.Exited() {
			return false, fmt.Errorf("localcluster: %s exited: %v", name, p.Err())
		}
		var err error
		ns, err = openNetNS(p.PID())
		return err == nil, nil
	})
	return ns, err
}

// publishAPIServerEndpoint makes default/kubernetes's EndpointSlice: the
// apiserver at ControlPlaneIP.
func (c *Cluster) publishAPIServerEndpoint(ctx context.Context) error {
	slice := &discoveryv1.EndpointSlice{
		ObjectMeta: metav1.ObjectMeta{Name: "kubernetes", Namespace: "default", Labels: map[string]string{
			discoveryv1.LabelServiceName: "kubernetes", discoveryv1.LabelManagedBy: "localcluster",
		}},
		AddressType: discoveryv1.AddressTypeIPv4,
		Endpoints:   []discoveryv1.Endpoint{{Addresses: []string{ControlPlaneIP}, Conditions: discoveryv1.EndpointConditions{Ready: ptr.To(true)}}},
		Ports:       []discoveryv1.EndpointPort{{Name: ptr.To("https"), Port: ptr.To(int32(c.ports["kube-apiserver"]))}},
	}
	_, err := c.Client.DiscoveryV1().EndpointSlices("default").Create(ctx, slice, metav1.CreateOptions{})
	if apierrors.IsAlreadyExists(err) {
		return nil
	}
	return err
}

// ListenClusterNetwork listens on port of ControlPlaneIP (0: any free
// one) in the cluster network, where nodes and pods reach it: a backend of
// the test's that a Service leads to (an EndpointSlice with that address).
func (c *Cluster) ListenClusterNetwork(port int) (net.Listener, error) {
	if c.network == nil {
		return nil, errors.New("localcluster: no cluster network (Kubelet.Runtime containerd)")
	}
	return c.network.ns.Listen("tcp", net.JoinHostPort(ControlPlaneIP, strconv.Itoa(port)))
}

// DialClusterNetwork dials addr (a node's or a pod's address) from the
// cluster network, as a client on the nodes' network would.
func (c *Cluster) DialClusterNetwork(ctx context.Context, network, addr string) (net.Conn, error) {
	if c.network == nil {
		return nil, errors.New("localcluster: no cluster network (Kubelet.Runtime containerd)")
	}
	return c.network.ns.DialContext(ctx, network, addr)
}

// attach puts node's namespace on the network: a veth pair, its end in
// the node named eth0.
func (cn *clusterNetwork) attach(index int, node *netNS) error {
	veth := "n" + strconv.Itoa(index)
	// The node's namespace by its descriptor (fd 4), not its holder's PID.
	args := []string{"ip", "link", "add", veth, "type", "veth", "peer", "name", "eth0", "netns", "/proc/self/fd/4"}
	if out, err := cn.ns.commandWith([]*netNS{node}, args...); err != nil {
		return fmt.Errorf("localcluster: %s: %w: %s", strings.Join(args, " "), err, out)
	}
	if err := cn.ns.ip("link", "set", veth, "master", clusterBridge, "up"); err != nil {
		return err
	}
	// Answers to the node's pods (DNS, the apiserver, a test's backend)
	// go back through the node.
	return cn.ns.ip("route", "add", podCIDR(index).String(), "via", nodeAddress(index), "dev", clusterBridge)
}

// Stop stops carrying and serving; the namespace goes with its holder.
// Once: a failed start stops what it made, and Down may come after.
func (cn *clusterNetwork) Stop() { cn.stopOnce.Do(cn.stop) }

func (cn *clusterNetwork) stop() {
	for _, f := range cn.forwarders {
		f.Close()
	}
	if cn.dns != nil {
		cn.dns.Close()
	}
	if cn.ns != nil {
		cn.ns.Close()
	}
	cn.c.procs.stop("cluster-network", 5*time.Second)
}
