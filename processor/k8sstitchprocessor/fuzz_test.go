package k8sstitchprocessor

import (
	"context"
	"encoding/binary"
	"fmt"
	"testing"
	"time"

	"go.opentelemetry.io/collector/component/componenttest"
	"go.opentelemetry.io/collector/consumer/consumertest"
	"go.opentelemetry.io/collector/pdata/pcommon"
	"go.opentelemetry.io/collector/pdata/ptrace"
	"go.opentelemetry.io/collector/processor/processortest"
	"go.opentelemetry.io/otel/sdk/metric/metricdata"

	"github.com/kubestitch/kubestitch/internal/fragment"
)

// FuzzStitch feeds random owner graphs (cycles, self-owners, missing and
// deep chains) and random app traces (hints naming known and unknown
// objects, broken traceparents, bad paths) through a small processor: it
// must never panic, its state must stay within its limits, and every span
// must come out exactly once or be counted as a duplicate.
func FuzzStitch(f *testing.F) {
	f.Add([]byte("\x01\x02\x03\x04\x05\x06\x07\x08\x09\x0a\x0b\x0c"))
	f.Add([]byte("\x00\x00\x00\x00\xff\xff\xff\xff\x10\x20\x30\x40\x50"))
	f.Add([]byte("cycle-cycle-cycle-cycle-cycle"))
	f.Fuzz(func(t *testing.T, data []byte) {
		const maxObjects, maxWaiting = 16, 32
		cfg := createDefaultConfig().(*Config)
		cfg.MaxObjects, cfg.MaxWaitingSpans = maxObjects, maxWaiting
		cfg.AcceptUnsignedFragments = true
		tel := componenttest.NewTelemetry()
		defer func() { _ = tel.Shutdown(context.Background()) }()
		set := processortest.NewNopSettings(metadataType)
		set.TelemetrySettings = tel.NewTelemetrySettings()
		sink := &consumertest.TracesSink{}
		p, err := newStitchProcessor(set, cfg, sink)
		if err != nil {
			t.Fatal(err)
		}
		in := 0
		clock := time.Unix(1_700_000_000, 0)
		p.now = func() time.Time { return clock }
		kinds := []string{"Deployment", "ReplicaSet", "Pod", "Job", "Widget"}
		paths := []string{"/api/v1/namespaces/default/pods/p%d/binding", "/api/v1/namespaces/default/pods/p%d/status", "/apis/apps/v1/namespaces/default/deployments/p%d", "/api/v1/namespaces//pods/%d", "/%d", "/apis/x"}
		for len(data) >= 4 {
			op, a, b, c := data[0], data[1]%24, data[2]%24, data[3]
			data = data[4:]
			td := ptrace.NewTraces()
			s := td.ResourceSpans().AppendEmpty().ScopeSpans().AppendEmpty().Spans().AppendEmpty()
			var tid pcommon.TraceID
			binary.BigEndian.PutUint64(tid[:], uint64(c%8)+1)
			s.SetTraceID(tid)
			var sid pcommon.SpanID
			binary.BigEndian.PutUint64(sid[:], uint64(len(data))+uint64(op)<<32+1)
			s.SetSpanID(sid)
			start := clock.Add(time.Duration(int8(c)) * time.Second)
			s.SetStartTimestamp(pcommon.NewTimestampFromTime(start))
			s.SetEndTimestamp(pcommon.NewTimestampFromTime(start.Add(time.Duration(b) * time.Millisecond)))
			attrs := s.Attributes()
			switch op % 4 {
			case 0, 1: // a fragment of object a, owned by b (maybe itself, maybe a cycle)
				levels := []string{fragment.LevelTrigger, fragment.LevelStep, fragment.LevelObject}
				attrs.PutStr(fragment.KeyLevel, levels[int(c)%3])
				attrs.PutStr(fragment.KeyUID, fmt.Sprintf("u%d", a))
				attrs.PutStr(fragment.KeyKind, kinds[int(b)%len(kinds)])
				attrs.PutStr(fragment.KeyName, fmt.Sprintf("p%d", a))
				attrs.PutStr(fragment.KeyNamespace, "default")
				if op%8 != 0 {
					attrs.PutStr(fragment.KeyOwnerUID, fmt.Sprintf("u%d", b))
				}
				triggers := []string{"gen:1", "gen:2", fragment.TriggerDelete, ""}
				attrs.PutStr(fragment.KeyTrigger, triggers[int(op>>4)%4])
				attrs.PutInt(fragment.KeyTriggerTime, start.UnixNano())
				if c%5 == 0 {
					attrs.PutStr(fragment.KeyTraceparent, fmt.Sprintf("00-%032x-%016x-0%d", c, b, a))
				}
			case 2: // an apiserver request naming p<a>
				methods := []string{"POST", "PUT", "PATCH", "DELETE", "GET"}
				attrs.PutStr("http.request.method", methods[int(b)%len(methods)])
				attrs.PutStr("http.target", fmt.Sprintf(paths[int(c)%len(paths)], a))
				if c%3 == 0 {
					s.SetParentSpanID(pcommon.SpanID{byte(b)})
				}
			case 3: // a kubelet span, or an etcd create
				if c%2 == 0 {
					attrs.PutStr(fragment.KeyPodUID, fmt.Sprintf("u%d", a))
				} else {
					s.SetName("Create etcd3")
					attrs.PutStr("key", fmt.Sprintf("/pods/default/p%d", a))
				}
			}
			in++
			_ = p.ConsumeTraces(context.Background(), td)
			if op%7 == 0 {
				clock = clock.Add(time.Duration(b) * time.Second)
				_ = sink.ConsumeTraces(context.Background(), p.tick())
			}
			if n := p.graph.len(); n > maxObjects {
				t.Fatalf("owner graph holds %d objects, limit %d", n, maxObjects)
			}
			if n := p.waiting.len(); n > maxWaiting {
				t.Fatalf("wait buffer holds %d spans, limit %d", n, maxWaiting)
			}
		}
		clock = clock.Add(time.Hour)
		_ = sink.ConsumeTraces(context.Background(), p.tick())

		// Conservation: every span that came in went out exactly once, or
		// was counted as a duplicate; operation_timeout spans are the
		// processor's own.
		out := 0
		for _, td := range sink.AllTraces() {
			forEachSpan(td, func(_ pcommon.Map, s ptrace.Span) {
				if r, _ := s.Attributes().Get(fragment.KeyReason); r.Str() != "operation_timeout" {
					out++
				}
			})
		}
		dups := int64(0)
		if m, err := tel.GetMetric("otelcol_k8sstitch_spans_duplicate"); err == nil {
			for _, dp := range m.Data.(metricdata.Sum[int64]).DataPoints {
				dups += dp.Value
			}
		}
		if int64(out)+dups != int64(in) {
			t.Fatalf("%d spans in, %d out and %d counted as duplicates", in, out, dups)
		}
		if n := p.waiting.len(); n != 0 {
			t.Fatalf("%d spans still wait an hour later", n)
		}
	})
}
