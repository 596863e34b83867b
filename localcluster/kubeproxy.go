package localcluster

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"time"
)

// startKubeProxy runs kube-proxy (iptables mode) in a containerd node's
// namespaces, so that its rules and sysctls are the node's and go with
// it. It leaves the machine-wide conntrack settings alone (0: keep), as
// a node that shares its kernel must.
func (c *Cluster) startKubeProxy(ctx context.Context, n *containerdNode) error {
	name := "kube-proxy" + n.suffix
	if err := c.pki.issue(name, "system:kube-proxy", nil, false); err != nil {
		return err
	}
	kc, err := c.pki.kubeconfig(name, fmt.Sprintf("https://%s:%d", ControlPlaneIP, c.ports["kube-apiserver"]))
	if err != nil {
		return err
	}
	cfg := filepath.Join(filepath.Dir(n.dir), "kube-proxy.yaml")
	body := fmt.Sprintf(`apiVersion: kubeproxy.config.k8s.io/v1alpha1
kind: KubeProxyConfiguration
clientConnection: {kubeconfig: %s}
hostnameOverride: %s
mode: iptables
clusterCIDR: %s
healthzBindAddress: 127.0.0.1:10256
metricsBindAddress: 127.0.0.1:10249
conntrack:
  maxPerCore: 0
  min: 0
  tcpEstablishedTimeout: 0s
  tcpCloseWaitTimeout: 0s
  udpTimeout: 0s
  udpStreamTimeout: 0s
iptables: {syncPeriod: 30s, minSyncPeriod: 0s}
`, kc, n.name, clusterCIDR)
	if err := os.WriteFile(cfg, []byte(body), 0o644); err != nil {
		return err
	}
	if err := c.run(name, "nsenter", n.enter(c.bins.KubeProxy, "--config="+cfg)...); err != nil {
		return err
	}
	return c.waitHTTPIn(ctx, n.netns, name, "http://127.0.0.1:10256/healthz", 60*time.Second)
}
