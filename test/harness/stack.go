package harness

import (
	"context"
	"testing"
	"time"

	"github.com/kubestitch/kubestitch/localcluster"
)

// StartStack runs localcluster's start-up sequence (PrepareStack, then
// Start) for a test: skipped under -short, Bin defaults to
// CollectorBinary, Dir to a temp dir, the cluster's log to the test's.
// prepared, if not nil, runs between the two, for what needs the
// cluster or the collectors' endpoints (SetEnv, a config file). When the
// test ends the stack goes down, control plane first, and a failed
// test's log gets each collector's log tail.
func StartStack(t testing.TB, o localcluster.StackOptions, prepared func(*localcluster.Stack)) *localcluster.Stack {
	t.Helper()
	if testing.Short() {
		t.Skip("needs the local control plane; `make test` runs it")
	}
	if o.Bin == "" {
		o.Bin = CollectorBinary(t)
	}
	if o.Dir == "" {
		o.Dir = t.TempDir()
	}
	if o.Cluster.Log == nil {
		o.Cluster.Log = localcluster.TestLog(t)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 45*time.Minute)
	defer cancel()
	s, err := localcluster.PrepareStack(ctx, o)
	if err != nil {
		t.Fatalf("local control plane: %v", err)
	}
	t.Cleanup(func() {
		_ = s.Down()
		for _, c := range s.Collectors {
			dumpOnFailure(t, c)
		}
	})
	if prepared != nil {
		prepared(s)
	}
	if err := s.Start(ctx); err != nil {
		t.Fatalf("local control plane: %v", err)
	}
	return s
}

func dumpOnFailure(t testing.TB, c *localcluster.Collector) {
	if t.Failed() {
		t.Logf("--- %s log tail ---\n%s", c.Name, localcluster.LogTail(c.Log, 40))
	}
}
