package localcluster

// The start-up sequence of the local control plane with its collectors,
// written once for the demo, the e2e tests and the deploy/ tests: choose
// every collector's ports, prepare the cluster (its kubeconfig, with the
// apiserver's port chosen), start the collectors on that kubeconfig, then
// start the cluster, so nothing kube-apiserver or the kubelet exports is
// lost; stop in the other order, so their last spans still reach a
// collector.

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
)

// StackOptions of a Stack.
type StackOptions struct {
	// Cluster are the control plane's options. Its TracingEndpoint (and
	// the kubelet's) is set to the collector that receives those spans,
	// and must be empty if one does.
	Cluster Options
	// Bin is the collector binary (bin/otelcol-kubestitch).
	Bin string
	// Dir holds each collector's state, output and log (by its name).
	Dir string
	// Collectors are started in this order, all before the cluster.
	Collectors []StackCollector
}

// StackCollector is one collector process of a Stack.
type StackCollector struct {
	// Name names its files in StackOptions.Dir; unique in the Stack.
	Name string
	// Config is its YAML config file; or ConfigYAML, written to
	// Dir/<Name>-config.yaml. Exactly one of the two.
	Config     string
	ConfigYAML []byte
	// Overrides are further --config values merged over the config.
	Overrides []string
	// Env adds environment variables (KEY=VALUE). KUBECONFIG is set to
	// the cluster's admin kubeconfig.
	Env []string
	// APIServerSpans makes kube-apiserver export its spans to this
	// collector; KubeletSpans the real kubelet and its runtime (default:
	// wherever the apiserver's go). One collector each at most.
	APIServerSpans bool
	KubeletSpans   bool
}

// Stack is a prepared (PrepareStack) or running (Start) control plane with
// its collectors.
type Stack struct {
	Cluster *Cluster
	// Collectors in the order of StackOptions.Collectors.
	Collectors []*Collector
	started    []*Collector
}

// Validate says what is wrong with the options, before anything starts.
func (o StackOptions) Validate() error {
	var errs []error
	if o.Bin == "" {
		errs = append(errs, errors.New("no collector binary (Bin)"))
	}
	if o.Dir == "" {
		errs = append(errs, errors.New("no directory for the collectors (Dir)"))
	}
	if len(o.Collectors) == 0 {
		errs = append(errs, errors.New("no collector: use Up for a control plane alone"))
	}
	seen := map[string]bool{}
	var api, kubelet []string
	for i, c := range o.Collectors {
		switch {
		case c.Name == "":
			errs = append(errs, fmt.Errorf("collector %d has no name", i))
		case seen[c.Name]:
			errs = append(errs, fmt.Errorf("two collectors named %q", c.Name))
		}
		seen[c.Name] = true
		if (c.Config == "") == (len(c.ConfigYAML) == 0) {
			errs = append(errs, fmt.Errorf("collector %q: give Config (a file) or ConfigYAML, one of the two", c.Name))
		}
		if c.APIServerSpans {
			api = append(api, c.Name)
		}
		if c.KubeletSpans {
			kubelet = append(kubelet, c.Name)
		}
	}
	if len(api) > 1 {
		errs = append(errs, fmt.Errorf("kube-apiserver exports to one collector, not %d (%v)", len(api), api))
	}
	if len(api) == 1 && o.Cluster.TracingEndpoint != "" {
		errs = append(errs, fmt.Errorf("kube-apiserver exports to collector %q and to Cluster.TracingEndpoint %s: set one", api[0], o.Cluster.TracingEndpoint))
	}
	if len(kubelet) > 1 {
		errs = append(errs, fmt.Errorf("the kubelet exports to one collector, not %d (%v)", len(kubelet), kubelet))
	}
	if len(kubelet) > 0 && o.Cluster.Kubelet == nil {
		errs = append(errs, fmt.Errorf("collector %q receives the kubelet's spans, but the cluster has no kubelet (Cluster.Kubelet)", kubelet[0]))
	}
	if len(kubelet) == 1 && o.Cluster.Kubelet != nil && o.Cluster.Kubelet.TracingEndpoint != "" {
		errs = append(errs, fmt.Errorf("the kubelet exports to collector %q and to Cluster.Kubelet.TracingEndpoint %s: set one", kubelet[0], o.Cluster.Kubelet.TracingEndpoint))
	}
	if err := errors.Join(errs...); err != nil {
		return fmt.Errorf("localcluster: stack: %w", err)
	}
	return nil
}

