package k8sstitchprocessor

import (
	"context"
	"slices"
	"time"

	"go.opentelemetry.io/collector/component"
	"go.opentelemetry.io/collector/consumer"
	"go.opentelemetry.io/collector/processor"
	"go.opentelemetry.io/collector/processor/xprocessor"

	"github.com/kubestitch/kubestitch/processor/k8sstitchprocessor/internal/metadata"
)

const (
	defaultWait             = 3 * time.Second
	defaultRootWait         = 2 * time.Minute
	defaultOperationTimeout = 10 * time.Minute
	defaultMaxObjects       = 100_000
	defaultMaxWaitingSpans  = 50_000
	defaultMaxWaitingBytes  = 64 << 20
	defaultClockTolerance   = time.Second
)

// defaultJoinServices are the service.name values the Kubernetes
// components and container runtimes export under by default, and the
// k8s_admission receiver's: the spans that belong in an operation.
var defaultJoinServices = []string{
	"apiserver", "kube-apiserver", "etcd",
	"kube-controller-manager", "kube-scheduler",
	"kubelet", "containerd", "crio",
	"kubestitch-admission",
}

// NewFactory returns the factory of the k8s_stitch processor (formerly k8sstitch).
func NewFactory() processor.Factory {
	return xprocessor.NewFactory(
		metadata.Type,
		createDefaultConfig,
		xprocessor.WithTraces(createTraces, metadata.TracesStability),
		// The type before lower_snake_case: configs that name it still run,
		// and the collector logs a deprecation warning.
		xprocessor.WithDeprecatedTypeAlias(metadata.DeprecatedType),
	)
}

func createDefaultConfig() component.Config {
	return &Config{
		Wait:             defaultWait,
		RootWait:         defaultRootWait,
		OperationTimeout: defaultOperationTimeout,
		MaxObjects:       defaultMaxObjects,
		MaxWaitingSpans:  defaultMaxWaitingSpans,
		MaxWaitingBytes:  defaultMaxWaitingBytes,
		ClockTolerance:   defaultClockTolerance,
		JoinServices:     slices.Clone(defaultJoinServices),
	}
}

func createTraces(_ context.Context, set processor.Settings, cfg component.Config, next consumer.Traces) (processor.Traces, error) {
	return newStitchProcessor(set, cfg.(*Config), next)
}
