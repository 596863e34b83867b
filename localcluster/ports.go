package localcluster

import (
	"errors"
	"fmt"
	"math/rand/v2"
	"net"
	"os"
	"strconv"
	"strings"
	"sync"
)

// errPortInUse marks a start that failed because a port was taken between
// picking and binding it; the start is retried with new ports.
var errPortInUse = errors.New("port in use")

func retryPorts(start func() error) error {
	var err error
	for range 3 {
		if err = start(); !errors.Is(err, errPortInUse) {
			return err
		}
	}
	return err
}

// portReservations holds every port FreePort handed out in this process,
// each with an abstract unix socket named after it. A port is picked long
// before its component binds it (kube-apiserver's goes into kubeconfigs
// that collectors start with first), and a component that restarts leaves
// its port unbound for a while; without the reservation a later pick in
// this process, or in a test package running beside it, could take it.
// Abstract sockets vanish with the process, so nothing is left on disk.
var portReservations = struct {
	sync.Mutex
	held map[int]net.Listener
}{held: map[int]net.Listener{}}

// FreePort picks a free loopback port below the kernel's ephemeral range,
// never one it handed out before in this process nor one another process
// using FreePort holds. A port from the ephemeral range (what binding :0
// gives) can be taken by any outgoing connection's local end while its
// server is down, e.g. between a collector's kill and its restart in a
// fault test; below the range only listeners take ports, and ours all
// come from here.
func FreePort() (int, error) {
	low := ephemeralLow()
	portReservations.Lock()
	defer portReservations.Unlock()
	for range 1000 {
		p := 10000 + rand.IntN(low-10000)
		if _, mine := portReservations.held[p]; mine {
			continue
		}
		reservation, err := net.Listen("unix", portReservationName(p))
		if err != nil {
			continue // another process holds it
		}
		l, err := net.Listen("tcp", fmt.Sprintf("127.0.0.1:%d", p))
		if err != nil {
			reservation.Close()
			continue
		}
		l.Close()
		portReservations.held[p] = reservation
		return p, nil
	}
	return 0, errors.New("localcluster: no free loopback port below the ephemeral range")
}

// portReservationName is the abstract unix socket ("@" prefix) that
// reserves port p on this machine.
func portReservationName(p int) string {
	return fmt.Sprintf("@kubestitch-localcluster-port-%d", p)
}

// ephemeralLow is the first port of the kernel's ephemeral range.
func ephemeralLow() int {
	b, err := os.ReadFile("/proc/sys/net/ipv4/ip_local_port_range")
	if err == nil {
		if f := strings.Fields(string(b)); len(f) == 2 {
			if n, err := strconv.Atoi(f[0]); err == nil && n > 11000 {
				return n
			}
		}
	}
	return 32768
}
