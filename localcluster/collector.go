package localcluster

// The collectors beside the local control plane: the built
// otelcol-kubestitch binary as a process, configured in YAML like the real
// deployment, for the demo and the tests.

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"time"
)

// FragmentKey is the fragment key of every collector the local test bed
// runs (the demo's and the tests'). A sender that forges fragments in a
// test must not use it.
const FragmentKey = "kubestitch-test-fragment-key-0123456789abcdef"

// Collector is a running otelcol-kubestitch process.
type Collector struct {
	Name string
	// OTLPEndpoint is its OTLP gRPC receiver, host:port.
	OTLPEndpoint string
	// TracesFile is where its file exporter writes.
	TracesFile string
	// StateDir is its file_storage directory.
	StateDir string
	// MetricsEndpoint serves its own telemetry (Prometheus).
	MetricsEndpoint string
	// SpanMetricsFile is where the gateway writes its span metrics (the
	// SLIs) as OTLP JSON; PrometheusEndpoint serves them for a scrape.
	SpanMetricsFile    string
	PrometheusEndpoint string
	Log                string

	bin, config string
	overrides   []string
	env         []string
	proc        *Process
}

// CollectorOptions of a collector process.
type CollectorOptions struct {
	Name string
	// Bin is the binary; Config the YAML file.
	Bin, Config string
	// Dir holds state, output and log.
	Dir string
	// Env adds environment variables (KEY=VALUE) the config reads.
	Env []string
	// Overrides are further --config values merged over Config, e.g.
	// "yaml:receivers::k8s_watch::kinds: [Deployment]".
	Overrides []string
}

// NewCollector prepares a collector; Start runs it.
func NewCollector(o CollectorOptions) (*Collector, error) {
	c := &Collector{Name: o.Name, bin: o.Bin, config: o.Config, overrides: o.Overrides}
	ports := make([]int, 6)
	for i := range ports {
		p, err := FreePort()
		if err != nil {
			return nil, err
		}
		ports[i] = p
	}
	c.OTLPEndpoint = fmt.Sprintf("127.0.0.1:%d", ports[0])
	c.MetricsEndpoint = fmt.Sprintf("127.0.0.1:%d", ports[3])
	c.PrometheusEndpoint = fmt.Sprintf("127.0.0.1:%d", ports[4])
	c.TracesFile = filepath.Join(o.Dir, o.Name+"-traces.json")
	c.SpanMetricsFile = filepath.Join(o.Dir, o.Name+"-metrics.json")
	c.StateDir = filepath.Join(o.Dir, o.Name+"-state")
	c.Log = filepath.Join(o.Dir, o.Name+".log")
	if err := os.MkdirAll(c.StateDir, 0o755); err != nil {
		return nil, err
	}
	// Every collector of the tests signs and verifies fragments with one
	// test key, in its own file as a mounted Secret would be.
	keyFile := filepath.Join(o.Dir, o.Name+"-fragment-key")
	if err := os.WriteFile(keyFile, []byte(FragmentKey+"\n"), 0o600); err != nil {
		return nil, err
	}
	c.env = append(os.Environ(),
		"KUBESTITCH_FRAGMENT_KEY_FILE="+keyFile,
		"KUBESTITCH_OTLP_GRPC_ENDPOINT="+c.OTLPEndpoint,
		fmt.Sprintf("KUBESTITCH_OTLP_HTTP_ENDPOINT=127.0.0.1:%d", ports[1]),
		fmt.Sprintf("KUBESTITCH_HEALTH_ENDPOINT=127.0.0.1:%d", ports[2]),
		"KUBESTITCH_METRICS_PORT="+fmt.Sprint(ports[3]),
		"KUBESTITCH_STATE_DIR="+c.StateDir,
		"KUBESTITCH_TRACES_FILE="+c.TracesFile,
		"KUBESTITCH_SPANMETRICS_FILE="+c.SpanMetricsFile,
		"KUBESTITCH_PROMETHEUS_ENDPOINT="+c.PrometheusEndpoint,
		fmt.Sprintf("KUBESTITCH_PPROF_ENDPOINT=127.0.0.1:%d", ports[5]),
	)
	c.env = append(c.env, o.Env...)
	return c, nil
}

// Start runs the collector and waits until its health check answers.
func (c *Collector) Start(ctx context.Context) error {
	args := []string{"--config", c.config}
	for _, o := range c.overrides {
		args = append(args, "--config", o)
	}
	p, err := StartProcess(ProcessOptions{Name: "collector " + c.Name, Bin: c.bin, Args: args, Env: c.env, Log: c.Log, AppendLog: true})
	if err != nil {
		return err
	}
	c.proc = p
	health := ""
	for _, e := range c.env {
		if v, ok := strings.CutPrefix(e, "KUBESTITCH_HEALTH_ENDPOINT="); ok {
			health = v
		}
	}
	deadline := time.Now().Add(60 * time.Second)
	for time.Now().Before(deadline) {
		select {
		case <-p.Done():
			return fmt.Errorf("collector %s exited at start (%v):\n%s", c.Name, p.Err(), LogTail(c.Log, 30))
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(100 * time.Millisecond):
		}
		resp, err := http.Get("http://" + health + "/")
		if err == nil {
			resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				return nil
			}
		}
	}
	return fmt.Errorf("collector %s not healthy after 60s:\n%s", c.Name, LogTail(c.Log, 30))
}

// PID of the running process, 0 if none.
func (c *Collector) PID() int {
	if c.proc == nil {
		return 0
	}
	return c.proc.PID()
}

// Stop sends SIGTERM (the collector flushes and exits) and waits.
func (c *Collector) Stop() error { return c.signal(syscall.SIGTERM, 30*time.Second) }

// Kill sends SIGKILL: nothing is flushed, as in a crash.
func (c *Collector) Kill() error { return c.signal(syscall.SIGKILL, 10*time.Second) }

func (c *Collector) signal(sig syscall.Signal, grace time.Duration) error {
	if c.proc == nil {
		return nil
	}
	if err := c.proc.Stop(sig, grace); err != nil {
		return errors.New("collector did not stop in time; killed")
	}
	return nil
}

// SetEnv adds environment variables before Start.
func (c *Collector) SetEnv(kv ...string) { c.env = append(c.env, kv...) }
