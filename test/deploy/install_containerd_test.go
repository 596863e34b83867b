package deploy

import (
	"context"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"runtime"
	"sort"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/google/go-containerregistry/pkg/authn"
	"github.com/google/go-containerregistry/pkg/name"
	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/mutate"
	"github.com/google/go-containerregistry/pkg/v1/remote"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	corev1 "k8s.io/api/core/v1"
	discoveryv1 "k8s.io/api/discovery/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/util/intstr"
	"k8s.io/utils/ptr"

	"github.com/kubestitch/kubestitch/internal/fragment"
	"github.com/kubestitch/kubestitch/internal/ociimage"
	"github.com/kubestitch/kubestitch/localcluster"
	"github.com/kubestitch/kubestitch/test/otlpsink"
	"github.com/kubestitch/kubestitch/test/promtext"
	"github.com/kubestitch/kubestitch/test/shippedimage"
	"github.com/kubestitch/kubestitch/test/tracecheck"
)

// TestInstallOnContainerd installs the sharded overlay as a user does, on
// two real nodes (a kubelet, containerd, runc, CNI and kube-proxy each, in
// namespaces of their own): the image `make image` builds, pushed to the
// test bed's registry and set through kustomize's images: only, pulled by
// containerd; the manifests applied with Pod Security on; every pod run by
// runc as its securityContext says, with its ServiceAccount's token, its
// Services through kube-proxy and its names through the cluster's DNS. The
// nodes' kubelet and containerd export to their node's agent at
// 127.0.0.1:4317, kube-apiserver to the first node's, as
// deploy/control-plane ships them. Each pod's imageID must be the digest
// that was pushed; each Deployment's rollout one whole trace, with the
// kubelet's and containerd's spans, at exactly one gateway. Then each
// death of failover_test.go once, mid-rollout: the rollout in flight whole
// at the backend, the next ones whole at one gateway.
//
// KUBESTITCH_BREAK_IMAGE=entrypoint pushes the image with an entrypoint
// that does not exist: the test must then fail, naming the pods that
// cannot start.
func TestInstallOnContainerd(t *testing.T) {
	if testing.Short() {
		t.Skip("needs the local control plane; `make test` runs it")
	}
	in := startContainerdInstall(t)
	// Safe as shipped (trust finding 7): the rollouts came through the
	// agents' mutual TLS, under the NetworkPolicy; a sender on the
	// cluster network without the install's client certificate is refused.
	gatewayRefusesStrangers(t, in.cluster, in.pods)

	// Each death once, mid-rollout (failover_test.go); make failover-test
	// runs them 10 times.
	for _, r := range in.deaths(t, 1) {
		t.Logf("failover: %s", r)
	}
	logNodeMemory(t, in.cluster)

	// An agent that cannot watch says so.
	agentWithoutRBACGoesUnready(t, in.cluster, in.metrics)
}

// containerdInstall is the sharded overlay installed on two real nodes,
// with a 3-replica Deployment in each of 3 namespaces, each rollout whole
// at the gateway that owns its namespace.
type containerdInstall struct {
	cluster    *localcluster.Cluster
	be         *backends
	metrics    func(*corev1.Pod) (promtext.Samples, error)
	pods       []corev1.Pod
	namespaces []string
	// owner is the gateway of each namespace's last whole rollout.
	owner  map[string]string
	images []string
	gen    map[string]int
}

