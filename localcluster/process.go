package localcluster

import (
	"errors"
	"fmt"
	"os"
	"os/exec"
	"syscall"
	"time"
)

// ProcessOptions of a supervised process.
type ProcessOptions struct {
	// Name says which process it is, in errors.
	Name string
	// Bin is the program; Args its arguments.
	Bin  string
	Args []string
	// Env is its whole environment; nil: this process's.
	Env []string
	// Log receives its stdout and stderr: truncated first, or appended to
	// with AppendLog.
	Log       string
	AppendLog bool
	// SameGroup keeps it in this process's group, and a signal then
	// reaches it alone; by default it leads a group of its own and a
	// signal reaches its children too.
	SameGroup bool
	// Cloneflags are namespaces of its own (syscall.CLONE_*).
	Cloneflags uintptr
	// StartIn, if set, runs the start (e.g. inside a network namespace).
	StartIn func(start func()) error
}

// Process is a child process under supervision: its output in a log file,
// killed with this process (Pdeathsig) if nothing stops it first. The
// local control plane's components, the collectors and the pod runner's
// containers run as one.
type Process struct {
	Name string
	// Log is its stdout and stderr.
	Log string

	cmd       *exec.Cmd
	sameGroup bool
	done      chan struct{}
	err       error
}

// StartProcess starts a process and watches for its exit.
func StartProcess(o ProcessOptions) (*Process, error) {
	flags := os.O_CREATE | os.O_WRONLY | os.O_TRUNC
	if o.AppendLog {
		flags = os.O_CREATE | os.O_WRONLY | os.O_APPEND
	}
	f, err := os.OpenFile(o.Log, flags, 0o644)
	if err != nil {
		return nil, err
	}
	cmd := exec.Command(o.Bin, o.Args...)
	cmd.Env = o.Env
	cmd.Stdout, cmd.Stderr = f, f
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: !o.SameGroup, Cloneflags: o.Cloneflags, Pdeathsig: syscall.SIGKILL}
	start := func() { err = cmd.Start() }
	if o.StartIn != nil {
		if serr := o.StartIn(start); serr != nil {
			f.Close()
			return nil, serr
		}
	} else {
		start()
	}
	if err != nil {
		f.Close()
		return nil, err
	}
	p := &Process{Name: o.Name, Log: o.Log, cmd: cmd, sameGroup: o.SameGroup, done: make(chan struct{})}
	go func() {
		p.err = cmd.Wait()
		f.Close()
		close(p.done)
	}()
	return p, nil
}

// PID is its process ID.
func (p *Process) PID() int { return p.cmd.Process.Pid }

// Done is closed when it has exited.
func (p *Process) Done() <-chan struct{} { return p.done }

// Exited says whether it has exited.
func (p *Process) Exited() bool {
	select {
	case <-p.done:
		return true
	default:
		return false
	}
}

// Err is how it exited (cmd.Wait's error), once Done is closed.
func (p *Process) Err() error {
	<-p.done
	return p.err
}

// ErrKilled is Stop's error when the process outlived its grace period
// and was killed.
var ErrKilled = errors.New("did not stop in time; killed")

// Stop sends sig (to its group, unless SameGroup) and waits for the exit;
// after grace it sends SIGKILL, waits, and returns ErrKilled. A process
// that has exited already is left alone.
func (p *Process) Stop(sig syscall.Signal, grace time.Duration) error {
	if p.Exited() {
		return nil
	}
	p.kill(sig)
	select {
	case <-p.done:
		return nil
	case <-time.After(grace):
		p.kill(syscall.SIGKILL)
		<-p.done
		return fmt.Errorf("%s: %w", p.Name, ErrKilled)
	}
}

func (p *Process) kill(sig syscall.Signal) {
	if p.sameGroup {
		_ = syscall.Kill(p.PID(), sig)
	} else {
		_ = syscall.Kill(-p.PID(), sig)
	}
}
