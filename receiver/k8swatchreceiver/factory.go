package k8swatchreceiver

import (
	"context"
	"time"

	"go.opentelemetry.io/collector/component"
	"go.opentelemetry.io/collector/consumer"
	"go.opentelemetry.io/collector/receiver"
	"go.opentelemetry.io/collector/receiver/xreceiver"

	"github.com/kubestitch/kubestitch/receiver/k8swatchreceiver/internal/metadata"
)

const (
	defaultQuietPeriod = 30 * time.Second
	// defaultReannounceInterval, with the batch processor's second on
	// the way, stays below k8s_stitch's default wait (3s): a child that
	// reached a namespace's new owner before its operation's trigger
	// still finds the operation before it stops waiting.
	defaultReannounceInterval = time.Second
	defaultLeaseName          = "kubestitch-k8swatch"
	defaultLeaseDuration      = 15 * time.Second
	defaultRenewDeadline      = 10 * time.Second
	defaultRetryPeriod        = 2 * time.Second
)

// NewFactory returns the factory of the k8s_watch receiver (formerly k8swatch).
func NewFactory() receiver.Factory {
	return xreceiver.NewFactory(
		metadata.Type,
		createDefaultConfig,
		xreceiver.WithTraces(createTraces, metadata.TracesStability),
		// The type before lower_snake_case: configs that name it still run,
		// and the collector logs a deprecation warning.
		xreceiver.WithDeprecatedTypeAlias(metadata.DeprecatedType),
	)
}

func createDefaultConfig() component.Config {
	return &Config{
		AuthType:           AuthTypeServiceAccount,
		Mode:               ModeCluster,
		Kinds:              append([]string(nil), builtinKinds...),
		QuietPeriod:        defaultQuietPeriod,
		ReannounceInterval: defaultReannounceInterval,
		// Messages show why a step failed, but an exec probe's output (an
		// Unhealthy Event) can hold a token: as shipped, only the
		// messages of reasons Kubernetes writes itself from what it
		// decided (trust finding 12).
		EventMessages:       EventMessagesReasons,
		EventMessageReasons: append([]string(nil), DefaultEventMessageReasons...),
		LeaderElection: LeaderElectionConfig{
			LeaseName:     defaultLeaseName,
			LeaseDuration: defaultLeaseDuration,
			RenewDeadline: defaultRenewDeadline,
			RetryPeriod:   defaultRetryPeriod,
		},
	}
}

func createTraces(_ context.Context, set receiver.Settings, cfg component.Config, next consumer.Traces) (receiver.Traces, error) {
	return newWatchReceiver(set, cfg.(*Config), next, makeClients)
}
