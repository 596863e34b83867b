// Written by hand to match mdatagen's TelemetryBuilder for metadata.yaml.

package metadata

import (
	"errors"

	"go.opentelemetry.io/otel/metric"

	"go.opentelemetry.io/collector/component"
)

// TelemetryBuilder holds the processor's own instruments.
type TelemetryBuilder struct {
	K8snamespaceSpansUnscoped  metric.Int64Counter
	K8snamespaceTraceConflicts metric.Int64Counter
}

// NewTelemetryBuilder builds the instruments on the component's meter.
func NewTelemetryBuilder(settings component.TelemetrySettings) (*TelemetryBuilder, error) {
	m := settings.MeterProvider.Meter(ScopeName)
	b := &TelemetryBuilder{}
	var err, e error
	b.K8snamespaceSpansUnscoped, e = m.Int64Counter("otelcol_k8snamespace_spans_unscoped", metric.WithDescription("Spans of traces in which no span names a namespace (cluster-scoped work, idle noise); they go on without k8s.namespace.name."), metric.WithUnit("{spans}"))
	err = errors.Join(err, e)
	b.K8snamespaceTraceConflicts, e = m.Int64Counter("otelcol_k8snamespace_trace_conflicts", metric.WithDescription("Traces whose spans name more than one namespace; the first one named wins."), metric.WithUnit("{traces}"))
	err = errors.Join(err, e)
	return b, err
}
