package k8sadmissionreceiver

import (
	"context"

	"go.opentelemetry.io/collector/component"
	"go.opentelemetry.io/collector/config/confighttp"
	"go.opentelemetry.io/collector/consumer"
	"go.opentelemetry.io/collector/receiver"

	"github.com/kubestitch/kubestitch/receiver/k8sadmissionreceiver/internal/metadata"
)

const (
	defaultEndpoint  = ":9443"
	defaultPath      = "/validate"
	defaultQueueSize = 10000
	// An AdmissionReview holds the object and, on updates, the old one;
	// etcd caps an object at 1.5 MiB.
	defaultMaxRequestBodySize = 4 << 20
)

// NewFactory returns the factory of the k8sadmission receiver.
func NewFactory() receiver.Factory {
	return receiver.NewFactory(
		metadata.Type,
		createDefaultConfig,
		receiver.WithTraces(createTraces, metadata.TracesStability),
	)
}

func createDefaultConfig() component.Config {
	server := confighttp.NewDefaultServerConfig()
	server.NetAddr.Endpoint = defaultEndpoint
	server.MaxRequestBodySize = defaultMaxRequestBodySize
	return &Config{ServerConfig: server, Path: defaultPath, QueueSize: defaultQueueSize, User: UserName}
}

func createTraces(_ context.Context, set receiver.Settings, cfg component.Config, next consumer.Traces) (receiver.Traces, error) {
	return newAdmissionReceiver(set, cfg.(*Config), next)
}
