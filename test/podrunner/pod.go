package podrunner

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"syscall"

	authenticationv1 "k8s.io/api/authentication/v1"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/utils/ptr"

	"github.com/kubestitch/kubestitch/localcluster"
)

// mount is a bind mount into the pod's root.
type mount struct {
	src, dst string
	readOnly bool
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
		Log: filepath.Join(dir, "log"), spec: pod, dir: dir, hosts: filepath.Join(dir, "hosts"), exit: make(chan struct{})}
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
	log, err := os.Create(p.Log)
	if err != nil {
		return err
	}
	defer log.Close()
	cmd := exec.Command("sh", "-ec", script)
	cmd.Env = env
	cmd.Stdout, cmd.Stderr = log, log
	// A mount namespace of its own: the root and its mounts vanish with
	// the process.
	cmd.SysProcAttr = &syscall.SysProcAttr{Cloneflags: syscall.CLONE_NEWNS, Pdeathsig: syscall.SIGKILL}
	if rerr := ns.run(func() { err = cmd.Start() }); rerr != nil {
		return rerr
	}
	if err != nil {
		return err
	}
	p.PID = cmd.Process.Pid
	r.mu.Lock()
	r.pods[pod.UID] = p
	if pod.Spec.HostNetwork {
		r.nodes[pod.Spec.NodeName] = ns
	}
	r.owner[ns] = p
	r.mu.Unlock()
	r.logf("%s/%s on %s (%s): pid %d, uid %d, %v", pod.Namespace, pod.Name, pod.Spec.NodeName, pod.Status.PodIP, p.PID, uid, argv)
	go func() {
		p.err = cmd.Wait()
		close(p.exit)
		r.mu.Lock()
		killed := p.killed
		r.mu.Unlock()
		if !killed {
			r.fail(fmt.Errorf("podrunner: %s/%s exited on its own (%v); its log ends:\n%s", p.Namespace, p.Name, p.err, localcluster.LogTail(p.Log, 30)))
		}
		if !pod.Spec.HostNetwork {
			ns.close()
		}
	}()
	return nil
}

// command is what the container runs, as the kubelet decides it: its
// command, else the image's entrypoint; then its args, else (with no
// command of its own) the image's cmd.
func command(c corev1.Container, img Image) []string {
	if len(c.Command) > 0 {
		return append(append([]string{}, c.Command...), c.Args...)
	}
	argv := append([]string{}, img.Entrypoint...)
	if len(c.Args) > 0 {
		return append(argv, c.Args...)
	}
	return append(argv, img.Cmd...)
}

// rootScript is the shell that builds the container's root in its mount
// namespace and execs the entrypoint in it, as the pod's user: the image's
// root file system under an overlay whose upper layer is a tmpfs of the
// namespace (gone with the process), the volumes mounted over it.
func rootScript(root, image string, mounts []mount, readOnlyRoot bool, uid, gid int64, groups []int64, argv []string) string {
	var b strings.Builder
	w := func(format string, args ...any) { fmt.Fprintf(&b, format+"\n", args...) }
	w("mount --make-rprivate /")
	w("R=%s", quote(root))
	w(`U="$R.rw" && mkdir -p "$U"`)
	w(`mount -t tmpfs -o mode=0755,size=16m tmpfs "$U"`)
	w(`mkdir -m 0755 "$U/upper" "$U/work"`)
	w(`mount -t overlay overlay -o lowerdir=%s,upperdir="$U/upper",workdir="$U/work" "$R"`, quote(image))
	w(`mkdir -p "$R/proc" "$R/dev" "$R/sys" "$R/tmp" "$R/etc"`)
	w(`mount -t proc proc "$R/proc"`)
	w(`mount --rbind /dev "$R/dev"`)
	w(`mount --rbind /sys "$R/sys" && mount -o remount,bind,ro "$R/sys"`)
	for _, m := range mounts {
		dst := `"$R"` + quote(m.dst)
		if st, err := os.Stat(m.src); err == nil && !st.IsDir() {
			w(`mkdir -p "$(dirname %s)" && touch %s`, dst, dst)
		} else {
			w(`mkdir -p %s`, dst)
		}
		w("mount --bind %s %s", quote(m.src), dst)
		if m.readOnly {
			w("mount -o remount,bind,ro %s", dst)
		}
	}
	if readOnlyRoot {
		w(`mount -o remount,ro "$R"`)
	}
	gs := make([]string, len(groups))
	for i, g := range groups {
		gs[i] = strconv.FormatInt(g, 10)
	}
	args := make([]string, len(argv))
	for i, a := range argv {
		args[i] = quote(a)
	}
	w(`exec chroot --userspec=%d:%d --groups=%s "$R" %s`, uid, gid, strings.Join(gs, ","), strings.Join(args, " "))
	return b.String()
}

