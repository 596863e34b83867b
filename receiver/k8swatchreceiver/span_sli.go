package k8swatchreceiver

import (
	"time"

	"go.opentelemetry.io/collector/pdata/pcommon"
	"go.opentelemetry.io/collector/pdata/ptrace"

	"github.com/kubestitch/kubestitch/internal/fragment"
)

// sliService is the service.name of SLI spans: one lane, and one series
// per transition in span metrics whoever ran the pod.
const sliService = "kubestitch"

// sliPart is what an SLI span says of how it was measured.
type sliPart struct {
	noPart
	scheduleSource string
	// excluded is what pod_startup leaves out (startup: it is that span).
	excluded time.Duration
	startup  bool
}

func (p *sliPart) putStatus(_ ptrace.Span, a pcommon.Map) {
	a.PutStr(fragment.KeySLIScheduleSource, p.scheduleSource)
	if p.startup {
		a.PutInt(fragment.KeySLIExcluded, p.excluded.Nanoseconds())
	}
}

// sliSpans renders the five transitions as children of the pod's object
// span. pod_startup ends early by what it leaves out (image pulls, init
// containers), so its duration is the SLI; the attribute says how much.
func sliSpans(st *objectState) []fragmentSpan {
	s := st.sli
	st.sli = sliSent
	v := &st.view
	create := v.created
	var excluded time.Duration
	if !s.pullStart.IsZero() {
		excluded += s.pullEnd.Sub(s.pullStart)
	}
	if p := v.pod; p.hasInit && p.initialized && p.initializedAt.After(p.scheduledAt) && !p.scheduledAt.IsZero() {
		excluded += p.initializedAt.Sub(p.scheduledAt)
	}
	startupEnd := s.watch.Add(-excluded)
	spans := []struct {
		name       string
		start, end time.Time
	}{
		{fragment.SLICreateToSchedule, create, s.schedule},
		{fragment.SLIScheduleToRun, s.schedule, s.run},
		{fragment.SLIRunToWatch, s.run, s.watch},
		{fragment.SLIScheduleToWatch, s.schedule, s.watch},
		{fragment.SLIPodStartup, create, startupEnd},
	}
	out := make([]fragmentSpan, 0, len(spans))
	for _, sp := range spans {
		h := underObject(head(st, fragment.LevelSLI, sp.name, sliService, sp.start, sp.end, fragment.TimeSourceWatch))
		h.spanID = fragment.SpanID(v.uid, sp.name, st.Trigger)
		p := &sliPart{scheduleSource: s.scheduleSource}
		if sp.name == fragment.SLIPodStartup {
			p.excluded, p.startup = excluded, true
		}
		out = append(out, fragmentSpan{spanHead: h, part: p})
	}
	return out
}