// startContainerdInstall installs the sharded overlay as a user does, on
// two real nodes, and checks every pod of it runs as shipped; then
// deploys the workloads and checks their first rollouts.
func startContainerdInstall(t *testing.T) *containerdInstall {
	if err := localcluster.ContainerdUsable(); err != nil {
		t.Fatalf("the install runs on real nodes: %v", err)
	}
	ctx := t.Context()
	layout := shippedimage.Build(t, "linux/"+runtime.GOARCH)
	cluster := localcluster.Start(t, localcluster.Options{
		Nodes: -1, Log: localcluster.TestLog(t),
		Kubelet: &localcluster.KubeletOptions{Runtime: localcluster.RuntimeContainerd, Nodes: 2, NodeAgentTracing: true},
	})
	t.Cleanup(func() {
		if t.Failed() {
			logInstallPods(t, cluster)
		}
	})
	image := pushShippedImage(t, cluster, layout)
	t.Logf("the image as pushed: %s", image)

	be := &backends{t: t, sinks: map[string]*otlpsink.Sink{}}
	serveBackend(t, cluster, be)
	objs := withPlaintextBackend(t, buildWithImage(t, "sharded", image))
	apply(t, cluster.RESTConfig, append(objs, installSecrets(t)...))
	metrics := podMetricsClient(cluster)

	// Every pod of the install runs, ready, as its own ServiceAccount, from
	// the pushed digest; one agent per node.
	_, digest, _ := strings.Cut(image, "@")
	// Polled here, not in require.Eventually: a pod that cannot start
	// fails the test at once, naming it.
	var install []corev1.Pod
	for deadline := time.Now().Add(4 * time.Minute); ; time.Sleep(time.Second) {
		install = installPods(t, cluster)
		if stuck := unstartable(install); len(stuck) > 0 {
			t.Fatalf("pods of the install cannot start:\n  %s", strings.Join(stuck, "\n  "))
		}
		agents, gateways := 0, 0
		for _, p := range install {
			if installPodReady(&p) && p.Namespace == "kubestitch-node" {
				agents++
			} else if installPodReady(&p) {
				gateways++
			}
		}
		if agents == 2 && gateways == 3 && len(install) == 5 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("an agent on each real node and 3 gateways run and are ready: not after 4m (%d agents, %d gateways ready)", agents, gateways)
		}
	}
	agentNodes := map[string]bool{}
	for _, p := range install {
		want := map[string]string{"kubestitch-node": "kubestitch-agent", "kubestitch": "kubestitch-gateway"}[p.Namespace]
		assert.Equal(t, want, p.Spec.ServiceAccountName, "%s/%s", p.Namespace, p.Name)
		for _, cs := range p.Status.ContainerStatuses {
			assert.True(t, strings.HasSuffix(cs.ImageID, "@"+digest), "%s/%s runs %s, not the pushed digest %s", p.Namespace, p.Name, cs.ImageID, digest)
		}
		if p.Namespace == "kubestitch-node" {
			agentNodes[p.Spec.NodeName] = true
		}
	}
	assert.ElementsMatch(t, cluster.KubeletNodes, keys(agentNodes), "one agent per node")
	require.Eventually(t, func() bool {
		l, err := cluster.Client.CoordinationV1().Leases("kubestitch").Get(ctx, "kubestitch-k8swatch", metav1.GetOptions{})
		return err == nil && l.Spec.HolderIdentity != nil
	}, time.Minute, 200*time.Millisecond, "a gateway takes the k8swatch Lease, with its own ServiceAccount's permissions")
	waitRing(t, cluster, metrics, "every load-balancing exporter has the 3 gateways in its ring")
	// Spans sent before a ring resolved waited in the queue and were
	// routed again (#33): none was rejected on the way up.
	for _, p := range installPods(t, cluster) {
		s, err := metrics(&p)
		require.NoError(t, err)
		for _, name := range []string{"otelcol_exporter_send_failed_spans", "otelcol_exporter_enqueue_failed_spans"} {
			assert.Zero(t, sum(s.Values(name, "exporter", "loadbalancing")), "%s/%s: %s", p.Namespace, p.Name, name)
		}
	}

	// Workloads on both nodes, their rollouts each whole at one gateway,
	// with the nodes' own lanes.
	in := &containerdInstall{
		cluster: cluster, be: be, metrics: metrics, pods: install,
		namespaces: []string{"team-1", "team-2", "team-3"}, owner: map[string]string{},
		images: []string{cluster.DemoImage, pushVariant(t, cluster, cluster.DemoImage, "v2")}, gen: map[string]int{},
	}
	for _, ns := range in.namespaces {
		_, err := cluster.Client.CoreV1().Namespaces().Create(ctx, &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: ns}}, metav1.CreateOptions{})
		require.NoError(t, err)
		deployWebImage(t, cluster, ns, 3, cluster.DemoImage)
	}
	for _, ns := range in.namespaces {
		in.owner[ns] = wholeAtOneGateway(t, be, ns, "gen:1", 3, "")
		// The nodes' lanes: containerd's spans come a batch later than
		// the kubelet's CRI client spans they hang under.
		assert.Eventually(t, func() bool {
			tr := be.find(fragment.PhaseDeploymentRollout, "Deployment "+ns+"/web", "gen:1")[in.owner[ns]]
			return tr != nil && tracecheck.CountService(tr, "kubelet") > 0 && tracecheck.CountService(tr, "containerd") > 0
		}, 30*time.Second, time.Second, "%s: the kubelet's and containerd's spans in the rollout's trace", ns)
	}
	t.Logf("namespace -> gateway: %v", in.owner)
	return in
}

