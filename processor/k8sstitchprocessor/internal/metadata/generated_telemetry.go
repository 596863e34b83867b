// Written by hand to match mdatagen's TelemetryBuilder for metadata.yaml.

package metadata

import (
	"errors"

	"go.opentelemetry.io/otel/metric"

	"go.opentelemetry.io/collector/component"
)

// TelemetryBuilder holds the processor's own instruments.
type TelemetryBuilder struct {
	K8sstitchSpansJoined         metric.Int64Counter
	K8sstitchSpansPassedThrough  metric.Int64Counter
	K8sstitchSpansWaited         metric.Int64Counter
	K8sstitchSpansShed           metric.Int64Counter
	K8sstitchSpansDuplicate      metric.Int64Counter
	K8sstitchBadSpans            metric.Int64Counter
	K8sstitchFragmentsUnverified metric.Int64Counter
	K8sstitchObjectsShed         metric.Int64Counter
	K8sstitchOwnerCycles         metric.Int64Counter
	K8sstitchOperationsOpened    metric.Int64Counter
	K8sstitchOperationsClosed    metric.Int64Counter
	K8sstitchOperationsTimedOut  metric.Int64Counter
	K8sstitchObjectsTracked      metric.Int64Gauge
	K8sstitchStorageErrors       metric.Int64Counter
}

// NewTelemetryBuilder builds the instruments on the component's meter.
func NewTelemetryBuilder(settings component.TelemetrySettings) (*TelemetryBuilder, error) {
	m := settings.MeterProvider.Meter(ScopeName)
	b := &TelemetryBuilder{}
	var err, e error
	b.K8sstitchStorageErrors, e = m.Int64Counter("otelcol_k8sstitch_storage_errors", metric.WithDescription("Stored state the processor could not use and went on without, by reason (open: the store did not open; record: an unreadable record; version: a record of another release)."))
	err = errors.Join(err, e)
	b.K8sstitchSpansJoined, e = m.Int64Counter("otelcol_k8sstitch_spans_joined", metric.WithDescription("Spans rewritten into an operation's trace."))
	err = errors.Join(err, e)
	b.K8sstitchSpansPassedThrough, e = m.Int64Counter("otelcol_k8sstitch_spans_passed_through", metric.WithDescription("Spans that matched no operation and left unchanged."))
	err = errors.Join(err, e)
	b.K8sstitchSpansWaited, e = m.Int64Counter("otelcol_k8sstitch_spans_waited", metric.WithDescription("Spans that had to wait for their object, owner or trace root."))
	err = errors.Join(err, e)
	b.K8sstitchSpansShed, e = m.Int64Counter("otelcol_k8sstitch_spans_shed", metric.WithDescription("Waiting spans released early because max_waiting_spans was reached."))
	err = errors.Join(err, e)
	b.K8sstitchSpansDuplicate, e = m.Int64Counter("otelcol_k8sstitch_spans_duplicate", metric.WithDescription("Fragments dropped because their span ID was already seen (relist, restart, two replicas)."))
	err = errors.Join(err, e)
	b.K8sstitchBadSpans, e = m.Int64Counter("otelcol_k8sstitch_bad_spans", metric.WithDescription("Spans that looked like fragments but lacked their keys, by reason; they pass through."))
	err = errors.Join(err, e)
	b.K8sstitchFragmentsUnverified, e = m.Int64Counter("otelcol_k8sstitch_fragments_unverified", metric.WithDescription("Spans with fragment keys whose signature did not verify (none, bad, or another key); they were taken as app spans."), metric.WithUnit("{spans}"))
	err = errors.Join(err, e)
	b.K8sstitchObjectsShed, e = m.Int64Counter("otelcol_k8sstitch_objects_shed", metric.WithDescription("Objects evicted from the owner graph because max_objects was reached."))
	err = errors.Join(err, e)
	b.K8sstitchOwnerCycles, e = m.Int64Counter("otelcol_k8sstitch_owner_cycles", metric.WithDescription("Owner chains that were cyclic or deeper than 16."))
	err = errors.Join(err, e)
	b.K8sstitchOperationsOpened, e = m.Int64Counter("otelcol_k8sstitch_operations_opened", metric.WithDescription("Operations opened (a trigger without an open ancestor operation), by kind."))
	err = errors.Join(err, e)
	b.K8sstitchOperationsClosed, e = m.Int64Counter("otelcol_k8sstitch_operations_closed", metric.WithDescription("Operations closed by their root's object span."))
	err = errors.Join(err, e)
	b.K8sstitchOperationsTimedOut, e = m.Int64Counter("otelcol_k8sstitch_operations_timed_out", metric.WithDescription("Operations closed by operation_timeout."))
	err = errors.Join(err, e)
	b.K8sstitchObjectsTracked, e = m.Int64Gauge("otelcol_k8sstitch_objects_tracked", metric.WithDescription("Objects in the owner graph."))
	err = errors.Join(err, e)
	return b, err
}
