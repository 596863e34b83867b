package k8sstitchprocessor

import (
	"errors"
	"fmt"
	"time"

	"go.opentelemetry.io/collector/component"
)

// Config of the k8sstitch processor.
type Config struct {
	// Wait is how long a span waits for its object, its owner's operation or
	// its trace's root before it leaves as it is. Default: 3s.
	Wait time.Duration `mapstructure:"wait"`
	// RootWait is how long, at most, an app span whose trace's root has not
	// come and which names no object keeps waiting for that root, in steps
	// of wait: the kubelet exports a pod start's CRI calls as each ends,
	// and their root, syncPod, only once the pod has started (after its
	// image pull). At or below wait, it is off. Default: 2m.
	RootWait time.Duration `mapstructure:"root_wait"`
	// OperationTimeout closes an operation that has not converged, with
	// status Error. Default: 10m.
	OperationTimeout time.Duration `mapstructure:"operation_timeout"`
	// MaxObjects bounds the owner graph; at the limit an object not seen
	// recently is shed. Default: 100000.
	MaxObjects int `mapstructure:"max_objects"`
	// MaxWaitingSpans bounds the wait buffer; at the limit the oldest span
	// leaves early. Default: 50000.
	MaxWaitingSpans int `mapstructure:"max_waiting_spans"`
	// MaxWaitingBytes bounds the wait buffer in bytes (estimated: the
	// spans' strings plus a fixed overhead, each shared resource and scope
	// counted once); at the limit the oldest span leaves early. Default:
	// 67108864 (64 MiB).
	MaxWaitingBytes int `mapstructure:"max_waiting_bytes"`
	// ClockTolerance absorbs the whole-second object timestamps and the gap
	// between a request and the watch event it causes. Default: 1s.
	ClockTolerance time.Duration `mapstructure:"clock_tolerance"`
	// Storage is the ID of a storage extension (file_storage) that keeps the
	// owner graph and open operations across restarts. Default: none.
	Storage *component.ID `mapstructure:"storage"`
	// FragmentKeyFile is the key (a mounted Secret, at least 32 bytes) that
	// k8swatch signs fragments with. A span with fragment keys whose
	// signature does not verify is an app span: it never shapes the owner
	// graph. Required unless accept_unsigned_fragments. Default: "".
	FragmentKeyFile string `mapstructure:"fragment_key_file"`
	// PreviousFragmentKeyFile is the key of before a rotation, accepted
	// beside the fragment key while agents restart onto the new one (the
	// signature names its key). Its file may be absent: no rotation.
	// Default: "".
	PreviousFragmentKeyFile string `mapstructure:"previous_fragment_key_file"`
	// JoinServices are the service.name values whose spans may be moved
	// into an operation's trace: the Kubernetes components by default. A
	// trace with a span of any other service passes byte for byte (an
	// app's own distributed trace, even with k8s.pod.uid on its resource),
	// and a span of another service is never rewritten. Add a workload's
	// service.name to join its spans too. Default: the list in the README.
	JoinServices []string `mapstructure:"join_services"`
	// AcceptUnsignedFragments takes every span with fragment keys as a
	// fragment, from any OTLP sender: only for a collector that nothing
	// untrusted can reach. Default: false.
	AcceptUnsignedFragments bool `mapstructure:"accept_unsigned_fragments"`
}

var _ component.Config = (*Config)(nil)

// maxMaxObjects keeps the graph's slot numbers (int32) and the decision
// table's entry numbers (uint32, for 4 x max_objects traces) in range.
const maxMaxObjects = 1 << 29

// Validate checks the configuration.
func (cfg *Config) Validate() error {
	if cfg.Wait <= 0 {
		return errors.New("wait must be positive")
	}
	if cfg.RootWait < 0 {
		return errors.New("root_wait must be at least 0")
	}
	if cfg.OperationTimeout <= cfg.Wait {
		return errors.New("operation_timeout must be longer than wait")
	}
	if cfg.MaxObjects <= 0 {
		return errors.New("max_objects must be positive")
	}
	if cfg.MaxObjects > maxMaxObjects {
		return fmt.Errorf("max_objects must be at most %d", maxMaxObjects)
	}
	if cfg.MaxWaitingSpans <= 0 {
		return errors.New("max_waiting_spans must be positive")
	}
	if cfg.MaxWaitingBytes <= 0 {
		return errors.New("max_waiting_bytes must be positive")
	}
	if cfg.ClockTolerance < 0 || cfg.ClockTolerance >= cfg.Wait {
		return errors.New("clock_tolerance must be at least 0 and shorter than wait")
	}
	for i, svc := range cfg.JoinServices {
		if svc == "" {
			return fmt.Errorf("join_services[%d] is empty: name a service.name", i)
		}
	}
	switch {
	case cfg.FragmentKeyFile == "" && !cfg.AcceptUnsignedFragments:
		return errors.New("fragment_key_file is required: the key k8swatch signs fragments with (or accept_unsigned_fragments: true, to let any OTLP sender shape the owner graph)")
	case cfg.FragmentKeyFile != "" && cfg.AcceptUnsignedFragments:
		return errors.New("fragment_key_file and accept_unsigned_fragments exclude each other")
	case cfg.PreviousFragmentKeyFile != "" && cfg.FragmentKeyFile == "":
		return errors.New("previous_fragment_key_file needs fragment_key_file: the previous key is accepted beside the current one")
	}
	return nil
}
