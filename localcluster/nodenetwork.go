package localcluster

import (
	"encoding/json"
	"fmt"
	"net"
)

// nodeNetwork is a real node's network, in the node's own network
// namespace (where its kubelet, containerd, kube-proxy and host-network
// pods run): eth0 on the cluster network with the node's address, and a
// bridge with the node's pod CIDR that CNI's bridge plugin attaches each
// pod's veth to and host-local gives addresses from. The node routes
// between the two (its own ip_forward), and to the other nodes' pod
// CIDRs through their addresses, as a cluster's pod network would. The
// namespace has no default route: a packet for anything but the test
// bed's addresses is dropped there.
type nodeNetwork struct {
	index int
	// ip is the node's address on the cluster network.
	ip   string
	cidr *net.IPNet
	// gateway is the pod bridge's address, the CIDR's first: the pods'
	// default route.
	gateway net.IP
}

// podBridge is the bridge of a node's pods, in the node's namespace.
const podBridge = "pods"

// podCIDR is real node index's pod CIDR, as kube-controller-manager
// would allocate it from clusterCIDR.
func podCIDR(index int) *net.IPNet {
	_, cidr, _ := net.ParseCIDR(fmt.Sprintf("10.244.%d.0/24", index))
	return cidr
}

func newNodeNetwork(index int) nodeNetwork {
	cidr := podCIDR(index)
	gw := make(net.IP, 4)
	copy(gw, cidr.IP.To4())
	gw[3] = 1
	return nodeNetwork{index: index, ip: nodeAddress(index), cidr: cidr, gateway: gw}
}

// up configures the node's namespace, attached to the cluster network,
// for a cluster of nodes real nodes.
func (n nodeNetwork) up(ns *netNS, cn *clusterNetwork, nodes int) error {
	if err := cn.attach(n.index, ns); err != nil {
		return err
	}
	ones, _ := n.cidr.Mask.Size()
	steps := [][]string{
		{"link", "set", "lo", "up"},
		{"addr", "add", n.ip + "/24", "dev", "eth0"},
		{"link", "set", "eth0", "up"},
		{"link", "add", podBridge, "type", "bridge"},
		{"addr", "add", fmt.Sprintf("%s/%d", n.gateway, ones), "dev", podBridge},
		{"link", "set", podBridge, "up"},
		// A ClusterIP must route somewhere for kube-proxy's DNAT (in
		// OUTPUT, for host-network pods) to apply: to the pod bridge,
		// where a packet for no Service ends.
		{"route", "add", serviceCIDR, "dev", podBridge},
	}
	for j := 0; j < nodes; j++ {
		if j != n.index {
			steps = append(steps, []string{"route", "add", podCIDR(j).String(), "via", nodeAddress(j), "dev", "eth0"})
		}
	}
	for _, args := range steps {
		if err := ns.ip(args...); err != nil {
			return err
		}
	}
	return ns.sysctl("net/ipv4/ip_forward", "1")
}

// conflist is the CNI network containerd reads: bridge (the pods' default
// route through the node, no masquerade) with host-local addresses, then
// portmap for hostPorts.
func (n nodeNetwork) conflist() []byte {
	first := make(net.IP, 4)
	copy(first, n.cidr.IP.To4())
	first[3] = 2
	conf := map[string]any{
		"cniVersion": "1.0.0",
		"name":       "kubestitch",
		"plugins": []any{
			map[string]any{
				"type": "bridge", "bridge": podBridge,
				"isDefaultGateway": true, "ipMasq": false, "hairpinMode": true,
				"ipam": map[string]any{
					"type":   "host-local",
					"ranges": [][]map[string]string{{{"subnet": n.cidr.String(), "rangeStart": first.String()}}},
				},
			},
			map[string]any{"type": "portmap", "capabilities": map[string]bool{"portMappings": true}},
		},
	}
	b, _ := json.MarshalIndent(conf, "", "  ")
	return b
}
