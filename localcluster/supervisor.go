package localcluster

import (
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"syscall"
	"time"
)

// components are the control plane's running processes, by name.
type components struct {
	mu    sync.Mutex
	procs map[string]*Process
}

// run starts a component in its own process group, logging to a file; it
// is killed with the test process (Pdeathsig) if Down never runs.
func (c *Cluster) run(name, bin string, args ...string) error {
	return c.runEnv(name, nil, bin, args...)
}

// runEnv runs a component with env added to this process's environment.
func (c *Cluster) runEnv(name string, env []string, bin string, args ...string) error {
	return c.procs.start(ProcessOptions{
		Name: name, Bin: bin, Args: args,
		Env: append(os.Environ(), env...),
		Log: filepath.Join(c.Dir, name+".log"),
	})
}

// start starts a component; it fails with errPortInUse when the component
// exits at once because a port it was given is taken.
func (s *components) start(o ProcessOptions) error {
	p, err := StartProcess(o)
	if err != nil {
		return fmt.Errorf("localcluster: start %s: %w", o.Name, err)
	}
	s.mu.Lock()
	s.procs[o.Name] = p
	s.mu.Unlock()
	// A port taken between picking and binding shows within a second.
	select {
	case <-p.Done():
		tail := LogTail(p.Log, 20)
		s.mu.Lock()
		delete(s.procs, o.Name)
		s.mu.Unlock()
		if strings.Contains(tail, "address already in use") {
			return fmt.Errorf("%w: %s", errPortInUse, o.Name)
		}
		return fmt.Errorf("localcluster: %s exited at start (%v); log tail:\n%s", o.Name, p.Err(), tail)
	case <-time.After(300 * time.Millisecond):
	}
	return nil
}

// died reports a component that exited, with its log tail.
func (s *components) died() error {
	s.mu.Lock()
	defer s.mu.Unlock()
	for _, p := range s.procs {
		if p.Exited() {
			return fmt.Errorf("%s exited (%v); log tail:\n%s", p.Name, p.Err(), LogTail(p.Log, 30))
		}
	}
	return nil
}

// get is a running component's process, or nil.
func (s *components) get(name string) *Process {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.procs[name]
}

// stop sends SIGTERM to a component's process group, and SIGKILL after
// grace.
func (s *components) stop(name string, grace time.Duration) {
	s.mu.Lock()
	p := s.procs[name]
	delete(s.procs, name)
	s.mu.Unlock()
	if p != nil {
		_ = p.Stop(syscall.SIGTERM, grace)
	}
}

// LogTails is the last n lines of the named running components' logs
// (kube-apiserver, kube-controller-manager, kube-scheduler, kwok...), or
// of all of them without names.
func (c *Cluster) LogTails(n int, names ...string) string {
	c.procs.mu.Lock()
	defer c.procs.mu.Unlock()
	var b strings.Builder
	for _, p := range c.procs.procs {
		if len(names) > 0 && !slices.Contains(names, p.Name) {
			continue
		}
		fmt.Fprintf(&b, "\n--- %s log tail ---\n%s", p.Name, LogTail(p.Log, n))
	}
	return b.String()
}

// PIDs are the process IDs of the running components, by name.
func (c *Cluster) PIDs() map[string]int {
	c.procs.mu.Lock()
	defer c.procs.mu.Unlock()
	out := map[string]int{}
	for n, p := range c.procs.procs {
		out[n] = p.PID()
	}
	return out
}

// LogTail is the last n lines of a log file.
func LogTail(path string, n int) string {
	b, err := os.ReadFile(path)
	if err != nil {
		return "(no log: " + err.Error() + ")"
	}
	lines := strings.Split(strings.TrimRight(string(b), "\n"), "\n")
	if len(lines) > n {
		lines = lines[len(lines)-n:]
	}
	return strings.Join(lines, "\n")
}
