package localcluster

import (
	"context"
	"io"
	"net"
	"os"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// TestNetNSListensAndDialsInside: a listener made in a namespace of the
// test bed is not on this machine's loopback, a dial from inside reaches
// it, and a forwarder carries a connection from the machine's loopback to
// it both ways; this process's own network is untouched after.
func TestNetNSListensAndDialsInside(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Skip("network namespaces need root")
	}
	p, err := StartProcess(ProcessOptions{Name: "netns", Bin: "unshare", Args: []string{"-n", "--", "sleep", "infinity"}, Log: t.TempDir() + "/log"})
	require.NoError(t, err)
	t.Cleanup(func() { p.Stop(9, time.Second) }) //nolint:errcheck
	var ns *netNS
	require.Eventually(t, func() bool { ns, err = openNetNS(p.PID()); return err == nil }, 5*time.Second, 10*time.Millisecond)
	t.Cleanup(func() { ns.Close() })
	require.NoError(t, ns.ip("link", "set", "lo", "up"))

	inside, err := ns.Listen("tcp", "127.0.0.1:0")
	require.NoError(t, err)
	defer inside.Close()
	go func() {
		for {
			c, err := inside.Accept()
			if err != nil {
				return
			}
			go func() { io.Copy(c, c); c.Close() }() //nolint:errcheck
		}
	}()
	addr := inside.Addr().String()
	if c, err := net.DialTimeout("tcp", addr, time.Second); err == nil {
		c.Close()
		t.Fatalf("%s inside the namespace answered on this machine's loopback", addr)
	}

	host, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(t, err)
	f := forward(host, func(ctx context.Context) (net.Conn, error) { return ns.DialContext(ctx, "tcp", addr) })
	defer f.Close()
	c, err := net.Dial("tcp", host.Addr().String())
	require.NoError(t, err)
	_, err = c.Write([]byte("ping"))
	require.NoError(t, err)
	buf := make([]byte, 4)
	_, err = io.ReadFull(c, buf)
	require.NoError(t, err)
	assert.Equal(t, "ping", string(buf))
	c.Close()

	// Every thread of this process is back in the machine's network (a
	// thread left inside would run any goroutine there).
	self, err := os.Readlink("/proc/self/ns/net")
	require.NoError(t, err)
	tasks, err := os.ReadDir("/proc/self/task")
	require.NoError(t, err)
	for _, task := range tasks {
		if ns, err := os.Readlink("/proc/self/task/" + task.Name() + "/ns/net"); err == nil {
			assert.Equal(t, self, ns, "thread %s", task.Name())
		}
	}
}
