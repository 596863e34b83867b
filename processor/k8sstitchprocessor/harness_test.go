// The processor driven with recorded batches and a clock that follows the
// data, and the reviewed golden trees (-update rewrites them).

package k8sstitchprocessor

import (
	"bufio"
	"bytes"
	"context"
	"flag"
	"os"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"go.opentelemetry.io/collector/consumer/consumertest"
	"go.opentelemetry.io/collector/pdata/pcommon"
	"go.opentelemetry.io/collector/pdata/ptrace"
	"go.opentelemetry.io/collector/processor"
	"go.opentelemetry.io/collector/processor/processortest"

	"github.com/kubestitch/kubestitch/internal/waterfall"
	"github.com/kubestitch/kubestitch/processor/k8sstitchprocessor/internal/metadata"
)

var update = flag.Bool("update", false, "rewrite golden files (review the diff by hand before committing)")

// loadBatches reads a recorded OTLP JSON file: one request per line, in the
// order the collector received them.
func loadBatches(t testing.TB, path string) []ptrace.Traces {
	t.Helper()
	f, err := os.Open(path)
	require.NoError(t, err)
	defer f.Close()
	var out []ptrace.Traces
	sc := bufio.NewScanner(f)
	sc.Buffer(nil, 64<<20)
	var u ptrace.JSONUnmarshaler
	for sc.Scan() {
		td, err := u.UnmarshalTraces(sc.Bytes())
		require.NoError(t, err)
		out = append(out, td)
	}
	return out
}

// criRuntimeService is the service.name of the test bed's CRI runtime
// (localcluster/criruntime), in the recordings.
const criRuntimeService = "cri-runtime"

// stitchHarness drives the processor with a clock that follows the data.
type stitchHarness struct {
	p     *stitchProcessor
	sink  *consumertest.TracesSink
	clock time.Time
}

// newHarness makes a processor that takes unsigned fragments, as the
// recordings are; mutate may change that.
func newHarness(t testing.TB, mutate func(*Config)) *stitchHarness {
	return newHarnessWith(t, processortest.NewNopSettings(metadataType), mutate)
}

func newHarnessWith(t testing.TB, set processor.Settings, mutate func(*Config)) *stitchHarness {
	cfg := createDefaultConfig().(*Config)
	cfg.AcceptUnsignedFragments = true
	// The test bed's CRI runtime, a Kubernetes component here (the e2e
	// configs join it too).
	cfg.JoinServices = append(cfg.JoinServices, criRuntimeService)
	if mutate != nil {
		mutate(cfg)
	}
	require.NoError(t, cfg.Validate())
	sink := &consumertest.TracesSink{}
	p, err := newStitchProcessor(set, cfg, sink)
	require.NoError(t, err)
	require.NoError(t, p.loadKey())
	h := &stitchHarness{p: p, sink: sink}
	p.now = func() time.Time { return h.clock }
	return h
}

// feed sends one batch, with the clock at the newest end time in it (the
// moment a collector would have it at the earliest).
func (h *stitchHarness) feed(t testing.TB, td ptrace.Traces) {
	if end := latestEnd(td); end.After(h.clock) {
		h.clock = end
	}
	require.NoError(t, h.p.ConsumeTraces(context.Background(), td))
	h.flush()
}

// drain lets every wait expire, root_wait's too.
func (h *stitchHarness) drain() {
	h.clock = h.clock.Add(time.Minute + h.p.cfg.RootWait)
	out := h.p.tick()
	if out.SpanCount() > 0 {
		_ = h.sink.ConsumeTraces(context.Background(), out)
	}
}

func (h *stitchHarness) flush() {
	out := h.p.tick()
	if out.SpanCount() > 0 {
		_ = h.sink.ConsumeTraces(context.Background(), out)
	}
}

func (h *stitchHarness) output() ptrace.Traces {
	all := ptrace.NewTraces()
	for _, td := range h.sink.AllTraces() {
		c := ptrace.NewTraces()
		td.CopyTo(c)
		c.ResourceSpans().MoveAndAppendTo(all.ResourceSpans())
	}
	return all
}

func latestEnd(td ptrace.Traces) time.Time {
	var end time.Time
	forEachSpan(td, func(_ pcommon.Map, s ptrace.Span) {
		if e := s.EndTimestamp().AsTime(); e.After(end) {
			end = e
		}
	})
	return end
}

func operationTrace(t testing.TB, td ptrace.Traces, rootName string) *waterfall.Trace {
	t.Helper()
	var found []*waterfall.Trace
	for _, tr := range waterfall.Build(td) {
		for _, s := range tr.Spans {
			if s.Name == rootName {
				found = append(found, tr)
				break
			}
		}
	}
	require.Len(t, found, 1, "exactly one trace holds %s", rootName)
	return found[0]
}

func renderTree(tr *waterfall.Trace) string {
	var b bytes.Buffer
	waterfall.Render(&b, tr, waterfall.Options{MaskDurations: true, MaskNames: true, Collapse: waterfall.CollapseAPIRequests})
	return b.String()
}

func checkGolden(t *testing.T, path, got string) {
	t.Helper()
	if *update {
		require.NoError(t, os.WriteFile(path, []byte(got), 0o644))
	}
	want, err := os.ReadFile(path)
	require.NoError(t, err)
	assert.Equal(t, string(want), got, "tree differs from the reviewed %s", path)
}

var metadataType = metadata.Type
