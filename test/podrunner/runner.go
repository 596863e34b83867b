// Package podrunner runs the pods of an install as processes, as a kubelet
// would run their containers, so that a test exercises what a user
// installs: each pod in a network namespace of its own (its node's for
// host-network pods), its root the unpacked image under an overlay of its
// own with its volumes mounted over it (read-only when the pod says so),
// its command the image's entrypoint and its container's args, as the user
// and groups its securityContext names (else the image's USER), with its
// env (fieldRefs resolved from the pod object) and its ServiceAccount's
// identity: a token from the TokenRequest API bound to the pod, where
// client-go's in-cluster config looks for it. A missing RBAC permission
// fails as it would in the cluster.
//
// It needs root (namespaces and mounts), overlayfs, iproute2's ip,
// iptables and coreutils' chroot. Nothing it starts can reach the machine's network: each
// namespace has only a loopback device, and the runner carries every
// connection between namespaces itself (see network.go).
package podrunner

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"sync"
	"syscall"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/client-go/kubernetes"
)

// Options of a Runner.
type Options struct {
	// Image is what every container runs: an unpacked container image.
	Image Image
	// Namespaces and Selector choose the pods to run.
	Namespaces []string
	Selector   string
	// Backends lead a Service ("namespace/name") to a host address on
	// loopback, chosen by the name of the pod that connects.
	Backends map[string]func(pod string) string
	// Dir holds each pod's files; it must exist.
	Dir string
	// Log receives what the runner does.
	Log io.Writer
	// StartAfter, if set, holds a pod back until that long after Start:
	// to test an order of start-up (nodes' agents before the gateways).
	StartAfter func(*corev1.Pod) time.Duration
}

// Image is an unpacked container image: its root file system, and what its
// config says to run and as whom.
type Image struct {
	// RootFS is the image's layers unpacked, in order. Each container
	// gets it as the lower layer of an overlay of its own, as a runtime
	// does: its writes (unless its root is read-only) stay its own.
	RootFS string
	// Entrypoint and Cmd run when the container says no command (its args
	// replace Cmd), as the image's ENTRYPOINT and CMD.
	Entrypoint, Cmd []string
	// User is the image's USER, "uid[:gid]" (numeric), used when the pod
	// names no runAsUser.
	User string
	// Env is the image's environment, under the container's. (The
	// container runs in /: the image's WorkingDir is not read.)
	Env []string
}

// Runner runs pods. Its methods are safe for concurrent use.
type Runner struct {
	opts      Options
	client    kubernetes.Interface
	apiServer string

	mu      sync.Mutex
	pods    map[types.UID]*Pod
	nodes   map[string]*netns // host networks
	owner   map[*netns]*Pod
	state   *clusterState
	next    int
	errs    []error
	cancel  context.CancelFunc
	done    chan struct{}
	started time.Time
	hostLs  []net.Listener
}

// New makes a runner; Start attaches it to a cluster.
func New(opts Options) *Runner {
	return &Runner{opts: opts, pods: map[types.UID]*Pod{}, nodes: map[string]*netns{}, owner: map[*netns]*Pod{}, state: &clusterState{}}
}

// NodeEndpoint is a host loopback address that leads to port on node's
// 127.0.0.1, where a host-network pod of that node listens: what the
// node's own components (kube-apiserver, the kubelet) export to.
func (r *Runner) NodeEndpoint(node string, port int) (string, error) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return "", err
	}
	r.mu.Lock()
	r.hostLs = append(r.hostLs, l)
	r.mu.Unlock()
	go acceptEach(l, func(c net.Conn) {
		defer c.Close()
		r.mu.Lock()
		ns := r.nodes[node]
		r.mu.Unlock()
		if ns == nil {
			return
		}
		up, err := ns.dial(fmt.Sprintf("127.0.0.1:%d", port))
		if err != nil {
			return
		}
		defer up.Close()
		pipe(c, up)
	})
	return l.Addr().String(), nil
}

// Start runs the chosen pods as they appear (and stops those deleted)
// until Stop. apiServer is kube-apiserver's host:port on loopback.
func (r *Runner) Start(client kubernetes.Interface, apiServer string) {
	ctx, cancel := context.WithCancel(context.Background())
	r.client, r.apiServer, r.cancel, r.done, r.started = client, apiServer, cancel, make(chan struct{}), time.Now()
	go func() {
		defer close(r.done)
		for {
			if err := r.sync(ctx); err != nil && ctx.Err() == nil {
				r.fail(err)
			}
			select {
			case <-ctx.Done():
				return
			case <-time.After(300 * time.Millisecond):
			}
		}
	}()
}