// logNodeMemory logs the resident memory (now, peak) of each real node's
// components and of each collector of the install: what a real node and
// the install cost.
func logNodeMemory(t *testing.T, cluster *localcluster.Cluster) {
	var lines []string
	for name, pid := range cluster.PIDs() {
		if strings.HasPrefix(name, "kubelet") || strings.HasPrefix(name, "containerd") || strings.HasPrefix(name, "kube-proxy") {
			lines = append(lines, fmt.Sprintf("%s: %s", name, rss(pid)))
		}
	}
	for _, p := range installPods(t, cluster) {
		lines = append(lines, fmt.Sprintf("%s/%s (%s): %s", p.Namespace, p.Name, p.Spec.NodeName, rss(findContainerPID(&p, "--config=/conf/"))))
	}
	sort.Strings(lines)
	t.Logf("memory (RSS now, peak):\n  %s", strings.Join(lines, "\n  "))
}

// rss is a process's resident set, now and at its peak.
func rss(pid int) string {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		return err.Error()
	}
	var now, peak string
	for _, line := range strings.Split(string(b), "\n") {
		if v, ok := strings.CutPrefix(line, "VmRSS:"); ok {
			now = strings.TrimSpace(v)
		}
		if v, ok := strings.CutPrefix(line, "VmHWM:"); ok {
			peak = strings.TrimSpace(v)
		}
	}
	return now + ", peak " + peak
}

// pushShippedImage pushes the image layout (kubestitch-release image's)
// to the test bed's registry, broken first if KUBESTITCH_BREAK_IMAGE says
// so, and returns its reference by digest.
func pushShippedImage(t *testing.T, cluster *localcluster.Cluster, layout string) string {
	t.Helper()
	ref := cluster.Registry.Host + "/kubestitch/otelcol-kubestitch:test"
	repo, _, _ := strings.Cut(ref, ":test")
	// Anonymous: the test bed's registry, never the developer's
	// credential helpers.
	pushed, err := ociimage.Push(layout, ref, remote.WithAuth(authn.Anonymous))
	require.NoError(t, err, "pushing the image")
	image := repo + "@" + pushed.Digest.String()
	if os.Getenv("KUBESTITCH_BREAK_IMAGE") == "entrypoint" {
		image = pushVariant(t, cluster, image, "broken", func(cf *v1.ConfigFile) { cf.Config.Entrypoint = []string{"/otelcol-missing"} })
		t.Logf("KUBESTITCH_BREAK_IMAGE=entrypoint: the image's entrypoint is /otelcol-missing")
	}
	return image
}

