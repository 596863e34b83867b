package localcluster

import (
	"context"
	"crypto/tls"
	"fmt"
	"net/http"
	"time"
)

// Waiting for the components: readiness checks that fail as soon as one
// of them died.

// poll checks cond every 100ms until it is true, a component died, or
// timeout passes.
func (c *Cluster) poll(ctx context.Context, what string, timeout time.Duration, cond func() (bool, error)) error {
	deadline := time.Now().Add(timeout)
	for {
		ok, err := cond()
		if err != nil {
			return err
		}
		if ok {
			return nil
		}
		if err := c.procs.died(); err != nil {
			return fmt.Errorf("localcluster: waiting for %s: %w", what, err)
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("localcluster: %s not there after %s%s", what, timeout, c.LogTails(10))
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(100 * time.Millisecond):
		}
	}
}

func (c *Cluster) waitHTTP(ctx context.Context, name, url string, tlsCfg *tls.Config, timeout time.Duration) error {
	return c.waitHTTPVia(ctx, &http.Transport{TLSClientConfig: tlsCfg}, name+" ready at "+url, url, timeout)
}

// waitHTTPIn is waitHTTP inside a network namespace of the test bed.
func (c *Cluster) waitHTTPIn(ctx context.Context, ns *netNS, name, url string, timeout time.Duration) error {
	return c.waitHTTPVia(ctx, &http.Transport{DialContext: ns.DialContext}, name+" ready at "+url+" (in its node)", url, timeout)
}

// waitHTTPVia polls url through tr until it answers 200.
func (c *Cluster) waitHTTPVia(ctx context.Context, tr *http.Transport, what, url string, timeout time.Duration) error {
	hc := &http.Client{Timeout: 2 * time.Second, Transport: tr}
	defer hc.CloseIdleConnections()
	return c.poll(ctx, what, timeout, func() (bool, error) {
		resp, err := hc.Get(url)
		if err != nil {
			return false, nil
		}
		resp.Body.Close()
		return resp.StatusCode == http.StatusOK, nil
	})
}
