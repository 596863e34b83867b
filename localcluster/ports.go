package localcluster

import (
	"errors"
	"fmt"
	"math/rand/v2"
	"net"
	"os"
	"strconv"
	"strings"
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

// FreePort picks a free loopback port below the kernel's ephemeral range.
// A port from the ephemeral range (what binding :0 gives) can be taken by
// any outgoing connection's local end while its server is down, e.g.
// between a collector's kill and its restart in a fault test; below the
// range only listeners take ports, and ours all come from here.
func FreePort() (int, error) {
	low := ephemeralLow()
	for range 200 {
		p := 10000 + rand.IntN(low-10000)
		l, err := net.Listen("tcp", fmt.Sprintf("127.0.0.1:%d", p))
		if err != nil {
			continue
		}
		l.Close()
		return p, nil
	}
	return 0, errors.New("localcluster: no free loopback port below the ephemeral range")
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