// pushVariant pushes ref's image (for this machine's platform) changed by
// edits (none: a label only, a new digest) under tag, and returns the
// variant's reference by digest.
func pushVariant(t *testing.T, cluster *localcluster.Cluster, ref, tag string, edits ...func(*v1.ConfigFile)) string {
	t.Helper()
	r, err := name.ParseReference(ref)
	require.NoError(t, err)
	img, err := remote.Image(r, remote.WithPlatform(v1.Platform{OS: "linux", Architecture: runtime.GOARCH}), remote.WithAuth(authn.Anonymous))
	require.NoError(t, err)
	cf, err := img.ConfigFile()
	require.NoError(t, err)
	cf = cf.DeepCopy()
	if cf.Config.Labels == nil {
		cf.Config.Labels = map[string]string{}
	}
	cf.Config.Labels["kubestitch.test/variant"] = tag
	for _, edit := range edits {
		edit(cf)
	}
	variant, err := mutate.ConfigFile(img, cf)
	require.NoError(t, err)
	out, err := cluster.Registry.Push(t.Context(), r.Context().Name()+":"+tag, variant)
	require.NoError(t, err)
	return r.Context().Name() + out[strings.Index(out, "@"):]
}

// buildWithImage is the overlay as a user installs it with their own
// registry: a kustomization of theirs on top of it whose images: sets the
// image's name and digest, nothing else.
func buildWithImage(t *testing.T, overlay, image string) []*unstructured.Unstructured {
	t.Helper()
	root, err := localcluster.RepoRoot()
	require.NoError(t, err)
	dir := t.TempDir()
	rel, err := filepath.Rel(dir, filepath.Join(root, "deploy", "overlays", overlay))
	require.NoError(t, err)
	repo, digest, _ := strings.Cut(image, "@")
	k := fmt.Sprintf(`apiVersion: kustomize.config.k8s.io/v1beta1
kind: Kustomization
resources: [%s]
images:
  - name: ghcr.io/kubestitch/otelcol-kubestitch
    newName: %s
    digest: %s
`, rel, repo, digest)
	require.NoError(t, os.WriteFile(filepath.Join(dir, "kustomization.yaml"), []byte(k), 0o644))
	objs := buildDir(t, dir)
	for _, o := range objs {
		if o.GetKind() == "Deployment" || o.GetKind() == "DaemonSet" {
			cs, _, _ := unstructured.NestedSlice(o.Object, "spec", "template", "spec", "containers")
			for _, c := range cs {
				require.Equal(t, image, c.(map[string]any)["image"], "%s %s", o.GetKind(), o.GetName())
			}
		}
	}
	return objs
}

// serveBackend is the gateways' backend (tempo.observability.svc:4317 in
// the shipped env): a Service without selector whose EndpointSlice leads
// to a listener of the test's on the cluster network. Each connection is
// handed to the sink of the gateway pod it comes from (by its pod IP,
// which kube-proxy keeps: no masquerading inside the cluster CIDR).
func serveBackend(t *testing.T, cluster *localcluster.Cluster, be *backends) {
	t.Helper()
	ctx := t.Context()
	l, err := cluster.ListenClusterNetwork(0)
	require.NoError(t, err)
	t.Cleanup(func() { l.Close() })
	acceptEach(l, func(c net.Conn) {
		ip, _, _ := net.SplitHostPort(c.RemoteAddr().String())
		// A gateway can connect before the kubelet has written its
		// pod IP into the pod's status.
		pod := podByIP(cluster, ip)
		for deadline := time.Now().Add(30 * time.Second); pod == "" && time.Now().Before(deadline); time.Sleep(200 * time.Millisecond) {
			pod = podByIP(cluster, ip)
		}
		if pod == "" {
			pod = "unknown " + ip
		}
		var d net.Dialer
		up, err := d.DialContext(ctx, "tcp", be.endpoint(pod))
		if err != nil {
			return
		}
		defer up.Close()
		done := make(chan struct{}, 2)
		go func() { io.Copy(up, c); done <- struct{}{} }() //nolint:errcheck
		go func() { io.Copy(c, up); done <- struct{}{} }() //nolint:errcheck
		<-done
	})
	_, port, _ := net.SplitHostPort(l.Addr().String())
	p, _ := strconv.Atoi(port)
	_, err = cluster.Client.CoreV1().Namespaces().Create(ctx, &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: "observability"}}, metav1.CreateOptions{})
	require.NoError(t, err)
	_, err = cluster.Client.CoreV1().Services("observability").Create(ctx, &corev1.Service{
		ObjectMeta: metav1.ObjectMeta{Name: "tempo"},
		Spec:       corev1.ServiceSpec{Ports: []corev1.ServicePort{{Name: "otlp-grpc", Port: 4317, TargetPort: intstr.FromInt32(int32(p))}}},
	}, metav1.CreateOptions{})
	require.NoError(t, err)
	_, err = cluster.Client.DiscoveryV1().EndpointSlices("observability").Create(ctx, &discoveryv1.EndpointSlice{
		ObjectMeta:  metav1.ObjectMeta{Name: "tempo", Labels: map[string]string{discoveryv1.LabelServiceName: "tempo"}},
		AddressType: discoveryv1.AddressTypeIPv4,
		Endpoints:   []discoveryv1.Endpoint{{Addresses: []string{localcluster.ControlPlaneIP}, Conditions: discoveryv1.EndpointConditions{Ready: ptr.To(true)}}},
		Ports:       []discoveryv1.EndpointPort{{Name: ptr.To("otlp-grpc"), Port: ptr.To(int32(p))}},
	}, metav1.CreateOptions{})
	require.NoError(t, err)
}

