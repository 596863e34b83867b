// Written by hand to match mdatagen's TelemetryBuilder for metadata.yaml.

package metadata

import (
	"errors"

	"go.opentelemetry.io/otel/metric"

	"go.opentelemetry.io/collector/component"
)

// TelemetryBuilder holds the receiver's own instruments.
type TelemetryBuilder struct {
	K8sadmissionReviews      metric.Int64Counter
	K8sadmissionReviewsBad   metric.Int64Counter
	K8sadmissionSpansDropped metric.Int64Counter
}

// NewTelemetryBuilder builds the instruments on the component's meter.
func NewTelemetryBuilder(settings component.TelemetrySettings) (*TelemetryBuilder, error) {
	m := settings.MeterProvider.Meter(ScopeName)
	b := &TelemetryBuilder{}
	var err, e error
	b.K8sadmissionReviews, e = m.Int64Counter("otelcol_k8sadmission_reviews", metric.WithDescription("Admission reviews answered (always allowed), by operation."), metric.WithUnit("{reviews}"))
	err = errors.Join(err, e)
	b.K8sadmissionReviewsBad, e = m.Int64Counter("otelcol_k8sadmission_reviews_bad", metric.WithDescription("Requests answered 400 (not JSON, wrong kind, no request, too large, wrong method), by reason."), metric.WithUnit("{requests}"))
	err = errors.Join(err, e)
	b.K8sadmissionSpansDropped, e = m.Int64Counter("otelcol_k8sadmission_spans_dropped", metric.WithDescription("Review spans dropped because the queue to the pipeline was full or the pipeline refused them."), metric.WithUnit("{spans}"))
	err = errors.Join(err, e)
	return b, err
}
