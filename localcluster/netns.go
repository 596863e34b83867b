package localcluster

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"os/exec"
	"runtime"
	"strings"
	"sync"

	"golang.org/x/sys/unix"
)

// netNS is a network namespace of the test bed (the cluster network's or
// a real node's), held by a process of its own (unshare -n). This process
// listens and dials in it from a thread that enters it for the one call:
// a socket keeps the namespace it was made in, so the test bed carries
// connections between the machine's loopback and the namespaces without
// any address, route or sysctl of the machine's.
type netNS struct {
	// pid holds the namespace; f is the namespace, opened while pid is
	// known to live (a PID can be reused).
	pid int
	f   *os.File
}

// openNetNS opens the network namespace of pid and checks it is not this
// process's own.
func openNetNS(pid int) (*netNS, error) {
	f, err := os.Open(fmt.Sprintf("/proc/%d/ns/net", pid))
	if err != nil {
		return nil, err
	}
	var own, its unix.Stat_t
	if err := unix.Stat("/proc/self/ns/net", &own); err != nil {
		f.Close()
		return nil, err
	}
	if err := unix.Fstat(int(f.Fd()), &its); err != nil {
		f.Close()
		return nil, err
	}
	if own.Ino == its.Ino && own.Dev == its.Dev {
		f.Close()
		return nil, errors.New("localcluster: the namespace is still this machine's network")
	}
	return &netNS{pid: pid, f: f}, nil
}

// do runs fn on a thread inside the namespace. The thread returns to this
// process's namespace after; if it cannot, it stays locked and ends with
// the goroutine, so no other goroutine ever runs in the wrong network.
func (n *netNS) do(fn func() error) error {
	errc := make(chan error, 1)
	go func() {
		runtime.LockOSThread()
		own, err := os.Open("/proc/thread-self/ns/net")
		if err != nil {
			runtime.UnlockOSThread()
			errc <- err
			return
		}
		defer own.Close()
		if err := unix.Setns(int(n.f.Fd()), unix.CLONE_NEWNET); err != nil {
			runtime.UnlockOSThread()
			errc <- fmt.Errorf("localcluster: entering a network namespace: %w", err)
			return
		}
		ferr := fn()
		if err := unix.Setns(int(own.Fd()), unix.CLONE_NEWNET); err != nil {
			errc <- errors.Join(ferr, err)
			return // the thread stays locked and dies with this goroutine
		}
		runtime.UnlockOSThread()
		errc <- ferr
	}()
	return <-errc
}

// Listen listens on addr inside the namespace.
func (n *netNS) Listen(network, addr string) (l net.Listener, err error) {
	err = n.do(func() error {
		l, err = net.Listen(network, addr)
		return err
	})
	return l, err
}

// ListenPacket listens on a packet address inside the namespace.
func (n *netNS) ListenPacket(network, addr string) (pc net.PacketConn, err error) {
	err = n.do(func() error {
		pc, err = net.ListenPacket(network, addr)
		return err
	})
	return pc, err
}

// DialContext dials addr from inside the namespace.
func (n *netNS) DialContext(ctx context.Context, network, addr string) (c net.Conn, err error) {
	err = n.do(func() error {
		var d net.Dialer
		c, err = d.DialContext(ctx, network, addr)
		return err
	})
	return c, err
}

// ip runs iproute2's ip inside the namespace.
func (n *netNS) ip(args ...string) error {
	all := append([]string{"-t", fmt.Sprint(n.pid), "-n", "--", "ip"}, args...)
	if out, err := exec.Command("nsenter", all...).CombinedOutput(); err != nil {
		return fmt.Errorf("localcluster: ip %s (in a test bed network): %w: %s", strings.Join(args, " "), err, out)
	}
	return nil
}

// sysctl sets a namespaced sysctl (a key under /proc/sys/net) inside the
// namespace, never the machine's: /proc/sys/net is the reader's network
// namespace's.
func (n *netNS) sysctl(key, value string) error {
	if !strings.HasPrefix(key, "net/") || strings.Contains(key, "..") {
		return fmt.Errorf("localcluster: %s is not a network namespace's sysctl", key)
	}
	out, err := exec.Command("nsenter", "-t", fmt.Sprint(n.pid), "-n", "--", "/bin/sh", "-c", `echo "$1" > "$2"`, "sysctl", value, "/proc/sys/"+key).CombinedOutput()
	if err != nil {
		return fmt.Errorf("localcluster: sysctl %s=%s (in a test bed network): %w: %s", key, value, err, out)
	}
	return nil
}

func (n *netNS) Close() error { return n.f.Close() }

// forwarder carries each connection accepted on its listener to what
// dial returns, until Close.
type forwarder struct {
	l    net.Listener
	dial func(ctx context.Context) (net.Conn, error)

	mu     sync.Mutex
	conns  map[net.Conn]bool
	closed bool
	wg     sync.WaitGroup
}

// forward starts a forwarder on l.
func forward(l net.Listener, dial func(ctx context.Context) (net.Conn, error)) *forwarder {
	f := &forwarder{l: l, dial: dial, conns: map[net.Conn]bool{}}
	f.wg.Add(1)
	go f.accept()
	return f
}

func (f *forwarder) accept() {
	defer f.wg.Done()
	for {
		c, err := f.l.Accept()
		if err != nil {
			return
		}
		f.wg.Add(1)
		go func() {
			defer f.wg.Done()
			f.carry(c)
		}()
	}
}

func (f *forwarder) carry(c net.Conn) {
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	up, err := f.dial(ctx)
	if err != nil {
		c.Close()
		return
	}
	if !f.track(c, up) {
		return
	}
	done := make(chan struct{}, 2)
	go func() { io.Copy(up, c); closeWrite(up); done <- struct{}{} }() //nolint:errcheck
	go func() { io.Copy(c, up); closeWrite(c); done <- struct{}{} }()  //nolint:errcheck
	<-done
	<-done
	f.untrack(c, up)
}

func closeWrite(c net.Conn) {
	if tc, ok := c.(*net.TCPConn); ok {
		tc.CloseWrite() //nolint:errcheck
	}
}

func (f *forwarder) track(cs ...net.Conn) bool {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.closed {
		for _, c := range cs {
			c.Close()
		}
		return false
	}
	for _, c := range cs {
		f.conns[c] = true
	}
	return true
}

func (f *forwarder) untrack(cs ...net.Conn) {
	f.mu.Lock()
	defer f.mu.Unlock()
	for _, c := range cs {
		c.Close()
		delete(f.conns, c)
	}
}

// Close stops accepting and ends every connection carried.
func (f *forwarder) Close() {
	f.mu.Lock()
	f.closed = true
	for c := range f.conns {
		c.Close()
	}
	f.mu.Unlock()
	f.l.Close()
	f.wg.Wait()
}