func quote(s string) string { return "'" + strings.ReplaceAll(s, "'", `'\''`) + "'" }

// identity is the user, group and supplementary groups the container runs
// as: the pod's securityContext, else the image's USER (imageUser).
func identity(pod *corev1.Pod, c corev1.Container, imageUser string) (uid, gid int64, groups []int64, err error) {
	psc := pod.Spec.SecurityContext
	if psc == nil {
		psc = &corev1.PodSecurityContext{}
	}
	csc := c.SecurityContext
	if csc == nil {
		csc = &corev1.SecurityContext{}
	}
	u := csc.RunAsUser
	if u == nil {
		u = psc.RunAsUser
	}
	g := csc.RunAsGroup
	if g == nil {
		g = psc.RunAsGroup
	}
	if u == nil {
		// USER "uid[:gid]": a name would need the image's /etc/passwd,
		// and runAsNonRoot cannot be checked against a name anyway.
		us, gs, hasGroup := strings.Cut(imageUser, ":")
		iu, err := strconv.ParseInt(us, 10, 64)
		if err != nil {
			return 0, 0, nil, fmt.Errorf("no runAsUser, and the image's USER %q is not numeric", imageUser)
		}
		u = &iu
		if g == nil && hasGroup {
			ig, err := strconv.ParseInt(gs, 10, 64)
			if err != nil {
				return 0, 0, nil, fmt.Errorf("the image's USER %q: group is not numeric", imageUser)
			}
			g = &ig
		}
	}
	if g == nil {
		g = u
	}
	// The kubelet refuses to start a container that would run as root
	// when the pod says runAsNonRoot.
	if nonRoot := csc.RunAsNonRoot; (nonRoot != nil && *nonRoot || nonRoot == nil && ptr.Deref(psc.RunAsNonRoot, false)) && *u == 0 {
		return 0, 0, nil, fmt.Errorf("runAsNonRoot and the container would run as uid 0")
	}
	groups = append(groups, *g)
	if psc.FSGroup != nil {
		groups = append(groups, *psc.FSGroup)
	}
	groups = append(groups, psc.SupplementalGroups...)
	return *u, *g, groups, nil
}

// env is the container's environment as the kubelet makes it: its env
// entries with fieldRefs resolved, and the kubernetes Service's address.
func (r *Runner) env(pod *corev1.Pod, c corev1.Container) ([]string, error) {
	if len(c.EnvFrom) > 0 {
		return nil, fmt.Errorf("envFrom is not supported here")
	}
	r.mu.Lock()
	var apiHost, apiPort string
	for hostport, rt := range r.state.routes {
		if rt.service.Namespace == "default" && rt.service.Name == "kubernetes" {
			apiHost, apiPort, _ = strings.Cut(hostport, ":")
		}
	}
	r.mu.Unlock()
	if apiHost == "" {
		return nil, fmt.Errorf("no ClusterIP for default/kubernetes yet")
	}
	hostname := pod.Name
	if pod.Spec.HostNetwork {
		hostname = pod.Spec.NodeName
	}
	// As a runtime makes it: a default PATH, the image's env, the pod's
	// identity and the API's Service, then the container's own (the last
	// of a name wins).
	env := append([]string{"PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"}, r.opts.Image.Env...)
	env = append(env, "HOSTNAME="+hostname, "KUBERNETES_SERVICE_HOST="+apiHost, "KUBERNETES_SERVICE_PORT="+apiPort)
	for _, e := range c.Env {
		switch {
		case e.ValueFrom == nil:
			if strings.Contains(e.Value, "$(") {
				return nil, fmt.Errorf("env %s: $(VAR) expansion is not supported here", e.Name)
			}
			env = append(env, e.Name+"="+e.Value)
		case e.ValueFrom.FieldRef != nil:
			v, err := fieldRef(pod, e.ValueFrom.FieldRef.FieldPath)
			if err != nil {
				return nil, fmt.Errorf("env %s: %w", e.Name, err)
			}
			env = append(env, e.Name+"="+v)
		default:
			return nil, fmt.Errorf("env %s: only values and fieldRefs are supported here", e.Name)
		}
	}
	return env, nil
}

