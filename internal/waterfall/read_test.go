package waterfall

import (
	"os"
	"path/filepath"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"go.opentelemetry.io/collector/pdata/ptrace"
)

// TestReadTracesTakesEveryWholeLine: the file exporter writes one
// TracesData per line; a collector killed mid-write leaves a cut last
// line, which is skipped, not an error; no file is no traces.
func TestReadTracesTakesEveryWholeLine(t *testing.T) {
	line := func(name string) []byte {
		td := ptrace.NewTraces()
		td.ResourceSpans().AppendEmpty().ScopeSpans().AppendEmpty().Spans().AppendEmpty().SetName(name)
		b, err := (&ptrace.JSONMarshaler{}).MarshalTraces(td)
		require.NoError(t, err)
		return b
	}
	a, b := line("a"), line("b")
	path := filepath.Join(t.TempDir(), "traces.json")
	content := append(append(append(append(a, '\n'), '\n'), b...), '\n')
	content = append(content, line("c")[:20]...)
	require.NoError(t, os.WriteFile(path, content, 0o644))

	td, err := ReadTraces(path)
	require.NoError(t, err)
	require.Equal(t, 2, td.SpanCount())
	assert.Equal(t, "a", td.ResourceSpans().At(0).ScopeSpans().At(0).Spans().At(0).Name())
	assert.Equal(t, "b", td.ResourceSpans().At(1).ScopeSpans().At(0).Spans().At(0).Name())

	td, err = ReadTraces(filepath.Join(t.TempDir(), "none.json"))
	require.NoError(t, err)
	assert.Equal(t, 0, td.SpanCount())
}
