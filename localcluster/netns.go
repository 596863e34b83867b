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
	"time"

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
	// known to live (a PID can be reused): every entry goes through f.
	pid int
	// mu is held (read) while f is in use, so Close cannot hand its
	// descriptor number to another file in between.
	mu     sync.RWMutex
	f      *os.File
	closed bool
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
	n.mu.RLock()
	defer n.mu.RUnlock()
	if n.closed {
		return errors.New("localcluster: the network namespace is closed")
	}
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
	if out, err := n.command(append([]string{"ip"}, args...)...); err != nil {
		return fmt.Errorf("localcluster: ip %s (in a test bed network): %w: %s", strings.Join(args, " "), err, out)
	}
	return nil
}

// command runs cmd inside the namespace: nsenter enters it through the
// namespace's own descriptor (fd 3), never by a PID that could be reused.
func (n *netNS) command(cmd ...string) ([]byte, error) {
	return n.commandWith(nil, cmd...)
}

// commandWith is command with other namespaces passed to cmd too, as fd
// 4 on (an ip netns argument takes /proc/self/fd/4).
func (n *netNS) commandWith(others []*netNS, cmd ...string) ([]byte, error) {
	files := []*os.File{}
	for _, o := range append([]*netNS{n}, others...) {
		o.mu.RLock()
		defer o.mu.RUnlock()
		if o.closed {
			return nil, errors.New("localcluster: the network namespace is closed")
		}
		files = append(files, o.f)
	}
	c := exec.Command("nsenter", append([]string{"--net=/proc/self/fd/3", "--"}, cmd...)...)
	c.ExtraFiles = files
	return c.CombinedOutput()
}

// sysctl sets a namespaced sysctl (a key under /proc/sys/net) inside the
// namespace, never the machine's: /proc/sys/net is the reader's network
// namespace's.
func (n *netNS) sysctl(key, value string) error {
	if !strings.HasPrefix(key, "net/") || strings.Contains(key, "..") {
		return fmt.Errorf("localcluster: %s is not a network namespace's sysctl", key)
	}
	out, err := n.command("/bin/sh", "-c", `echo "$1" > "$2"`, "sysctl", value, "/proc/sys/"+key)
	if err != nil {
		return fmt.Errorf("localcluster: sysctl %s=%s (in a test bed network): %w: %s", key, value, err, out)
	}
	return nil
}

// Close closes the namespace's descriptor (the namespace goes when its
// processes have too); it may be called more than once.
func (n *netNS) Close() error {
	n.mu.Lock()
	defer n.mu.Unlock()
	if n.closed {
		return nil
	}
	n.closed = true
	return n.f.Close()
}

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
		if errors.Is(err, net.ErrClosed) {
			return
		}
		if err != nil {
			// Out of descriptors, a connection reset before accept:
			// the next one may go through.
			time.Sleep(50 * time.Millisecond)
			continue
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