// podByIP names the install's pod with that IP ("" for none yet).
func podByIP(cluster *localcluster.Cluster, ip string) string {
	pods, err := cluster.Client.CoreV1().Pods("kubestitch").List(context.Background(), metav1.ListOptions{})
	if err != nil {
		return ""
	}
	for _, p := range pods.Items {
		if p.Status.PodIP == ip {
			return p.Name
		}
	}
	return ""
}

// installPods are the install's pods, agents and gateways; on an API
// error, those read so far (callers poll).
func installPods(t *testing.T, cluster *localcluster.Cluster) []corev1.Pod {
	var out []corev1.Pod
	for _, ns := range []string{"kubestitch-node", "kubestitch"} {
		pods, err := cluster.Client.CoreV1().Pods(ns).List(context.Background(), metav1.ListOptions{LabelSelector: "app.kubernetes.io/name=kubestitch"})
		if err != nil {
			t.Logf("listing the install's pods: %v", err)
			return out
		}
		out = append(out, pods.Items...)
	}
	return out
}

// podMetricsClient reads the pods' own telemetry from the cluster
// network, as a Prometheus on the nodes' network would.
func podMetricsClient(cluster *localcluster.Cluster) func(p *corev1.Pod) (promtext.Samples, error) {
	hc := &http.Client{Timeout: 5 * time.Second, Transport: &http.Transport{DialContext: cluster.DialClusterNetwork}}
	return func(p *corev1.Pod) (promtext.Samples, error) {
		port := gatewayMetricsPort
		if p.Namespace == "kubestitch-node" {
			port = agentMetricsPort
		}
		resp, err := hc.Get("http://" + net.JoinHostPort(p.Status.PodIP, strconv.Itoa(port)) + "/metrics")
		if err != nil {
			return nil, err
		}
		defer resp.Body.Close()
		body, err := io.ReadAll(resp.Body)
		if err != nil {
			return nil, err
		}
		return promtext.Parse(string(body))
	}
}

// waitRing waits until every pod's load-balancing exporter has the 3
// gateways.
func waitRing(t *testing.T, cluster *localcluster.Cluster, metrics func(*corev1.Pod) (promtext.Samples, error), what string) {
	t.Helper()
	require.Eventually(t, func() bool {
		for _, p := range installPods(t, cluster) {
			s, err := metrics(&p)
			if err != nil {
				return false
			}
			if vs := s.Values("otelcol_loadbalancer_num_backends"); len(vs) == 0 || vs[0] != 3 {
				return false
			}
		}
		return true
	}, 2*time.Minute, time.Second, what)
}

