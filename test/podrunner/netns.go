package podrunner

import (
	"fmt"
	"net"
	"os/exec"
	"runtime"
	"sync"

	"golang.org/x/sys/unix"
)

// netns is a network namespace of its own, held by one OS thread: a pod's
// network, or a node's host network for the pods that ask for it. Sockets
// keep the namespace they were made in, so the runner listens and dials in
// each namespace from one process; nothing in a namespace can reach the
// machine's network (it has only its loopback device, with the cluster
// addresses it needs added to it).
type netns struct {
	name string
	do   chan func()
	quit chan struct{}
	once sync.Once

	mu    sync.Mutex
	addrs map[string]bool         // addresses on its lo
	ls    map[string]net.Listener // the route of each ip:port
}

// newNetns makes a namespace with lo up and addrs on lo.
func newNetns(name string) (*netns, error) {
	n := &netns{name: name, do: make(chan func()), quit: make(chan struct{}), addrs: map[string]bool{}, ls: map[string]net.Listener{}}
	errc := make(chan error, 1)
	go func() {
		// Never unlocked: when this goroutine returns, Go ends the thread,
		// and the namespace goes with its last socket and process.
		runtime.LockOSThread()
		if err := unix.Unshare(unix.CLONE_NEWNET); err != nil {
			errc <- fmt.Errorf("podrunner: new network namespace: %w", err)
			return
		}
		errc <- nil
		for {
			select {
			case f := <-n.do:
				f()
			case <-n.quit:
				return
			}
		}
	}()
	if err := <-errc; err != nil {
		return nil, err
	}
	if err := n.ip("link", "set", "lo", "up"); err != nil {
		return nil, err
	}
	return n, nil
}

// run calls f on the namespace's thread: sockets f makes, and processes
// it starts, are in the namespace. It fails once the namespace is closed.
func (n *netns) run(f func()) error {
	done := make(chan struct{})
	select {
	case n.do <- func() { f(); close(done) }:
		<-done
		return nil
	case <-n.quit:
		return fmt.Errorf("podrunner: %s is closed", n.name)
	}
}

// ip runs iproute2's ip in the namespace.
func (n *netns) ip(args ...string) error { return n.run1("ip", args...) }

// run1 runs a command in the namespace.
func (n *netns) run1(name string, args ...string) (err error) {
	if rerr := n.run(func() {
		out, e := exec.Command(name, args...).CombinedOutput()
		if e != nil {
			err = fmt.Errorf("podrunner: %s %v in %s: %v: %s", name, args, n.name, e, out)
		}
	}); rerr != nil {
		return rerr
	}
	return err
}

// addAddr puts addr on the namespace's lo (once).
func (n *netns) addAddr(addr string) error {
	n.mu.Lock()
	have := n.addrs[addr]
	n.mu.Unlock()
	if have || addr == "127.0.0.1" {
		return nil
	}
	if err := n.ip("addr", "add", addr+"/32", "dev", "lo"); err != nil {
		return err
	}
	n.mu.Lock()
	n.addrs[addr] = true
	n.mu.Unlock()
	return nil
}

// route leads connections to hostport from inside the namespace to serve,
// once per hostport; false if it did already. As kube-proxy does, by
// DNAT (iptables' nat OUTPUT chain): to a listener on the namespace's
// 127.0.0.1 at a port of its own, so that a process of the namespace can
// still listen on that port of every address (0.0.0.0:4317), as pods do.
func (n *netns) route(hostport string, serve func(net.Conn)) (bool, error) {
	n.mu.Lock()
	_, have := n.ls[hostport]
	n.mu.Unlock()
	if have {
		return false, nil
	}
	host, port, err := net.SplitHostPort(hostport)
	if err != nil {
		return false, err
	}
	// A local address: routable, and nothing listens on it.
	if err := n.addAddr(host); err != nil {
		return false, err
	}
	var l net.Listener
	if rerr := n.run(func() { l, err = net.Listen("tcp", "127.0.0.1:0") }); rerr != nil {
		return false, rerr
	}
	if err != nil {
		return false, fmt.Errorf("podrunner: listen in %s: %w", n.name, err)
	}
	if err := n.run1("iptables", "-w", "-t", "nat", "-A", "OUTPUT", "-d", host+"/32", "-p", "tcp", "--dport", port,
		"-j", "DNAT", "--to-destination", l.Addr().String()); err != nil {
		_ = l.Close()
		return false, err
	}
	n.mu.Lock()
	n.ls[hostport] = l
	n.mu.Unlock()
	go acceptEach(l, serve)
	return true, nil
}

// dial connects to hostport from inside the namespace.
func (n *netns) dial(hostport string) (c net.Conn, err error) {
	if rerr := n.run(func() { c, err = net.Dial("tcp", hostport) }); rerr != nil {
		return nil, rerr
	}
	return c, err
}

func (n *netns) closed() bool {
	select {
	case <-n.quit:
		return true
	default:
		return false
	}
}

// close stops its listeners and ends its thread.
func (n *netns) close() {
	n.once.Do(func() {
		n.mu.Lock()
		for _, l := range n.ls {
			_ = l.Close()
		}
		n.mu.Unlock()
		close(n.quit)
	})
}

// acceptEach serves each connection l accepts, until l is closed.
func acceptEach(l net.Listener, serve func(net.Conn)) {
	for {
		c, err := l.Accept()
		if err != nil {
			return
		}
		go serve(c)
	}
}
