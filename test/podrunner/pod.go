package podrunner

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"time"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/utils/ptr"

	"github.com/kubestitch/kubestitch/localcluster"
)

// Pod is a pod the runner runs (or ran).
type Pod struct {
	Namespace, Name, Node, IP string
	// PID is the container's process.
	PID int
	// Log is its stdout and stderr.
	Log string

	spec   *corev1.Pod
	dir    string
	net    *netns
	hosts  string
	ready  bool
	killed bool
	// proc is the container's process, from its start on (nil before,
	// while the pod already owns its network).
	proc *localcluster.Process
}

func (p *Pod) exited() bool { return p.proc != nil && p.proc.Exited() }

// Kill sends the container SIGKILL, as an OOM kill or a crash would end
// it; the pod object stays.
func (r *Runner) Kill(p *Pod) error {
	r.mu.Lock()
	p.killed = true
	r.mu.Unlock()
	return p.signal(syscall.SIGKILL, 10*time.Second)
}

func (p *Pod) signal(sig syscall.Signal, grace time.Duration) error {
	if p.proc == nil {
		return nil
	}
	if err := p.proc.Stop(sig, grace); err != nil {
		return fmt.Errorf("podrunner: %s/%s did not stop on %v in %v", p.Namespace, p.Name, sig, grace)
	}
	return nil
}

// Memory is the container process's resident set now and at its peak,
// in bytes (0 once it exited).
func (p *Pod) Memory() (rss, peak uint64) {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", p.PID))
	if err != nil || p.exited() {
		return 0, 0
	}
	for _, l := range strings.Split(string(b), "\n") {
		var kb uint64
		if n, _ := fmt.Sscanf(l, "VmRSS: %d kB", &kb); n == 1 {
			rss = kb << 10
		}
		if n, _ := fmt.Sscanf(l, "VmHWM: %d kB", &kb); n == 1 {
			peak = kb << 10
		}
	}
	return rss, peak
}

// start runs pod's container.
func (r *Runner) start(ctx context.Context, pod *corev1.Pod) error {
	if len(pod.Spec.Containers) != 1 || len(pod.Spec.InitContainers) > 0 {
		return fmt.Errorf("runs pods of one container only")
	}
	c := pod.Spec.Containers[0]
	dir := filepath.Join(r.opts.Dir, pod.Namespace+"_"+pod.Name)
	if err := os.MkdirAll(filepath.Join(dir, "root"), 0o755); err != nil {
		return err
	}
	p := &Pod{Namespace: pod.Namespace, Name: pod.Name, Node: pod.Spec.NodeName, IP: pod.Status.PodIP,
		Log: filepath.Join(dir, "log"), spec: pod, dir: dir, hosts: filepath.Join(dir, "hosts")}
	mounts, err := r.volumes(ctx, pod, c, dir)
	if err != nil {
		return err
	}
	env, err := r.env(pod, c)
	if err != nil {
		return err
	}
	uid, gid, groups, err := identity(pod, c, r.opts.Image.User)
	if err != nil {
		return err
	}
	argv := command(c, r.opts.Image)
	if len(argv) == 0 {
		return fmt.Errorf("container %s: no command and the image has no entrypoint", c.Name)
	}
	for _, a := range argv {
		if strings.Contains(a, "$(") {
			return fmt.Errorf("argument %q: $(VAR) expansion is not supported here", a)
		}
	}
	r.mu.Lock()
	hosts := r.hostsFile()
	r.mu.Unlock()
	if err := os.WriteFile(p.hosts, []byte(hosts), 0o644); err != nil {
		return err
	}
	resolv := filepath.Join(dir, "resolv.conf")
	if err := os.WriteFile(resolv, nil, 0o644); err != nil {
		return err
	}
	mounts = append(mounts, mount{src: p.hosts, dst: "/etc/hosts", readOnly: true}, mount{src: resolv, dst: "/etc/resolv.conf", readOnly: true})
	readOnlyRoot := c.SecurityContext != nil && ptr.Deref(c.SecurityContext.ReadOnlyRootFilesystem, false)
	script := rootScript(filepath.Join(dir, "root"), r.opts.Image.RootFS, mounts, readOnlyRoot, uid, gid, groups, argv)

	// The network: the node's for a host-network pod, else its own with
	// its IP.
	r.mu.Lock()
	ns := r.nodes[pod.Spec.NodeName]
	r.mu.Unlock()
	if !pod.Spec.HostNetwork || ns == nil {
		name := "pod " + pod.Namespace + "/" + pod.Name
		if pod.Spec.HostNetwork {
			name = "node " + pod.Spec.NodeName
		}
		if ns, err = newNetns(name); err != nil {
			return err
		}
		// Its address: the pod's IP, or for a node the node's (the pod's
		// status.hostIP), where a host-network process may bind as on a
		// real node (the agent's own metrics, on K8S_NODE_IP).
		addr := pod.Status.PodIP
		if pod.Spec.HostNetwork {
			addr = pod.Status.HostIP
		}
		if addr != "" {
			if err := ns.addAddr(addr); err != nil {
				ns.close()
				return err
			}
		}
	}
	p.net = ns
	// Its routes before it starts: a pod's network works from its first
	// instruction.
	r.mu.Lock()
	r.owner[ns] = p
	err = r.ensureRoutesOf(ns)
	r.mu.Unlock()
	if err != nil {
		return err
	}
	proc, err := localcluster.StartProcess(localcluster.ProcessOptions{
		Name: pod.Namespace + "/" + pod.Name, Bin: "sh", Args: []string{"-ec", script}, Env: env, Log: p.Log,
		// Signals reach the container's process alone.
		SameGroup: true,
		// A mount namespace of its own: the root and its mounts vanish
		// with the process.
		Cloneflags: syscall.CLONE_NEWNS,
		StartIn:    ns.run,
	})
	if err != nil {
		return err
	}
	p.PID = proc.PID()
	r.mu.Lock()
	p.proc = proc
	r.pods[pod.UID] = p
	if pod.Spec.HostNetwork {
		r.nodes[pod.Spec.NodeName] = ns
	}
	r.owner[ns] = p
	r.mu.Unlock()
	r.logf("%s/%s on %s (%s): pid %d, uid %d, %v", pod.Namespace, pod.Name, pod.Spec.NodeName, pod.Status.PodIP, p.PID, uid, argv)
	go func() {
		<-proc.Done()
		r.mu.Lock()
		killed := p.killed
		r.mu.Unlock()
		if !killed {
			r.fail(fmt.Errorf("podrunner: %s/%s exited on its own (%v); its log ends:\n%s", p.Namespace, p.Name, proc.Err(), localcluster.LogTail(p.Log, 30)))
		}
		if !pod.Spec.HostNetwork {
			ns.close()
		}
	}()
	return nil
}
