package podrunner

import (
	"context"
	"fmt"
	"io"
	"net"
	"net/http"
	"strconv"
	"time"
)

// Reaching into a pod's network: its readiness probe and a test's requests.

// Get fetches url from inside the pod's network (its own 127.0.0.1, say
// the collector's telemetry on its metrics port), for a test's diagnosis.
func (r *Runner) Get(p *Pod, url string) (string, error) {
	resp, err := p.httpClient(5 * time.Second).Get(url)
	if err != nil {
		return "", err
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	return string(b), err
}

// probe runs the container's readiness probe (an HTTP GET, inside the
// pod's network, as the kubelet does); a pod without one is ready once
// its process runs.
func (r *Runner) probe(p *Pod) bool {
	c := p.spec.Spec.Containers[0]
	if c.ReadinessProbe == nil || c.ReadinessProbe.HTTPGet == nil {
		return true
	}
	g := c.ReadinessProbe.HTTPGet
	host := g.Host
	if host == "" {
		host = p.IP
	}
	port := g.Port.IntValue()
	if g.Port.StrVal != "" {
		for _, cp := range c.Ports {
			if cp.Name == g.Port.StrVal {
				port = int(cp.ContainerPort)
			}
		}
	}
	resp, err := p.httpClient(time.Second).Get(fmt.Sprintf("http://%s%s", net.JoinHostPort(host, strconv.Itoa(port)), g.Path))
	if err != nil {
		return false
	}
	_ = resp.Body.Close()
	return resp.StatusCode >= 200 && resp.StatusCode < 400
}

// httpClient makes its connections from inside the pod's network, one per
// request.
func (p *Pod) httpClient(timeout time.Duration) *http.Client {
	return &http.Client{Timeout: timeout, Transport: &http.Transport{
		DisableKeepAlives: true,
		DialContext:       func(_ context.Context, _, addr string) (net.Conn, error) { return p.net.dial(addr) },
	}}
}