// containerPID is the process of pod's container whose command line has
// arg: found by the pod's cgroup (the kubelet's cgroupfs driver names it
// pod<UID>).
func containerPID(t *testing.T, pod *corev1.Pod, arg string) int {
	t.Helper()
	pid := findContainerPID(pod, arg)
	if pid == 0 {
		t.Fatalf("no process of pod %s with %q", pod.Name, arg)
	}
	return pid
}

// findContainerPID is containerPID's search: 0 for none.
func findContainerPID(pod *corev1.Pod, arg string) int {
	entries, _ := os.ReadDir("/proc")
	for _, e := range entries {
		pid, err := strconv.Atoi(e.Name())
		if err != nil {
			continue
		}
		cg, err1 := os.ReadFile(filepath.Join("/proc", e.Name(), "cgroup"))
		cmd, err2 := os.ReadFile(filepath.Join("/proc", e.Name(), "cmdline"))
		if err1 == nil && err2 == nil && strings.Contains(string(cg), "/pod"+string(pod.UID)+"/") && strings.Contains(string(cmd), arg) {
			return pid
		}
	}
	return 0
}

// unstartable names the pods of the install that cannot start: a
// container waiting for a reason that repeats (an image that cannot be
// pulled, an entrypoint that cannot run) after two tries.
func unstartable(pods []corev1.Pod) []string {
	var stuck []string
	for _, p := range pods {
		for _, cs := range p.Status.ContainerStatuses {
			w := cs.State.Waiting
			if w == nil {
				continue
			}
			switch {
			case w.Reason == "ErrImagePull" || w.Reason == "ImagePullBackOff" || w.Reason == "InvalidImageName":
				stuck = append(stuck, fmt.Sprintf("%s/%s: %s (%s)", p.Namespace, p.Name, w.Reason, w.Message))
			case cs.RestartCount >= 2 && w.Reason != "ContainerCreating":
				msg := w.Message
				if term := cs.LastTerminationState.Terminated; term != nil {
					msg = term.Reason + ": " + term.Message
				}
				stuck = append(stuck, fmt.Sprintf("%s/%s: %s after %d restarts (%s)", p.Namespace, p.Name, w.Reason, cs.RestartCount, msg))
			}
		}
	}
	return stuck
}

// logInstallPods logs why the install's pods are not running.
func logInstallPods(t *testing.T, cluster *localcluster.Cluster) {
	for _, p := range installPods(t, cluster) {
		var states []string
		for _, cs := range p.Status.ContainerStatuses {
			states = append(states, fmt.Sprintf("%s ready=%v restarts=%d waiting=%v terminated=%v", cs.Name, cs.Ready, cs.RestartCount, cs.State.Waiting, cs.State.Terminated))
		}
		t.Logf("%s/%s on %s: %s %v", p.Namespace, p.Name, p.Spec.NodeName, p.Status.Phase, states)
	}
	events, err := cluster.Client.CoreV1().Events("").List(context.Background(), metav1.ListOptions{})
	if err == nil {
		for _, e := range events.Items {
			if e.Type == corev1.EventTypeWarning {
				t.Logf("event %s/%s %s: %s %s", e.Namespace, e.InvolvedObject.Name, e.InvolvedObject.Kind, e.Reason, e.Message)
			}
		}
	}
	logs, _ := filepath.Glob(filepath.Join(cluster.Dir, "kubelet*", "pod-logs", "kubestitch*", "*", "*.log"))
	for _, l := range logs {
		t.Logf("%s:\n%s", strings.TrimPrefix(l, cluster.Dir), localcluster.LogTail(l, 30))
	}
	t.Logf("node logs:%s", cluster.LogTails(40, "kubelet", "containerd", "kube-proxy", "kubelet-1", "containerd-1", "kube-proxy-1"))
}

func installPodReady(p *corev1.Pod) bool {
	for _, c := range p.Status.Conditions {
		if c.Type == corev1.PodReady {
			return c.Status == corev1.ConditionTrue
		}
	}
	return false
}
