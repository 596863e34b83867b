package localcluster

import (
	"fmt"
	"net"
	"os"
	"path/filepath"
	"strconv"
	"strings"
)

// writeConfig writes containerd's config (version 3, containerd 2.x), the
// CNI network and the loopback registry's host config.
func (n *containerdNode) writeConfig(runc string) error {
	c := n.c
	cfg := fmt.Sprintf(`version = 3
root = %[1]q
state = %[2]q

[grpc]
  address = %[3]q

# containerd's opt service would make /opt/containerd on the host.
[plugins.'io.containerd.internal.v1.opt']
  path = %[13]q

[ttrpc]
  address = %[4]q

[plugins.'io.containerd.cri.v1.images']
  snapshotter = 'overlayfs'
  [plugins.'io.containerd.cri.v1.images'.pinned_images]
    sandbox = %[5]q
  [plugins.'io.containerd.cri.v1.images'.registry]
    config_path = %[6]q

[plugins.'io.containerd.cri.v1.runtime']
  netns_mounts_under_state_dir = true
  restrict_oom_score_adj = %[12]t
  cdi_spec_dirs = []
  [plugins.'io.containerd.cri.v1.runtime'.containerd.runtimes.runc]
    runtime_type = 'io.containerd.runc.v2'
    [plugins.'io.containerd.cri.v1.runtime'.containerd.runtimes.runc.options]
      BinaryName = %[7]q
      Root = %[8]q
      ShimCgroup = %[9]q
      SystemdCgroup = false
  [plugins.'io.containerd.cri.v1.runtime'.cni]
    bin_dirs = [%[10]q]
    conf_dir = %[11]q

[plugins.'io.containerd.grpc.v1.cri']
  stream_server_address = '127.0.0.1'
  stream_server_port = '0'
`, filepath.Join(n.dir, "root"), filepath.Join(n.dir, "state"), n.socket, n.socket+".ttrpc",
		c.PauseImage, filepath.Join(n.dir, "certs.d"), runc, filepath.Join(n.dir, "state", "runc"),
		n.cgroupRoot+"/shims", c.bins.CNIDir, filepath.Join(n.dir, "cni"), !hasCapability(capSysResource), filepath.Join(n.dir, "opt"))
	if err := os.WriteFile(filepath.Join(n.dir, "config.toml"), []byte(cfg), 0o644); err != nil {
		return err
	}
	if err := os.WriteFile(filepath.Join(n.dir, "cni", "10-kubestitch.conflist"), n.net.conflist(), 0o644); err != nil {
		return err
	}
	// The loopback registry speaks plain HTTP, as a registry on
	// localhost may; the node reaches it at the control plane's address.
	host := c.Registry.Host
	_, port, _ := net.SplitHostPort(host)
	hosts := fmt.Sprintf("server = \"http://%[1]s\"\n\n[host.\"http://%[2]s\"]\n  capabilities = [\"pull\", \"resolve\"]\n", host, net.JoinHostPort(ControlPlaneIP, port))
	if err := os.MkdirAll(filepath.Join(n.dir, "certs.d", host), 0o755); err != nil {
		return err
	}
	return os.WriteFile(filepath.Join(n.dir, "certs.d", host, "hosts.toml"), []byte(hosts), 0o644)
}

// containerdTracingEnv is the environment deploy/control-plane's
// containerd drop-ins give containerd (its tracing is configured by the
// OpenTelemetry environment variables only, in containerd 2.x), with the
// endpoint pointed at endpoint (host:port; none: tracing off).
func containerdTracingEnv(endpoint string) ([]string, error) {
	if endpoint == "" {
		return []string{"OTEL_SDK_DISABLED=true"}, nil
	}
	root, err := RepoRoot()
	if err != nil {
		return nil, err
	}
	env, err := systemdDropInEnv(filepath.Join(root, "deploy", "control-plane", "containerd-tracing.conf"))
	if err != nil {
		return nil, err
	}
	bsp, err := ShippedSpanExportEnv()
	if err != nil {
		return nil, err
	}
	out := append([]string(nil), bsp...)
	for _, kv := range env {
		if k, _, _ := strings.Cut(kv, "="); k == "OTEL_EXPORTER_OTLP_ENDPOINT" {
			kv = k + "=http://" + endpoint
		}
		out = append(out, kv)
	}
	return out, nil
}

// systemdDropInEnv reads the Environment= lines of a systemd drop-in.
func systemdDropInEnv(path string) ([]string, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, err
	}
	var env []string
	for _, line := range strings.Split(string(b), "\n") {
		if v, ok := strings.CutPrefix(strings.TrimSpace(line), "Environment="); ok {
			env = append(env, strings.Trim(v, `"`))
		}
	}
	if len(env) == 0 {
		return nil, fmt.Errorf("localcluster: %s sets no Environment", path)
	}
	return env, nil
}

// capSysResource is CAP_SYS_RESOURCE: lowering a process's oom_score_adj
// needs it. Without it (a container host that drops it) runc cannot give
// the pause container the kubelet's -998, and containerd must clamp pods'
// scores at its own (restrict_oom_score_adj, as for rootless containerd).
const capSysResource = 24

// hasCapability says whether this process has capability bit cap in its
// effective set.
func hasCapability(cap uint) bool {
	b, err := os.ReadFile("/proc/self/status")
	if err != nil {
		return false
	}
	for _, line := range strings.Split(string(b), "\n") {
		if v, ok := strings.CutPrefix(line, "CapEff:"); ok {
			mask, err := strconv.ParseUint(strings.TrimSpace(v), 16, 64)
			return err == nil && mask&(1<<cap) != 0
		}
	}
	return false
}
