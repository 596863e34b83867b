package k8sstitchprocessor

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"go.opentelemetry.io/collector/component/componenttest"
	"go.opentelemetry.io/collector/pdata/pcommon"
	"go.opentelemetry.io/collector/pdata/ptrace"
	"go.opentelemetry.io/collector/processor/processortest"
	"go.opentelemetry.io/otel/sdk/metric/metricdata"

	"github.com/kubestitch/kubestitch/internal/fragment"
)

const testKeySecret = "0123456789abcdef0123456789abcdef"

// signedHarness is a processor that verifies fragments with the test key,
// its telemetry, and the recorded Deployment create with every fragment
// signed as k8swatch signs it.
func signedHarness(t *testing.T) (*stitchHarness, *componenttest.Telemetry, []ptrace.Traces) {
	t.Helper()
	keyFile := filepath.Join(t.TempDir(), "key")
	require.NoError(t, os.WriteFile(keyFile, []byte(testKeySecret+"\n"), 0o600))
	tel := componenttest.NewTelemetry()
	t.Cleanup(func() { _ = tel.Shutdown(context.Background()) })
	set := processortest.NewNopSettings(metadataType)
	set.TelemetrySettings = tel.NewTelemetrySettings()
	h := newHarnessWith(t, set, func(c *Config) {
		c.AcceptUnsignedFragments = false
		c.FragmentKeyFile = keyFile
	})
	key, err := fragment.NewKey([]byte(testKeySecret))
	require.NoError(t, err)
	batches := loadBatches(t, filepath.Join("testdata", "deployment_create", "input.json"))
	for _, b := range batches {
		forEachSpan(b, func(res pcommon.Map, s ptrace.Span) {
			if _, ok := s.Attributes().Get(fragment.KeyLevel); ok {
				key.Sign(res, s)
			}
		})
	}
	return h, tel, batches
}

// findFragment copies the first fragment of the batches that match.
func findFragment(t *testing.T, batches []ptrace.Traces, level, kind string) (ptrace.ResourceSpans, ptrace.Span) {
	t.Helper()
	for _, b := range batches {
		for i := 0; i < b.ResourceSpans().Len(); i++ {
			rs := b.ResourceSpans().At(i)
			spans := rs.ScopeSpans().At(0).Spans()
			for k := 0; k < spans.Len(); k++ {
				s := spans.At(k)
				l, _ := s.Attributes().Get(fragment.KeyLevel)
				kd, _ := s.Attributes().Get(fragment.KeyKind)
				if l.Str() == level && kd.Str() == kind {
					return rs, s
				}
			}
		}
	}
	t.Fatalf("no %s fragment of a %s", level, kind)
	return ptrace.ResourceSpans{}, ptrace.Span{}
}

// forge copies a genuine fragment into a batch of its own, from a sender
// of its own choosing, and lets change alter it.
func forge(rs ptrace.ResourceSpans, s ptrace.Span, change func(ptrace.Span)) ptrace.Traces {
	td := ptrace.NewTraces()
	out := td.ResourceSpans().AppendEmpty()
	rs.Resource().CopyTo(out.Resource())
	out.Resource().Attributes().PutStr(fragment.KeyServiceName, "forger")
	ss := out.ScopeSpans().AppendEmpty()
	f := ss.Spans().AppendEmpty()
	s.CopyTo(f)
	change(f)
	return td
}

// graphView is what the owner graph holds, object by object: who owns
// it and what its operations are.
func graphView(p *stitchProcessor) []string {
	var out []string
	for i := 0; i < p.graph.n; i++ {
		o := p.graph.slot(i)
		if o.UID == "" {
			continue
		}
		line := fmt.Sprintf("%s %s/%s owner=%s", o.Kind, o.Namespace, o.Name, o.OwnerUID)
		for _, r := range o.Ops {
			line += fmt.Sprintf(" op(%s closed=%t end=%s)", r.Trigger, r.Closed, r.End.UTC().Format(time.RFC3339Nano))
		}
		out = append(out, line)
	}
	slices.Sort(out)
	return out
}

