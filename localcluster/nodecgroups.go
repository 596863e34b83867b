package localcluster

import (
	"bufio"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"net"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"time"
)

// cgroupMounts are the machine's cgroup hierarchies: each v1 controller's
// mount, and cgroup2's (the "unified" one of a hybrid machine, or the only
// one). A cgroup of the real node is made and removed in each.
func cgroupMounts() ([]string, error) {
	f, err := os.Open("/proc/self/mountinfo")
	if err != nil {
		return nil, err
	}
	defer f.Close()
	var out []string
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		// id parent major:minor root mountpoint options ... - fstype source superoptions
		fields := strings.Fields(sc.Text())
		sep := slices.Index(fields, "-")
		if sep < 0 || sep+1 >= len(fields) || len(fields) < 5 {
			continue
		}
		if t := fields[sep+1]; t == "cgroup" || t == "cgroup2" {
			out = append(out, fields[4])
		}
	}
	return out, sc.Err()
}

// makeCgroup makes cgroup path (e.g. /kubestitch-1a2b3c4d) in every
// hierarchy. A new v1 cpuset starts with no CPUs and no memory nodes, so
// it gets its parent's.
func makeCgroup(path string) error {
	mounts, err := cgroupMounts()
	if err != nil {
		return err
	}
	for _, m := range mounts {
		dir := filepath.Join(m, path)
		if err := os.MkdirAll(dir, 0o755); err != nil {
			return fmt.Errorf("localcluster: making cgroup %s: %w", dir, err)
		}
		for _, f := range []string{"cpuset.cpus", "cpuset.mems"} {
			b, err := os.ReadFile(filepath.Join(filepath.Dir(dir), f))
			if err != nil {
				continue // not a v1 cpuset hierarchy
			}
			if err := os.WriteFile(filepath.Join(dir, f), b, 0o644); err != nil {
				return fmt.Errorf("localcluster: %s: %w", filepath.Join(dir, f), err)
			}
		}
	}
	return nil
}

// cgroupPIDs is every process in cgroup path or below it, in any
// hierarchy.
func cgroupPIDs(path string) []int {
	mounts, _ := cgroupMounts()
	seen := map[int]bool{}
	var out []int
	for _, m := range mounts {
		_ = filepath.WalkDir(filepath.Join(m, path), func(p string, d fs.DirEntry, err error) error {
			if err != nil || d.IsDir() || d.Name() != "cgroup.procs" {
				return nil
			}
			b, _ := os.ReadFile(p)
			for _, s := range strings.Fields(string(b)) {
				if pid, err := strconv.Atoi(s); err == nil && !seen[pid] {
					seen[pid] = true
					out = append(out, pid)
				}
			}
			return nil
		})
	}
	return out
}

// killCgroup SIGKILLs every process in cgroup path and below, until none
// is left (10 s at most): containers and shims a stopped containerd
// left.
func killCgroup(path string) {
	deadline := time.Now().Add(10 * time.Second)
	for time.Now().Before(deadline) {
		pids := cgroupPIDs(path)
		if len(pids) == 0 {
			return
		}
		for _, pid := range pids {
			_ = syscall.Kill(pid, syscall.SIGKILL)
		}
		time.Sleep(100 * time.Millisecond)
	}
}

// killMountNamespace SIGKILLs every process but holder in mount
// namespace ns (as /proc/PID/ns/mnt reads), never this process's.
func killMountNamespace(ns string, holder int) {
	if own, err := os.Readlink("/proc/self/ns/mnt"); err != nil || own == ns {
		return
	}
	entries, _ := os.ReadDir("/proc")
	for _, e := range entries {
		pid, err := strconv.Atoi(e.Name())
		if err != nil || pid == holder {
			continue
		}
		if other, err := os.Readlink(fmt.Sprintf("/proc/%d/ns/mnt", pid)); err == nil && other == ns {
			_ = syscall.Kill(pid, syscall.SIGKILL)
		}
	}
}

// removeCgroup removes cgroup path and everything below it, deepest
// first, in every hierarchy. A cgroup's files go with its directory.
func removeCgroup(path string) error {
	mounts, err := cgroupMounts()
	if err != nil {
		return err
	}
	var errs []error
	for _, m := range mounts {
		var dirs []string
		_ = filepath.WalkDir(filepath.Join(m, path), func(p string, d fs.DirEntry, err error) error {
			if err == nil && d.IsDir() {
				dirs = append(dirs, p)
			}
			return nil
		})
		for i := len(dirs) - 1; i >= 0; i-- {
			var err error
			for range 50 { // a cgroup stays busy a moment after its last process
				if err = syscall.Rmdir(dirs[i]); err == nil || errors.Is(err, syscall.ENOENT) {
					err = nil
					break
				}
				time.Sleep(100 * time.Millisecond)
			}
			if err != nil {
				errs = append(errs, fmt.Errorf("rmdir %s: %w", dirs[i], err))
			}
		}
	}
	return errors.Join(errs...)
}

// nodeCgroupPattern matches the cgroup roots real nodes make.
var nodeCgroupPattern = regexp.MustCompile(`^` + nodeNamePrefix + `([0-9a-f]{8})$`)

// holdNodeID holds the machine-wide token of a live node with this id: an
// abstract unix socket, gone with the process that holds it.
func holdNodeID(id string) (net.Listener, error) {
	l, err := net.Listen("unix", "@kubestitch-node-"+id)
	if err != nil {
		return nil, fmt.Errorf("localcluster: a real node %s is already running on this machine: %w", id, err)
	}
	return l, nil
}

// staleNodeID says whether no live node holds id (and so what carries it
// is a killed run's).
func staleNodeID(id string) bool {
	l, err := holdNodeID(id)
	if err != nil {
		return false
	}
	l.Close()
	return true
}

// sweepStaleNodes removes what real nodes of killed runs left: their
// processes and cgroups, those whose id no live node holds.
func sweepStaleNodes(log io.Writer) {
	mounts, _ := cgroupMounts()
	stale := map[string]bool{}
	for _, m := range mounts {
		entries, _ := os.ReadDir(m)
		for _, e := range entries {
			if id := nodeCgroupPattern.FindStringSubmatch(e.Name()); e.IsDir() && id != nil && staleNodeID(id[1]) {
				stale["/"+e.Name()] = true
			}
		}
	}
	for cg := range stale {
		fmt.Fprintf(log, "localcluster: removing cgroup %s, left by a killed run\n", cg)
		killCgroup(cg)
		if err := removeCgroup(cg); err != nil {
			fmt.Fprintf(log, "localcluster: %v\n", err)
		}
	}
}
