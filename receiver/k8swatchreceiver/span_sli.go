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

// Where each SLI phase comes from, most precise first (the receiver's
// README has the table). The API serializes creationTimestamp, condition
// times and containers' startedAt to the second, so each would carry an
// error of up to a second; the watcher's own delivery times and the
// scheduler's Event time (microseconds) do not.
const (
	sliSourceWatch     = "watch"     // this watcher's receive time
	sliSourceEvent     = "event"     // the Scheduled Event's eventTime
	sliSourceCondition = "condition" // PodScheduled, whole seconds
	sliSourceCreation  = "creation_timestamp"
)

// sliPart is what an SLI span says of how it was measured.
type sliPart struct {
	noPart
	createSource, scheduleSource string
	// secondPrecision: a boundary of this span came from a field the API
	// keeps to the second (creationTimestamp, a condition's time), so the
	// span may be off by up to a second; users filter these out.
	secondPrecision bool
	// excluded is what pod_startup leaves out (startup: it is that span).
	excluded time.Duration
	startup  bool
}

func (p *sliPart) putStatus(_ ptrace.Span, a pcommon.Map) {
	a.PutStr(fragment.KeySLICreateSource, p.createSource)
	a.PutStr(fragment.KeySLIScheduleSource, p.scheduleSource)
	a.PutBool(fragment.KeySLISecondPrecision, p.secondPrecision)
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
	create, createSource := s.create, sliSourceWatch
	if create.IsZero() {
		// Created out of this watcher's sight (an agent sees its node's
		// pods once bound): only the object's timestamp is left.
		create, createSource = v.created, sliSourceCreation
	}
	coarseCreate := createSource == sliSourceCreation
	coarseSchedule := s.scheduleSource == sliSourceCondition
	var excluded time.Duration
	if !s.pullStart.IsZero() {
		excluded += s.pullEnd.Sub(s.pullStart)
	}
	coarseInit := false
	if p := v.pod; p.hasInit && p.initialized {
		switch {
		case !s.initialized.IsZero() && s.initialized.After(s.schedule):
			excluded += s.initialized.Sub(s.schedule)
		case p.initializedAt.After(p.scheduledAt) && !p.scheduledAt.IsZero():
			excluded += p.initializedAt.Sub(p.scheduledAt)
			coarseInit = true
		}
	}
	startupEnd := s.watch.Add(-excluded)
	spans := []struct {
		name       string
		start, end time.Time
		coarse     bool
	}{
		{fragment.SLICreateToSchedule, create, s.schedule, coarseCreate || coarseSchedule},
		{fragment.SLIScheduleToRun, s.schedule, s.run, coarseSchedule},
		{fragment.SLIRunToWatch, s.run, s.watch, false},
		{fragment.SLIScheduleToWatch, s.schedule, s.watch, coarseSchedule},
		{fragment.SLIPodStartup, create, startupEnd, coarseCreate || coarseInit},
	}
	out := make([]fragmentSpan, 0, len(spans))
	for _, sp := range spans {
		h := underObject(head(st, fragment.LevelSLI, sp.name, sliService, sp.start, sp.end, fragment.TimeSourceWatch))
		h.spanID = fragment.SpanID(v.uid, sp.name, st.Trigger)
		p := &sliPart{createSource: createSource, scheduleSource: s.scheduleSource, secondPrecision: sp.coarse}
		if sp.name == fragment.SLIPodStartup {
			p.excluded, p.startup = excluded, true
		}
		out = append(out, fragmentSpan{spanHead: h, part: p})
	}
	return out
}
