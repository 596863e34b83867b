package fragment

import (
	"crypto/sha256"
	"strconv"

	"go.opentelemetry.io/collector/pdata/pcommon"
)

// idVersion prefixes every hashed ID: change it and every ID changes, so
// change it only with a migration note.
const idVersion = "kubestitch/v1"

// TriggerDelete is the trigger of a deletion.
const TriggerDelete = "delete"

// TriggerGeneration is the trigger of a creation (generation 1) or spec change.
func TriggerGeneration(gen int64) string { return "gen:" + strconv.FormatInt(gen, 10) }

// SpanID is the span ID of a fragment: the first 8 bytes of
// SHA-256("kubestitch/v1\x00span\x00" uid "\x00" phase "\x00" discriminator).
func SpanID(uid, phase, discriminator string) pcommon.SpanID {
	sum := hash("span", uid, phase, discriminator)
	var id pcommon.SpanID
	copy(id[:], sum[:8])
	return id
}

// TraceID is the trace ID of the operation that a trigger on root opens:
// the first 16 bytes of SHA-256("kubestitch/v1\x00trace\x00" rootUID "\x00" trigger).
func TraceID(rootUID, trigger string) pcommon.TraceID {
	sum := hash("trace", rootUID, trigger)
	var id pcommon.TraceID
	copy(id[:], sum[:16])
	return id
}

// ObjectSpanID is the span ID of the object span of uid for trigger.
func ObjectSpanID(uid, kind, trigger string) pcommon.SpanID {
	return SpanID(uid, ObjectPhase(kind, trigger), trigger)
}

// TriggerSpanID is the span ID of the trigger marker of uid for trigger.
func TriggerSpanID(uid, trigger string) pcommon.SpanID {
	return SpanID(uid, PhaseTrigger, trigger)
}

func hash(parts ...string) [32]byte {
	// One buffer on the stack for the usual sizes: these IDs are computed
	// for every fragment and joined request.
	var buf [256]byte
	b := append(buf[:0], idVersion...)
	for _, p := range parts {
		b = append(b, 0)
		b = append(b, p...)
	}
	return sha256.Sum256(b)
}

// AdmissionSpanID is the span ID of the k8sadmission receiver's span for
// one admission request: the first 8 bytes of
// SHA-256("kubestitch/v1\x00admission\x00" requestUID). The apiserver
// retries a webhook call with the same request UID; the same ID lets the
// processor drop the repeat.
func AdmissionSpanID(requestUID string) pcommon.SpanID {
	sum := hash("admission", requestUID)
	var id pcommon.SpanID
	copy(id[:], sum[:8])
	return id
}

// AdmissionTraceID is the trace ID of an admission span that came without
// a traceparent (an apiserver without tracing): the first 16 bytes of
// SHA-256("kubestitch/v1\x00admission-trace\x00" requestUID).
func AdmissionTraceID(requestUID string) pcommon.TraceID {
	sum := hash("admission-trace", requestUID)
	var id pcommon.TraceID
	copy(id[:], sum[:16])
	return id
}

// UnverifiedTraceID is the trace a span with fragment keys but no valid
// signature is moved to: the first 16 bytes of
// SHA-256("kubestitch/v1\x00unverified\x00" original trace ID, hex).
func UnverifiedTraceID(orig pcommon.TraceID) pcommon.TraceID {
	sum := hash("unverified", orig.String())
	var id pcommon.TraceID
	copy(id[:], sum[:16])
	return id
}