// TestUnsignedFragmentShapesNothing: a sender without the fragment key
// posts, before the genuine fragments, (1) the Deployment's converged
// object span, same trace and span ID (computed from the README's
// recipe), ended 300 ms after creation, and (2) a pod's object span, same
// UID and span ID, naming another owner, signed with another key. Neither
// may change the graph or displace the genuine spans; both are counted.
func TestUnsignedFragmentShapesNothing(t *testing.T) {
	// The run without forgeries, for comparison.
	clean, _, batches := signedHarness(t)
	for _, b := range batches {
		clean.feed(t, b)
	}
	clean.drain()
	wantGraph := graphView(clean.p)
	wantTree := renderTree(operationTrace(t, clean.output(), "deployment.rollout"))

	h, tel, batches := signedHarness(t)
	depRS, dep := findFragment(t, batches, fragment.LevelObject, "Deployment")
	forgedRoot := forge(depRS, dep, func(s ptrace.Span) {
		s.SetEndTimestamp(pcommon.NewTimestampFromTime(s.StartTimestamp().AsTime().Add(300 * time.Millisecond)))
		s.Attributes().Remove(fragment.KeySignature)
	})
	podRS, pod := findFragment(t, batches, fragment.LevelObject, "Pod")
	other, err := fragment.NewKey([]byte("fedcba9876543210fedcba9876543210"))
	require.NoError(t, err)
	forgedOwner := forge(podRS, pod, func(s ptrace.Span) {
		s.Attributes().PutStr(fragment.KeyOwnerUID, "00000000-0000-0000-0000-00000000f00d")
		other.Sign(podRS.Resource().Attributes(), s)
	})
	rootID, podID := dep.SpanID(), pod.SpanID()
	forgedTraces := map[pcommon.TraceID]bool{
		fragment.UnverifiedTraceID(dep.TraceID()): true,
		fragment.UnverifiedTraceID(pod.TraceID()): true,
	}
	genuineEnd := dep.EndTimestamp()

	h.clock = dep.StartTimestamp().AsTime()
	require.NoError(t, h.p.ConsumeTraces(context.Background(), forgedRoot))
	require.NoError(t, h.p.ConsumeTraces(context.Background(), forgedOwner))
	for _, b := range batches {
		h.feed(t, b)
	}
	h.drain()
	out := h.output()

	assert.Equal(t, wantGraph, graphView(h.p), "the forgeries left the owner graph as the genuine fragments made it")

	var genuineRoot, genuinePod, forged int
	forEachSpan(out, func(_ pcommon.Map, s ptrace.Span) {
		if v, ok := s.Attributes().Get(fragment.KeyUnverified); ok && v.Bool() {
			forged++
			assert.True(t, forgedTraces[s.TraceID()], "a forgery leaves in a trace of its own")
			return
		}
		switch s.SpanID() {
		case rootID:
			genuineRoot++
			assert.Equal(t, genuineEnd, s.EndTimestamp(), "the root that left is the genuine one")
		case podID:
			genuinePod++
		}
		_, signed := s.Attributes().Get(fragment.KeySignature)
		assert.False(t, signed, "a verified fragment leaves without its signature")
	})
	assert.Equal(t, 1, genuineRoot, "the genuine Deployment root reached the backend")
	assert.Equal(t, 1, genuinePod, "the genuine pod span reached the backend")
	assert.Equal(t, 2, forged, "the forgeries left, marked")

	// The operation's tree is the one without forgeries: none is in it
	// (the forged root, in its own trace, is left out of the search).
	genuine := ptrace.NewTraces()
	out.CopyTo(genuine)
	genuine.ResourceSpans().RemoveIf(func(rs ptrace.ResourceSpans) bool {
		return forgedTraces[rs.ScopeSpans().At(0).Spans().At(0).TraceID()]
	})
	tr := operationTrace(t, genuine, "deployment.rollout")
	assert.Equal(t, wantTree, renderTree(tr))
	assert.Zero(t, tr.Duplicates)
	assert.NotContains(t, tr.Services(), "forger")

	m, err := tel.GetMetric("otelcol_k8sstitch_fragments_unverified")
	require.NoError(t, err, "the forgeries are counted")
	assert.Equal(t, int64(2), m.Data.(metricdata.Sum[int64]).DataPoints[0].Value)
}

