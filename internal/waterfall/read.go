package waterfall

import (
	"bufio"
	"errors"
	"os"

	"go.opentelemetry.io/collector/pdata/ptrace"
)

// ReadTraces reads a file exporter's OTLP JSON output (one TracesData per
// line). A missing file is no traces.
func ReadTraces(path string) (ptrace.Traces, error) {
	out := ptrace.NewTraces()
	f, err := os.Open(path)
	if errors.Is(err, os.ErrNotExist) {
		return out, nil
	}
	if err != nil {
		return out, err
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	sc.Buffer(make([]byte, 1<<20), 256<<20)
	var u ptrace.JSONUnmarshaler
	for sc.Scan() {
		line := sc.Bytes()
		if len(line) == 0 {
			continue
		}
		td, err := u.UnmarshalTraces(line)
		if err != nil {
			// The last line of a killed collector may be cut.
			continue
		}
		td.ResourceSpans().MoveAndAppendTo(out.ResourceSpans())
	}
	return out, sc.Err()
}
