package otlpsink

import (
	"testing"

	"go.opentelemetry.io/collector/pdata/ptrace"
	"go.opentelemetry.io/collector/pdata/ptrace/ptraceotlp"
	"google.golang.org/grpc"
)

func TestClientSendsToSink(t *testing.T) {
	sink := Start(t)
	td := ptrace.NewTraces()
	rs := td.ResourceSpans().AppendEmpty()
	rs.Resource().Attributes().PutStr("service.name", "client-test")
	rs.ScopeSpans().AppendEmpty().Spans().AppendEmpty().SetName("x")

	client := Client(t, sink.Endpoint, grpc.WithDefaultCallOptions(grpc.MaxCallSendMsgSize(16<<20)))
	if _, err := client.Export(t.Context(), ptraceotlp.NewExportRequestFromTraces(td)); err != nil {
		t.Fatal(err)
	}
	spans := sink.Spans()
	if len(spans) != 1 {
		t.Fatalf("the sink received %d spans, want 1", len(spans))
	}
	if spans[0].Service != "client-test" {
		t.Errorf("service %q, want client-test", spans[0].Service)
	}
}