// TestUnsignedRecordingStitchesNothingWithAKey: k8swatch without the
// key (or with another: a rotation half done) stitches nothing, and the
// processor says so.
func TestUnsignedRecordingStitchesNothingWithAKey(t *testing.T) {
	h, tel, _ := signedHarness(t)
	for _, b := range loadBatches(t, filepath.Join("testdata", "deployment_create", "input.json")) {
		h.feed(t, b)
	}
	h.drain()
	assert.Zero(t, h.p.graph.len(), "no object learnt from unsigned fragments")
	m, err := tel.GetMetric("otelcol_k8sstitch_fragments_unverified")
	require.NoError(t, err)
	assert.Positive(t, m.Data.(metricdata.Sum[int64]).DataPoints[0].Value)
}

// TestRotationLosesNoFragment (trust finding 8): the gateway has the new
// key and the old one as previous_fragment_key_file while the agents
// restart onto the new key: fragments signed with either are taken, none
// is unverified, and the operation is stitched whole. Without the previous
// key, the old key's fragments are unverified; with its file absent (no
// rotation) the processor starts with the current key alone.
func TestRotationLosesNoFragment(t *testing.T) {
	dir := t.TempDir()
	const newSecret = "fedcba9876543210fedcba9876543210"
	keyFile, prevFile := filepath.Join(dir, "key"), filepath.Join(dir, "previous")
	require.NoError(t, os.WriteFile(keyFile, []byte(newSecret), 0o600))
	require.NoError(t, os.WriteFile(prevFile, []byte(testKeySecret), 0o600))
	oldKey, err := fragment.NewKey([]byte(testKeySecret))
	require.NoError(t, err)
	newKey, err := fragment.NewKey([]byte(newSecret))
	require.NoError(t, err)
	run := func(previous string) (unverified int64, objects int) {
		tel := componenttest.NewTelemetry()
		t.Cleanup(func() { _ = tel.Shutdown(context.Background()) })
		set := processortest.NewNopSettings(metadataType)
		set.TelemetrySettings = tel.NewTelemetrySettings()
		h := newHarnessWith(t, set, func(c *Config) {
			c.AcceptUnsignedFragments = false
			c.FragmentKeyFile, c.PreviousFragmentKeyFile = keyFile, previous
		})
		// Half the agents still sign with the old key: alternate batches.
		for i, b := range loadBatches(t, filepath.Join("testdata", "deployment_create", "input.json")) {
			key := oldKey
			if i%2 == 1 {
				key = newKey
			}
			forEachSpan(b, func(res pcommon.Map, s ptrace.Span) {
				if _, ok := s.Attributes().Get(fragment.KeyLevel); ok {
					key.Sign(res, s)
				}
			})
			h.feed(t, b)
		}
		h.drain()
		if m, err := tel.GetMetric("otelcol_k8sstitch_fragments_unverified"); err == nil {
			for _, dp := range m.Data.(metricdata.Sum[int64]).DataPoints {
				unverified += dp.Value
			}
		}
		return unverified, h.p.graph.len()
	}
	unverified, objects := run(prevFile)
	assert.Zero(t, unverified, "during the rotation, with the previous key")
	assert.Positive(t, objects)
	unverified, _ = run("")
	assert.Positive(t, unverified, "without the previous key the old key's fragments are unverified")
	unverified, _ = run(filepath.Join(dir, "absent"))
	assert.Positive(t, unverified, "an absent previous key file is no previous key")
}
