package localcluster

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"time"
)

// The kernel settings the kubelet changes at start-up (they are not
// namespaced): saved before it starts, restored once it has set them and
// again at teardown. All of them: the four of its container manager
// (setupKernelTunables) and the two key quotas it raises for root
// (k8s.io/component-helpers/node/util/sysctl: RootMaxKeys, RootMaxBytes).
var kubeletSysctls = []string{
	"kernel/panic", "kernel/panic_on_oops", "vm/overcommit_memory", "vm/panic_on_oom",
	"kernel/keys/root_maxkeys", "kernel/keys/root_maxbytes",
}

// sysctlGuard keeps host sysctls at their saved values while a kubelet
// runs.
type sysctlGuard struct {
	saved    map[string]string
	stop     chan struct{}
	done     chan struct{}
	mu       sync.Mutex
	restored []string
}

// ReadSysctls reads the sysctls the kubelet changes, by /proc/sys path.
func ReadSysctls() (map[string]string, error) {
	out := map[string]string{}
	for _, k := range kubeletSysctls {
		b, err := os.ReadFile(filepath.Join("/proc/sys", k))
		if err != nil {
			return nil, err
		}
		out[k] = strings.TrimSpace(string(b))
	}
	return out, nil
}

func newSysctlGuard() (*sysctlGuard, error) {
	saved, err := ReadSysctls()
	if err != nil {
		return nil, fmt.Errorf("localcluster: saving sysctls before the kubelet changes them: %w", err)
	}
	g := &sysctlGuard{saved: saved, stop: make(chan struct{}), done: make(chan struct{})}
	go func() {
		defer close(g.done)
		t := time.NewTicker(100 * time.Millisecond)
		defer t.Stop()
		for {
			select {
			case <-g.stop:
				return
			case <-t.C:
				g.restore()
			}
		}
	}()
	return g, nil
}

// restore writes back every saved value that differs now.
func (g *sysctlGuard) restore() error {
	var errs []error
	for k, want := range g.saved {
		p := filepath.Join("/proc/sys", k)
		b, err := os.ReadFile(p)
		if err != nil {
			errs = append(errs, err)
			continue
		}
		if strings.TrimSpace(string(b)) == want {
			continue
		}
		if err := os.WriteFile(p, []byte(want+"\n"), 0o644); err != nil {
			errs = append(errs, fmt.Errorf("restoring %s to %s: %w", k, want, err))
			continue
		}
		g.mu.Lock()
		g.restored = append(g.restored, fmt.Sprintf("%s=%s (was %s)", k, want, strings.TrimSpace(string(b))))
		g.mu.Unlock()
	}
	return errors.Join(errs...)
}

// close stops watching and restores for the last time.
func (g *sysctlGuard) close() error {
	close(g.stop)
	<-g.done
	return g.restore()
}
