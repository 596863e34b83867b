package localcluster

import (
	"bytes"
	"context"
	"crypto/tls"
	"fmt"
	"os"
	"path/filepath"
	"time"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/resource"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/tools/clientcmd"
)

// The control plane's components, each started with its flags and waited for.

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
	admission, err := c.webhookAdmissionConfig()
	if err != nil {
		return err
	}
	args = append(args, "--admission-control-config-file="+admission)
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
