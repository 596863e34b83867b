// Command localcluster runs the local control plane of the test bed.
//
//	localcluster build                 build (or find cached) binaries, the kubelet's included
//	localcluster up [-dir D] [-tracing HOST:PORT] [-nodes N]
//	                                   start; runs until Ctrl-C or `down`
//	localcluster down [-dir D]         stop the control plane `up` started in D
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"os"
	"os/signal"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/kubestitch/kubestitch/localcluster"
)

func main() {
	if len(os.Args) < 2 {
		usage()
	}
	fs := flag.NewFlagSet(os.Args[1], flag.ExitOnError)
	dir := fs.String("dir", ".localcluster", "directory for PKI, kubeconfig, logs and the pid file")
	tracing := fs.String("tracing", "", "OTLP gRPC endpoint for kube-apiserver's spans (host:port)")
	nodes := fs.Int("nodes", 1, "kwok nodes")
	stages := fs.String("pod-stages", "fast", "kwok pod lifecycle: fast or general")
	_ = fs.Parse(os.Args[2:])
	var err error
	switch os.Args[1] {
	case "build":
		// The real node's too: make demo and make test run a kubelet on
		// containerd.
		_, err = localcluster.Build(context.Background(), localcluster.DefaultCacheDir(), localcluster.BuildOptions{Kubelet: true, Containerd: true}, os.Stderr)
	case "up":
		err = up(*dir, *tracing, *nodes, *stages)
	case "down":
		err = down(*dir)
	default:
		usage()
	}
	if err != nil {
		fmt.Fprintln(os.Stderr, "localcluster:", err)
		os.Exit(1)
	}
}

func usage() {
	fmt.Fprintln(os.Stderr, "usage: localcluster build | up [-dir D] [-tracing HOST:PORT] [-nodes N] | down [-dir D]")
	os.Exit(2)
}

func up(dir, tracing string, nodes int, stages string) error {
	abs, err := filepath.Abs(dir)
	if err != nil {
		return err
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	c, err := localcluster.Up(ctx, localcluster.Options{Dir: abs, TracingEndpoint: tracing, Nodes: nodes, PodStages: stages})
	if err != nil {
		return err
	}
	defer c.Down()
	pidFile := filepath.Join(abs, "pid")
	if err := writePidFile(pidFile, os.Getpid()); err != nil {
		return err
	}
	defer os.Remove(pidFile)
	fmt.Printf("localcluster: running; export KUBECONFIG=%s\nlocalcluster: stop with Ctrl-C or `localcluster down -dir %s`\n", c.Kubeconfig, dir)
	for name, pid := range c.PIDs() {
		fmt.Printf("localcluster: %s pid %d\n", name, pid)
	}
	<-ctx.Done()
	fmt.Println("localcluster: stopping")
	return nil
}

// writePidFile writes the PID and the process's start time: a PID alone
// may name another process once this one has exited.
func writePidFile(path string, pid int) error {
	start, err := startTime(pid)
	if err != nil {
		return err
	}
	return os.WriteFile(path, []byte(fmt.Sprintf("%d %s\n", pid, start)), 0o644)
}

// startTime is the start time of a process (field 22 of /proc/PID/stat,
// clock ticks since boot): with the PID, it names one process for good.
func startTime(pid int) (string, error) {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return "", err
	}
	// The command name (field 2) is in parentheses and may hold spaces.
	rest := string(b[strings.LastIndexByte(string(b), ')')+1:])
	f := strings.Fields(rest)
	if len(f) < 20 {
		return "", fmt.Errorf("/proc/%d/stat: too few fields", pid)
	}
	return f[19], nil
}

func down(dir string) error {
	b, err := os.ReadFile(filepath.Join(dir, "pid"))
	if err != nil {
		return fmt.Errorf("no control plane running from %s: %w", dir, err)
	}
	f := strings.Fields(string(b))
	if len(f) != 2 {
		return fmt.Errorf("%s/pid: want \"PID STARTTIME\", got %q", dir, b)
	}
	pid, err := strconv.Atoi(f[0])
	if err != nil {
		return err
	}
	if now, err := startTime(pid); err != nil || now != f[1] {
		return fmt.Errorf("pid %d is not the process `up` started (started at %s, now %q): it exited; %s/pid is stale, nothing signalled", pid, f[1], now, dir)
	}
	if err := syscall.Kill(pid, syscall.SIGTERM); err != nil {
		return err
	}
	for range 600 {
		if err := syscall.Kill(pid, 0); errors.Is(err, syscall.ESRCH) {
			return nil
		}
		time.Sleep(100 * time.Millisecond)
	}
	return fmt.Errorf("pid %d still running after 60s", pid)
}
