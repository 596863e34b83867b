package localcluster

import (
	"context"
	"io"
	"testing"
	"time"
)

// Start brings a local control plane up for a test and tears it down when
// the test ends. A test that needs it and cannot get it fails: the control
// plane tests are part of `make test`, never skipped.
func Start(t testing.TB, opts Options) *Cluster {
	t.Helper()
	if testing.Short() {
		t.Skip("needs the local control plane; `make test` runs it")
	}
	if opts.Log == nil {
		opts.Log = TestLog(t)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 45*time.Minute)
	defer cancel()
	c, err := Up(ctx, opts)
	if err != nil {
		t.Fatalf("local control plane: %v", err)
	}
	t.Cleanup(c.Down)
	return c
}

// TestLog is a writer into the test's log: each write is one t.Logf. The
// processes' output goes there in every test that starts them.
func TestLog(t testing.TB) io.Writer { return testWriter{t} }

type testWriter struct{ t testing.TB }

func (w testWriter) Write(b []byte) (int, error) {
	w.t.Logf("%s", b)
	return len(b), nil
}
