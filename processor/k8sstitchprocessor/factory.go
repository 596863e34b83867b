package k8sstitchprocessor

import (
	"context"
	"time"

	"go.opentelemetry.io/collector/component"
	"go.opentelemetry.io/collector/consumer"
	"go.opentelemetry.io/collector/processor"

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

// NewFactory returns the factory of the k8sstitch processor.
func NewFactory() processor.Factory {
	return processor.NewFactory(
		metadata.Type,
		createDefaultConfig,
		processor.WithTraces(createTraces, metadata.TracesStability),
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
	}
}

func createTraces(_ context.Context, set processor.Settings, cfg component.Config, next consumer.Traces) (processor.Traces, error) {
	return newStitchProcessor(set, cfg.(*Config), next)
}
