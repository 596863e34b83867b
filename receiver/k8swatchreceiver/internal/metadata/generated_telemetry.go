// Written by hand to match mdatagen's TelemetryBuilder for metadata.yaml.

package metadata

import (
	"errors"

	"go.opentelemetry.io/otel/metric"

	"go.opentelemetry.io/collector/component"
)

// TelemetryBuilder holds the receiver's own instruments.
type TelemetryBuilder struct {
	K8swatchFragmentsEmitted metric.Int64Counter
	K8swatchWatchEvents      metric.Int64Counter
	K8swatchBadObjects       metric.Int64Counter
	K8swatchWatchErrors      metric.Int64Counter
	K8swatchEventsDropped    metric.Int64Counter
	K8swatchObjectsTracked   metric.Int64Gauge
	K8swatchFragmentsDropped metric.Int64Counter
	K8swatchStorageErrors    metric.Int64Counter
}

// NewTelemetryBuilder builds the instruments on the component's meter.
func NewTelemetryBuilder(settings component.TelemetrySettings) (*TelemetryBuilder, error) {
	m := settings.MeterProvider.Meter(ScopeName)
	b := &TelemetryBuilder{}
	var err, e error
	b.K8swatchStorageErrors, e = m.Int64Counter("otelcol_k8swatch_storage_errors", metric.WithDescription("Stored state the receiver could not use and went on without, by reason (open: the store did not open; record: an unreadable record; version: a record of another release)."), metric.WithUnit("{errors}"))
	err = errors.Join(err, e)
	b.K8swatchFragmentsEmitted, e = m.Int64Counter("otelcol_k8swatch_fragments_emitted", metric.WithDescription("Fragments (spans) emitted, by phase."), metric.WithUnit("{spans}"))
	err = errors.Join(err, e)
	b.K8swatchWatchEvents, e = m.Int64Counter("otelcol_k8swatch_watch_events", metric.WithDescription("Watch events handled, by kind."), metric.WithUnit("{events}"))
	err = errors.Join(err, e)
	b.K8swatchBadObjects, e = m.Int64Counter("otelcol_k8swatch_bad_objects", metric.WithDescription("Objects that could not be turned into fragments, by reason."), metric.WithUnit("{objects}"))
	err = errors.Join(err, e)
	b.K8swatchWatchErrors, e = m.Int64Counter("otelcol_k8swatch_watch_errors", metric.WithDescription("Failed list/watch calls, by kind; the informer retries with backoff."), metric.WithUnit("{errors}"))
	err = errors.Join(err, e)
	b.K8swatchEventsDropped, e = m.Int64Counter("otelcol_k8swatch_events_dropped", metric.WithDescription("Kubernetes Events that found no open phase span to attach to."), metric.WithUnit("{events}"))
	err = errors.Join(err, e)
	b.K8swatchObjectsTracked, e = m.Int64Gauge("otelcol_k8swatch_objects_tracked", metric.WithDescription("Objects whose phase state the receiver holds."), metric.WithUnit("{objects}"))
	err = errors.Join(err, e)
	b.K8swatchFragmentsDropped, e = m.Int64Counter("otelcol_k8swatch_fragments_dropped", metric.WithDescription("Fragments dropped after the pipeline refused them longer than the retry buffer holds."), metric.WithUnit("{spans}"))
	err = errors.Join(err, e)
	return b, err
}