// Err is what went wrong so far: a pod that could not start, or a
// container that exited without being told to.
func (r *Runner) Err() error {
	r.mu.Lock()
	defer r.mu.Unlock()
	return errors.Join(r.errs...)
}

func (r *Runner) fail(err error) {
	r.mu.Lock()
	defer r.mu.Unlock()
	for _, e := range r.errs {
		if e.Error() == err.Error() {
			return
		}
	}
	r.errs = append(r.errs, err)
	r.logf("%v", err)
}

func (r *Runner) logf(format string, args ...any) {
	if r.opts.Log != nil {
		fmt.Fprintf(r.opts.Log, "podrunner: "+format+"\n", args...)
	}
}

// Pods are the running pods.
func (r *Runner) Pods() []*Pod {
	r.mu.Lock()
	defer r.mu.Unlock()
	var out []*Pod
	for _, p := range r.pods {
		if !p.exited() {
			out = append(out, p)
		}
	}
	return out
}

// sync starts the pods that are new, stops the deleted, and refreshes the
// network.
func (r *Runner) sync(ctx context.Context) error {
	var want []corev1.Pod
	for _, ns := range r.opts.Namespaces {
		l, err := r.client.CoreV1().Pods(ns).List(ctx, metav1.ListOptions{LabelSelector: r.opts.Selector})
		if err != nil {
			return err
		}
		want = append(want, l.Items...)
	}
	st, err := r.readCluster(ctx)
	if err != nil {
		return err
	}
	r.mu.Lock()
	r.state = st
	live := map[types.UID]bool{}
	var start []*corev1.Pod
	for i := range want {
		p := &want[i]
		if p.DeletionTimestamp != nil || p.Spec.NodeName == "" || p.Status.PodIP == "" {
			continue
		}
		live[p.UID] = true
		if r.opts.StartAfter != nil && time.Since(r.started) < r.opts.StartAfter(p) {
			continue
		}
		if r.pods[p.UID] == nil {
			start = append(start, p)
		}
	}
	var stop []*Pod
	for uid, p := range r.pods {
		if !live[uid] && !p.exited() && !p.killed {
			p.killed = true
			stop = append(stop, p)
		}
	}
	r.mu.Unlock()
	for _, p := range stop {
		r.logf("%s/%s deleted: stopping it", p.Namespace, p.Name)
		go func() { _ = p.signal(syscall.SIGTERM, 30*time.Second) }()
	}
	for _, p := range start {
		if err := r.start(ctx, p); err != nil {
			r.fail(fmt.Errorf("podrunner: %s/%s: %w", p.Namespace, p.Name, err))
		}
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	if err := r.ensureRoutes(); err != nil {
		return err
	}
	pods := make([]*Pod, 0, len(r.pods))
	for _, p := range r.pods {
		if !p.exited() {
			pods = append(pods, p)
		}
	}
	r.mu.Unlock()
	for _, p := range pods {
		ready := r.probe(p)
		r.mu.Lock()
		p.ready = ready
		r.mu.Unlock()
	}
	r.mu.Lock()
	hosts := r.hostsFile()
	for _, p := range pods {
		if b, _ := os.ReadFile(p.hosts); string(b) != hosts {
			// In place: the pod's /etc/hosts is a bind mount of this inode.
			if err := writeInPlace(p.hosts, hosts); err != nil {
				return err
			}
		}
	}
	return nil
}

func writeInPlace(path, body string) error {
	f, err := os.OpenFile(path, os.O_WRONLY|os.O_TRUNC, 0)
	if err != nil {
		return err
	}
	_, err = f.WriteString(body)
	return errors.Join(err, f.Close())
}

// Stop stops every container (SIGTERM, then SIGKILL after 30 s), ends the
// namespaces and removes the pods' files.
func (r *Runner) Stop() {
	if r.cancel != nil {
		r.cancel()
		<-r.done
	}
	r.mu.Lock()
	pods := make([]*Pod, 0, len(r.pods))
	for _, p := range r.pods {
		p.killed = true
		pods = append(pods, p)
	}
	r.mu.Unlock()
	var wg sync.WaitGroup
	for _, p := range pods {
		wg.Go(func() {
			if err := p.signal(syscall.SIGTERM, 30*time.Second); err != nil {
				r.logf("%v", err)
			}
		})
	}
	wg.Wait()
	r.mu.Lock()
	defer r.mu.Unlock()
	for _, l := range r.hostLs {
		_ = l.Close()
	}
	for _, ns := range r.namespaces() {
		ns.close()
	}
	for _, p := range pods {
		_ = os.RemoveAll(p.dir)
	}
}
