// Package localcluster runs a real Kubernetes control plane as local
// processes on 127.0.0.1: etcd, kube-apiserver (with tracing),
// kube-controller-manager, kube-scheduler and kwok simulating nodes. It is
// the test bed of Kubestitch and the default of its demo.
//
// The binaries are built from pinned Go modules of their own (k8sbin,
// etcdbin, kwokbin, containerdbin, cnibin next to this file) once per
// version into a cache directory outside the repository, and reused.
package localcluster

import (
	"context"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"time"
)

// Versions of the binaries; TestVersionsMatchModules keeps them equal to
// the go.mod files that build them.
const (
	KubernetesVersion = "v1.37.2"
	EtcdVersion       = "v3.7.3"
	KwokVersion       = "v0.8.0"
	// The real node's runtime: containerd and the CNI plugins it calls.
	ContainerdVersion = "v2.4.2"
	CNIPluginsVersion = "v1.10.0"
)

// What Build builds beyond the control plane.
type BuildOptions struct {
	// Kubelet adds the kubelet.
	Kubelet bool
	// Containerd adds containerd, ctr, its runc shim and the CNI plugins
	// (a real node; runc itself comes from the machine).
	Containerd bool
}

// Binaries are the paths of the built control-plane binaries.
type Binaries struct {
	Etcd, APIServer, ControllerManager, Scheduler, Kwok, Kubelet, KubeProxy string
	// Containerd is the daemon; ContainerdDir also holds ctr and
	// containerd-shim-runc-v2, which containerd finds on its PATH.
	Containerd, ContainerdDir string
	// CNIDir holds the CNI plugins: bridge, host-local, loopback, portmap.
	CNIDir string
	// KwokModuleDir is where kwok's module (and its stage files) is.
	KwokModuleDir string
}

type buildSpec struct {
	module string // directory under localcluster/
	dir    string // cache subdirectory
	pkgs   []string
	tags   string // build tags
}

// DefaultCacheDir is $KUBESTITCH_CACHE, else the user cache dir + kubestitch.
func DefaultCacheDir() string {
	if d := os.Getenv("KUBESTITCH_CACHE"); d != "" {
		return d
	}
	d, err := os.UserCacheDir()
	if err != nil {
		d = os.TempDir()
	}
	return filepath.Join(d, "kubestitch")
}

// RepoRoot finds the repository root from the working directory upwards.
func RepoRoot() (string, error) {
	dir, err := os.Getwd()
	if err != nil {
		return "", err
	}
	for {
		if _, err := os.Stat(filepath.Join(dir, "localcluster", "k8sbin", "go.mod")); err == nil {
			return dir, nil
		}
		parent := filepath.Dir(dir)
		if parent == dir {
			return "", fmt.Errorf("localcluster: no repository root above the working directory (looked for localcluster/k8sbin/go.mod)")
		}
		dir = parent
	}
}

