// Package otlpsink is an OTLP/gRPC trace and metrics endpoint for tests:
// it keeps every span and metric it receives, so a test can check what a real component exported.
// Client is the other end: the OTLP trace client a test sends with.
package otlpsink

import (
	"context"
	"net"
	"sync"
	"testing"
	"time"

	"go.opentelemetry.io/collector/pdata/pmetric"
	"go.opentelemetry.io/collector/pdata/pmetric/pmetricotlp"
	"go.opentelemetry.io/collector/pdata/ptrace"
	"go.opentelemetry.io/collector/pdata/ptrace/ptraceotlp"
	"google.golang.org/grpc"
	// The collector's OTLP exporter compresses with gzip by default.
	_ "google.golang.org/grpc/encoding/gzip"
)

// Sink receives OTLP traces on 127.0.0.1.
type Sink struct {
	ptraceotlp.UnimplementedGRPCServer
	// Endpoint is host:port.
	Endpoint string

	mu      sync.Mutex
	traces  []ptrace.Traces
	arrived []time.Time // when each of traces came
	metrics []pmetric.Metrics
	srv     *grpc.Server
}

// metricsService is the sink's OTLP metrics service (a type of its own:
// both services have a method Export).
type metricsService struct {
	pmetricotlp.UnimplementedGRPCServer
	s *Sink
}

// Export implements the OTLP metrics service.
func (m *metricsService) Export(_ context.Context, req pmetricotlp.ExportRequest) (pmetricotlp.ExportResponse, error) {
	md := pmetric.NewMetrics()
	req.Metrics().CopyTo(md)
	m.s.mu.Lock()
	m.s.metrics = append(m.s.metrics, md)
	m.s.mu.Unlock()
	return pmetricotlp.NewExportResponse(), nil
}

// MetricNames returns the name of every metric received so far, once.
func (s *Sink) MetricNames() map[string]bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	out := map[string]bool{}
	for _, md := range s.metrics {
		for i := 0; i < md.ResourceMetrics().Len(); i++ {
			sms := md.ResourceMetrics().At(i).ScopeMetrics()
			for j := 0; j < sms.Len(); j++ {
				ms := sms.At(j).Metrics()
				for k := 0; k < ms.Len(); k++ {
					out[ms.At(k).Name()] = true
				}
			}
		}
	}
	return out
}

// Start serves until the test ends.
func Start(t testing.TB) *Sink {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	s := &Sink{Endpoint: l.Addr().String(), srv: grpc.NewServer()}
	ptraceotlp.RegisterGRPCServer(s.srv, s)
	pmetricotlp.RegisterGRPCServer(s.srv, &metricsService{s: s})
	go func() { _ = s.srv.Serve(l) }()
	t.Cleanup(s.srv.Stop)
	return s
}

// Export implements the OTLP trace service.
func (s *Sink) Export(_ context.Context, req ptraceotlp.ExportRequest) (ptraceotlp.ExportResponse, error) {
	td := ptrace.NewTraces()
	req.Traces().CopyTo(td)
	s.mu.Lock()
	s.traces = append(s.traces, td)
	s.arrived = append(s.arrived, time.Now())
	s.mu.Unlock()
	return ptraceotlp.NewExportResponse(), nil
}

// Span is a received span with its service name.
type Span struct {
	Service string
	ptrace.Span
}

// Spans returns every span received so far.
func (s *Sink) Spans() []Span {
	var out []Span
	s.Each(func(_ time.Time, service string, span ptrace.Span) {
		out = append(out, Span{Service: service, Span: span})
	})
	return out
}

// Traces returns a copy of everything received so far as one Traces.
func (s *Sink) Traces() ptrace.Traces {
	s.mu.Lock()
	defer s.mu.Unlock()
	out := ptrace.NewTraces()
	for _, td := range s.traces {
		c := ptrace.NewTraces()
		td.CopyTo(c)
		c.ResourceSpans().MoveAndAppendTo(out.ResourceSpans())
	}
	return out
}

// Each calls fn for every span received so far, with the time its batch
// arrived and its service name, under the sink's lock: fn must not call
// the sink.
func (s *Sink) Each(fn func(at time.Time, service string, span ptrace.Span)) {
	s.mu.Lock()
	defer s.mu.Unlock()
	for n, td := range s.traces {
		rss := td.ResourceSpans()
		for i := 0; i < rss.Len(); i++ {
			svc := ""
			if v, ok := rss.At(i).Resource().Attributes().Get("service.name"); ok {
				svc = v.Str()
			}
			sss := rss.At(i).ScopeSpans()
			for j := 0; j < sss.Len(); j++ {
				spans := sss.At(j).Spans()
				for k := 0; k < spans.Len(); k++ {
					fn(s.arrived[n], svc, spans.At(k))
				}
			}
		}
	}
}
