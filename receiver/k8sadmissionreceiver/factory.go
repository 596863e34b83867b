package k8sadmissionreceiver

import (
	"context"
	"time"

	"go.opentelemetry.io/collector/component"
	"go.opentelemetry.io/collector/config/confighttp"
	"go.opentelemetry.io/collector/consumer"
	"go.opentelemetry.io/collector/receiver"
	"go.opentelemetry.io/collector/receiver/xreceiver"

	"github.com/kubestitch/kubestitch/receiver/k8sadmissionreceiver/internal/metadata"
)

const (
	defaultEndpoint  = ":9443"
	defaultPath      = "/validate"
	defaultQueueSize = 10000
	// defaultReadTimeout bounds the time to read a review's headers, and
	// its whole request.
	defaultReadTimeout = 5 * time.Second
	// defaultMaxConcurrentReviews bounds the reviews read at once: with
	// max_request_body_size 4 MiB, 256 MiB of bodies at most; far more than
	// kube-apiserver sends at once (a review is read in well under 1 ms).
	defaultMaxConcurrentReviews = 64
	// An AdmissionReview holds the object and, on updates, the old one;
	// etcd caps an object at 1.5 MiB.
	defaultMaxRequestBodySize = 4 << 20
)

// NewFactory returns the factory of the k8s_admission receiver (formerly k8sadmission).
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
	server := confighttp.NewDefaultServerConfig()
	server.NetAddr.Endpoint = defaultEndpoint
	server.MaxRequestBodySize = defaultMaxRequestBodySize
	// kube-apiserver sends a whole review at once and waits at most
	// timeoutSeconds (2 s in deploy/): a client slower than this is not
	// kube-apiserver, and must not hold a goroutine and its body.
	server.ReadHeaderTimeout = defaultReadTimeout
	server.ReadTimeout = defaultReadTimeout
	// kube-apiserver never compresses a review; a compressed body is a
	// bomb's carrier (4 KiB of gzip inflate to max_request_body_size).
	server.CompressionAlgorithms = []string{""}
	return &Config{ServerConfig: server, Path: defaultPath, QueueSize: defaultQueueSize, User: UserAccounts, MaxConcurrentReviews: defaultMaxConcurrentReviews}
}

func createTraces(_ context.Context, set receiver.Settings, cfg component.Config, next consumer.Traces) (receiver.Traces, error) {
	return newAdmissionReceiver(set, cfg.(*Config), next)
}
