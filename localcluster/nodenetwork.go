package localcluster

import (
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"os/exec"
	"regexp"
	"strings"
)

// nodeNetwork is a real node's pod network: a bridge of its own with the
// node's pod CIDR, made before containerd starts, which CNI's bridge
// plugin attaches each pod's veth to and host-local gives addresses from.
// The bridge holds the CIDR's first address, so the kubelet reaches its
// pods (probes); pods get no default route, no masquerading and no IP
// forwarding is turned on, so a pod reaches its node and the node's other
// pods and nothing else: no traffic leaves the machine.
type nodeNetwork struct {
	bridge string
	cidr   *net.IPNet
	// gateway is the bridge's address, the CIDR's first.
	gateway net.IP
}

// bridgePattern matches the bridges real nodes make: "kst" and the run's
// 8 hex digits, within the 15 characters of an interface name.
var bridgePattern = regexp.MustCompile(`^kst([0-9a-f]{8})n[0-9]+$`)

// newNodeNetwork is node index's network in the run id: the first
// 10.244.N.0/24 from N = index on that overlaps no route of the machine's
// (a CI runner may itself be a pod in 10.244.0.0/16), as
// kube-controller-manager would allocate a pod CIDR.
func newNodeNetwork(id string, index int) (nodeNetwork, error) {
	routes := machineRoutes()
	for n := index; n < 256; n++ {
		_, cidr, _ := net.ParseCIDR(fmt.Sprintf("10.244.%d.0/24", n))
		if overlapsAny(cidr, routes) {
			continue
		}
		gw := make(net.IP, 4)
		copy(gw, cidr.IP.To4())
		gw[3] = 1
		return nodeNetwork{bridge: fmt.Sprintf("kst%sn%d", id, index), cidr: cidr, gateway: gw}, nil
	}
	return nodeNetwork{}, errors.New("localcluster: every 10.244.N.0/24 overlaps a route of this machine")
}

// machineRoutes are the IPv4 destinations of the machine's routes (the
// default route aside) and of its addresses.
func machineRoutes() []*net.IPNet {
	var out []*net.IPNet
	b, _ := exec.Command("ip", "-o", "-4", "route", "show", "table", "all").Output()
	for _, line := range strings.Split(string(b), "\n") {
		f := strings.Fields(line)
		if len(f) == 0 {
			continue
		}
		dst := f[0]
		if dst == "broadcast" || dst == "local" || dst == "unicast" {
			if len(f) < 2 {
				continue
			}
			dst = f[1]
		}
		if !strings.Contains(dst, "/") {
			dst += "/32"
		}
		if _, n, err := net.ParseCIDR(dst); err == nil && !n.IP.IsUnspecified() {
			out = append(out, n)
		}
	}
	return out
}

func overlapsAny(cidr *net.IPNet, routes []*net.IPNet) bool {
	for _, r := range routes {
		if r.Contains(cidr.IP) || cidr.Contains(r.IP) {
			return true
		}
	}
	return false
}

// up makes the bridge with the gateway address.
func (n nodeNetwork) up() error {
	ones, _ := n.cidr.Mask.Size()
	for _, args := range [][]string{
		{"link", "add", n.bridge, "type", "bridge"},
		{"addr", "add", fmt.Sprintf("%s/%d", n.gateway, ones), "dev", n.bridge},
		{"link", "set", n.bridge, "up"},
	} {
		if out, err := exec.Command("ip", args...).CombinedOutput(); err != nil {
			return fmt.Errorf("localcluster: ip %s: %w: %s", strings.Join(args, " "), err, out)
		}
	}
	return nil
}

// down deletes the bridge, and any veth still attached to it.
func (n nodeNetwork) down() error {
	return deleteBridge(n.bridge)
}

func deleteBridge(name string) error {
	if _, err := net.InterfaceByName(name); err != nil {
		return nil // never made, or gone
	}
	out, _ := exec.Command("ip", "-o", "link", "show", "master", name).Output()
	for _, line := range strings.Split(string(out), "\n") {
		// "12: veth1234@if3: <...> ..."
		if f := strings.Fields(line); len(f) > 1 {
			dev, _, _ := strings.Cut(strings.TrimSuffix(f[1], ":"), "@")
			_ = exec.Command("ip", "link", "del", dev).Run()
		}
	}
	if out, err := exec.Command("ip", "link", "del", name).CombinedOutput(); err != nil {
		return fmt.Errorf("ip link del %s: %w: %s", name, err, out)
	}
	return nil
}

// sweepStaleBridges deletes the bridges of real nodes of killed runs.
func sweepStaleBridges(log io.Writer) {
	ifs, _ := net.Interfaces()
	for _, i := range ifs {
		if m := bridgePattern.FindStringSubmatch(i.Name); m != nil && staleNodeID(m[1]) {
			fmt.Fprintf(log, "localcluster: removing bridge %s, left by a killed run\n", i.Name)
			if err := deleteBridge(i.Name); err != nil {
				fmt.Fprintf(log, "localcluster: %v\n", err)
			}
		}
	}
}

// conflist is the CNI network containerd reads: bridge (no gateway, no
// masquerade) with host-local addresses, then portmap for hostPorts.
func (n nodeNetwork) conflist() []byte {
	first := make(net.IP, 4)
	copy(first, n.cidr.IP.To4())
	first[3] = 2
	conf := map[string]any{
		"cniVersion": "1.0.0",
		"name":       "kubestitch",
		"plugins": []any{
			map[string]any{
				"type": "bridge", "bridge": n.bridge,
				"isGateway": false, "ipMasq": false, "hairpinMode": true,
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