func fieldRef(pod *corev1.Pod, path string) (string, error) {
	switch path {
	case "metadata.name":
		return pod.Name, nil
	case "metadata.namespace":
		return pod.Namespace, nil
	case "metadata.uid":
		return string(pod.UID), nil
	case "spec.nodeName":
		return pod.Spec.NodeName, nil
	case "spec.serviceAccountName":
		return pod.Spec.ServiceAccountName, nil
	case "status.podIP":
		return pod.Status.PodIP, nil
	case "status.hostIP":
		return pod.Status.HostIP, nil
	}
	return "", fmt.Errorf("fieldRef %s is not supported here", path)
}

// volumes writes the container's volumes under dir and says where they
// mount (the ServiceAccount's token among them: the admission plugin added
// it to the pod as a projected volume).
func (r *Runner) volumes(ctx context.Context, pod *corev1.Pod, c corev1.Container, dir string) ([]mount, error) {
	var fsGroup *int64
	if pod.Spec.SecurityContext != nil {
		fsGroup = pod.Spec.SecurityContext.FSGroup
	}
	byName := map[string]corev1.Volume{}
	for _, v := range pod.Spec.Volumes {
		byName[v.Name] = v
	}
	var out []mount
	for _, vm := range c.VolumeMounts {
		v, ok := byName[vm.Name]
		if !ok {
			return nil, fmt.Errorf("volumeMount %s: no such volume", vm.Name)
		}
		if vm.SubPath != "" {
			return nil, fmt.Errorf("volumeMount %s: subPath is not supported here", vm.Name)
		}
		src := filepath.Join(dir, "volumes", v.Name)
		if err := os.MkdirAll(src, 0o755); err != nil {
			return nil, err
		}
		var files map[string][]byte
		mode := int32(0o644)
		switch {
		case v.ConfigMap != nil:
			cm, err := r.client.CoreV1().ConfigMaps(pod.Namespace).Get(ctx, v.ConfigMap.Name, metav1.GetOptions{})
			if err != nil {
				return nil, fmt.Errorf("volume %s: %w", v.Name, err)
			}
			if len(v.ConfigMap.Items) > 0 {
				return nil, fmt.Errorf("volume %s: items are not supported here", v.Name)
			}
			files = map[string][]byte{}
			for k, s := range cm.Data {
				files[k] = []byte(s)
			}
			mode = ptr.Deref(v.ConfigMap.DefaultMode, mode)
		case v.Secret != nil:
			s, err := r.client.CoreV1().Secrets(pod.Namespace).Get(ctx, v.Secret.SecretName, metav1.GetOptions{})
			if err != nil {
				return nil, fmt.Errorf("volume %s: %w", v.Name, err)
			}
			if len(v.Secret.Items) > 0 {
				return nil, fmt.Errorf("volume %s: items are not supported here", v.Name)
			}
			files, mode = s.Data, ptr.Deref(v.Secret.DefaultMode, mode)
		case v.Projected != nil:
			// The ServiceAccount admission plugin's kube-api-access volume.
			var err error
			if files, err = r.projected(ctx, pod, v.Projected); err != nil {
				return nil, fmt.Errorf("volume %s: %w", v.Name, err)
			}
			mode = ptr.Deref(v.Projected.DefaultMode, mode)
		case v.EmptyDir != nil:
			// Writable by the pod's user; its group is the fsGroup.
			if err := os.Chmod(src, 0o777); err != nil {
				return nil, err
			}
			if fsGroup != nil {
				if err := os.Chown(src, 0, int(*fsGroup)); err != nil {
					return nil, err
				}
			}
		default:
			return nil, fmt.Errorf("volume %s: only configMap, secret, projected and emptyDir are supported here", v.Name)
		}
		if err := writeFiles(src, files, mode, fsGroup); err != nil {
			return nil, err
		}
		out = append(out, mount{src: src, dst: vm.MountPath, readOnly: vm.ReadOnly})
	}
	return out, nil
}

