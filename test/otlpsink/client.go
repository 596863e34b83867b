package otlpsink

import (
	"testing"

	"go.opentelemetry.io/collector/pdata/ptrace/ptraceotlp"
	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"
)

// Client dials the OTLP/gRPC endpoint host:port on loopback, without TLS,
// and returns its trace client; the connection closes when the test ends.
// opts are added to the dial options (a larger message size, say).
func Client(t testing.TB, endpoint string, opts ...grpc.DialOption) ptraceotlp.GRPCClient {
	t.Helper()
	conn, err := grpc.NewClient(endpoint, append([]grpc.DialOption{grpc.WithTransportCredentials(insecure.NewCredentials())}, opts...)...)
	if err != nil {
		t.Fatalf("OTLP client for %s: %v", endpoint, err)
	}
	t.Cleanup(func() { _ = conn.Close() })
	return ptraceotlp.NewGRPCClient(conn)
}