// Build builds the binaries that are not in the cache yet. Concurrent
// callers (test packages run in parallel) serialise on a lock file.
func Build(ctx context.Context, cacheDir string, bo BuildOptions, log io.Writer) (Binaries, error) {
	root, err := RepoRoot()
	if err != nil {
		return Binaries{}, err
	}
	binDir := filepath.Join(cacheDir, "bin")
	if err := os.MkdirAll(binDir, 0o755); err != nil {
		return Binaries{}, err
	}
	lock, err := os.OpenFile(filepath.Join(binDir, ".lock"), os.O_CREATE|os.O_RDWR, 0o644)
	if err != nil {
		return Binaries{}, err
	}
	defer lock.Close()
	if err := syscall.Flock(int(lock.Fd()), syscall.LOCK_EX); err != nil {
		return Binaries{}, err
	}
	defer syscall.Flock(int(lock.Fd()), syscall.LOCK_UN) //nolint:errcheck

	k8sDir := filepath.Join(binDir, "k8s-"+KubernetesVersion)
	k8sPkgs := []string{"k8s.io/kubernetes/cmd/kube-apiserver", "k8s.io/kubernetes/cmd/kube-controller-manager", "k8s.io/kubernetes/cmd/kube-scheduler"}
	if bo.Kubelet {
		k8sPkgs = append(k8sPkgs, "k8s.io/kubernetes/cmd/kubelet")
	}
	if bo.Containerd {
		// A containerd node routes Services itself.
		k8sPkgs = append(k8sPkgs, "k8s.io/kubernetes/cmd/kube-proxy")
	}
	specs := []buildSpec{
		{module: "etcdbin", dir: filepath.Join(binDir, "etcd-"+EtcdVersion), pkgs: []string{"go.etcd.io/etcd/server/v3"}},
		{module: "kwokbin", dir: filepath.Join(binDir, "kwok-"+KwokVersion), pkgs: []string{"sigs.k8s.io/kwok/cmd/kwok"}},
		{module: "k8sbin", dir: k8sDir, pkgs: k8sPkgs},
	}
	containerdDir := filepath.Join(binDir, "containerd-"+ContainerdVersion)
	cniDir := filepath.Join(binDir, "cni-plugins-"+CNIPluginsVersion)
	if bo.Containerd {
		specs = append(specs,
			// Without cgo (static, like the other binaries) and without
			// the snapshotters that need C libraries; overlayfs is in.
			buildSpec{module: "containerdbin", dir: containerdDir, tags: "no_btrfs,no_devmapper,no_zfs", pkgs: []string{
				"github.com/containerd/containerd/v2/cmd/containerd",
				"github.com/containerd/containerd/v2/cmd/containerd-shim-runc-v2",
				"github.com/containerd/containerd/v2/cmd/ctr",
			}},
			buildSpec{module: "cnibin", dir: cniDir, pkgs: []string{
				"github.com/containernetworking/plugins/plugins/main/bridge",
				"github.com/containernetworking/plugins/plugins/ipam/host-local",
				"github.com/containernetworking/plugins/plugins/main/loopback",
				"github.com/containernetworking/plugins/plugins/meta/portmap",
			}},
		)
	}
	b := Binaries{
		Etcd:              filepath.Join(binDir, "etcd-"+EtcdVersion, "etcd"),
		Kwok:              filepath.Join(binDir, "kwok-"+KwokVersion, "kwok"),
		APIServer:         filepath.Join(k8sDir, "kube-apiserver"),
		ControllerManager: filepath.Join(k8sDir, "kube-controller-manager"),
		Scheduler:         filepath.Join(k8sDir, "kube-scheduler"),
		Kubelet:           filepath.Join(k8sDir, "kubelet"),
		KubeProxy:         filepath.Join(k8sDir, "kube-proxy"),
		Containerd:        filepath.Join(containerdDir, "containerd"),
		ContainerdDir:     containerdDir,
		CNIDir:            cniDir,
	}
	for _, s := range specs {
		var missing []string
		for _, p := range s.pkgs {
			name := filepath.Base(p)
			if name == "v3" {
				name = "etcd"
			}
			if _, err := os.Stat(filepath.Join(s.dir, name)); err != nil {
				missing = append(missing, p)
			}
		}
		if len(missing) == 0 {
			continue
		}
		if err := os.MkdirAll(s.dir, 0o755); err != nil {
			return b, err
		}
		out := s.dir + string(filepath.Separator)
		if len(missing) == 1 && s.module == "etcdbin" {
			out = b.Etcd
		}
		fmt.Fprintf(log, "localcluster: building %s into %s (once per version; a cold Kubernetes build takes ~20 minutes on 2 cores)\n", strings.Join(missing, " "), s.dir)
		start := time.Now()
		args := []string{"build", "-trimpath", "-ldflags=-s -w", "-o", out}
		if s.tags != "" {
			args = append(args, "-tags="+s.tags)
		}
		args = append(args, missing...)
		cmd := exec.CommandContext(ctx, "go", args...)
		cmd.Dir = filepath.Join(root, "localcluster", s.module)
		cmd.Env = append(os.Environ(), "CGO_ENABLED=0")
		cmd.Stdout, cmd.Stderr = log, log
		if err := cmd.Run(); err != nil {
			return b, fmt.Errorf("localcluster: go build %s in %s: %w", strings.Join(missing, " "), cmd.Dir, err)
		}
		fmt.Fprintf(log, "localcluster: built %s in %s\n", strings.Join(missing, " "), time.Since(start).Round(time.Second))
	}
	cmd := exec.CommandContext(ctx, "go", "list", "-m", "-f", "{{.Dir}}", "sigs.k8s.io/kwok")
	cmd.Dir = filepath.Join(root, "localcluster", "kwokbin")
	dir, err := cmd.Output()
	if err != nil {
		return b, fmt.Errorf("localcluster: locating the kwok module for its stage files: %w", err)
	}
	b.KwokModuleDir = strings.TrimSpace(string(dir))
	return b, nil
}