// projected is a projected volume's files, as the kubelet writes them: a
// token for the pod's ServiceAccount from the TokenRequest API, bound to
// the pod object; ConfigMap keys (kube-root-ca.crt: the cluster's CA, as
// kube-controller-manager publishes it); downward API fields.
func (r *Runner) projected(ctx context.Context, pod *corev1.Pod, v *corev1.ProjectedVolumeSource) (map[string][]byte, error) {
	files := map[string][]byte{}
	for _, src := range v.Sources {
		switch {
		case src.ServiceAccountToken != nil:
			sat := src.ServiceAccountToken
			spec := authenticationv1.TokenRequestSpec{
				ExpirationSeconds: sat.ExpirationSeconds,
				BoundObjectRef:    &authenticationv1.BoundObjectReference{Kind: "Pod", APIVersion: "v1", Name: pod.Name, UID: pod.UID},
			}
			if sat.Audience != "" {
				spec.Audiences = []string{sat.Audience}
			}
			tr, err := r.client.CoreV1().ServiceAccounts(pod.Namespace).CreateToken(ctx, pod.Spec.ServiceAccountName, &authenticationv1.TokenRequest{Spec: spec}, metav1.CreateOptions{})
			if err != nil {
				return nil, fmt.Errorf("token for ServiceAccount %s: %w", pod.Spec.ServiceAccountName, err)
			}
			files[sat.Path] = []byte(tr.Status.Token)
		case src.ConfigMap != nil:
			cm, err := r.client.CoreV1().ConfigMaps(pod.Namespace).Get(ctx, src.ConfigMap.Name, metav1.GetOptions{})
			if err != nil {
				return nil, err
			}
			for _, it := range src.ConfigMap.Items {
				d, ok := cm.Data[it.Key]
				if !ok {
					return nil, fmt.Errorf("ConfigMap %s has no %s", cm.Name, it.Key)
				}
				files[it.Path] = []byte(d)
			}
		case src.DownwardAPI != nil:
			for _, it := range src.DownwardAPI.Items {
				if it.FieldRef == nil {
					return nil, fmt.Errorf("downward API %s: only fieldRefs are supported here", it.Path)
				}
				val, err := fieldRef(pod, it.FieldRef.FieldPath)
				if err != nil {
					return nil, err
				}
				files[it.Path] = []byte(val)
			}
		default:
			return nil, fmt.Errorf("only serviceAccountToken, configMap and downwardAPI sources are supported here")
		}
	}
	return files, nil
}

// writeFiles writes a volume's files with the pod's mode, root-owned with
// the fsGroup as their group, as the kubelet does.
func writeFiles(dir string, files map[string][]byte, mode int32, fsGroup *int64) error {
	names := make([]string, 0, len(files))
	for k := range files {
		names = append(names, k)
	}
	sort.Strings(names)
	for _, k := range names {
		p := filepath.Join(dir, k)
		if err := os.WriteFile(p, files[k], 0o600); err != nil {
			return err
		}
		if fsGroup != nil {
			if err := os.Chown(p, 0, int(*fsGroup)); err != nil {
				return err
			}
		}
		if err := os.Chmod(p, os.FileMode(mode)&os.ModePerm); err != nil {
			return err
		}
	}
	return nil
}