// PrepareStack chooses every collector's ports and prepares the cluster
// (Prepare) with its tracing pointed at them, but starts nothing: the
// caller may still add what needs the cluster or the collectors'
// endpoints (SetEnv, a config file Config names) before Start.
func PrepareStack(ctx context.Context, o StackOptions) (*Stack, error) {
	if err := o.Validate(); err != nil {
		return nil, err
	}
	s := &Stack{}
	opts := o.Cluster
	if opts.Kubelet != nil {
		k := *opts.Kubelet
		opts.Kubelet = &k
	}
	for _, sc := range o.Collectors {
		config := sc.Config
		if config == "" {
			config = filepath.Join(o.Dir, sc.Name+"-config.yaml")
			if err := os.MkdirAll(o.Dir, 0o755); err != nil {
				return nil, err
			}
			if err := os.WriteFile(config, sc.ConfigYAML, 0o644); err != nil {
				return nil, err
			}
		}
		c, err := NewCollector(CollectorOptions{Name: sc.Name, Bin: o.Bin, Config: config, Dir: o.Dir, Overrides: sc.Overrides, Env: sc.Env})
		if err != nil {
			return nil, err
		}
		if sc.APIServerSpans {
			opts.TracingEndpoint = c.OTLPEndpoint
		}
		if sc.KubeletSpans {
			opts.Kubelet.TracingEndpoint = c.OTLPEndpoint
		}
		s.Collectors = append(s.Collectors, c)
	}
	cluster, err := Prepare(ctx, opts)
	if err != nil {
		return nil, err
	}
	s.Cluster = cluster
	for _, c := range s.Collectors {
		c.SetEnv("KUBECONFIG=" + cluster.Kubeconfig)
	}
	return s, nil
}

// Start starts the collectors in order, each until healthy (their watches
// retry until the apiserver answers), then the cluster. On error
// everything started is stopped again.
func (s *Stack) Start(ctx context.Context) (err error) {
	defer func() {
		if err != nil {
			_ = s.Down()
		}
	}()
	for _, c := range s.Collectors {
		if err := c.Start(ctx); err != nil {
			return err
		}
		s.started = append(s.started, c)
	}
	return s.Cluster.Start(ctx)
}

// UpStack is PrepareStack and Start.
func UpStack(ctx context.Context, o StackOptions) (*Stack, error) {
	s, err := PrepareStack(ctx, o)
	if err != nil {
		return nil, err
	}
	if err := s.Start(ctx); err != nil {
		return nil, err
	}
	return s, nil
}

// Down stops the control plane first (the kubelet and its runtime flush
// their last spans to collectors still there), then the collectors in the
// reverse order of their start. It returns what the collectors' stops
// returned (one killed after its grace time). Calling it again does
// nothing.
func (s *Stack) Down() error {
	if s.Cluster != nil {
		s.Cluster.Down()
	}
	var errs []error
	for i := len(s.started) - 1; i >= 0; i-- {
		if err := s.started[i].Stop(); err != nil {
			errs = append(errs, fmt.Errorf("collector %s: %w", s.started[i].Name, err))
		}
	}
	s.started = nil
	return errors.Join(errs...)
}

// Collector is the collector of that name, nil if none.
func (s *Stack) Collector(name string) *Collector {
	for _, c := range s.Collectors {
		if c.Name == name {
			return c
		}
	}
	return nil
}
