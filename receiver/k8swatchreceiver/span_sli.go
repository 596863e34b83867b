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

// sliMaxLag is how late after its field's second a delivery still counts
// as the moment: watch latency, with room for a loaded machine.
const sliMaxLag = time.Second

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
	p := v.pod
	// A delivery can lag the truth (a relist after a watch gap, a handler
	// backlog), never lead it: a watch boundary more than sliMaxLag after
	// its second-precision field's second is a lagging delivery, and the
	// field is the better of the two. Within it, the delivery is the
	// better: a pod created at x.990 s is delivered after x+1 s.
	create, createSource := s.create, sliSourceWatch
	if create.IsZero() || create.After(v.created.Add(time.Second+sliMaxLag)) {
		// Created out of this watcher's sight (an agent sees its node's
		// pods once bound), or seen late: only the object's timestamp.
		create, createSource = v.created, sliSourceCreation
	}
	schedule, scheduleSource := s.schedule, s.scheduleSource
	if scheduleSource == sliSourceWatch && !p.scheduledAt.IsZero() && schedule.After(p.scheduledAt.Add(time.Second+sliMaxLag)) {
		schedule, scheduleSource = p.scheduledAt, sliSourceCondition
	}
	if create.After(schedule) {
		// The Scheduled Event's eventTime before a lagging delivery of
		// the new pod: the pod was created no later than it was bound.
		create = schedule
	}
	coarseCreate := createSource == sliSourceCreation
	coarseSchedule := scheduleSource == sliSourceCondition
	var excluded time.Duration
	coarsePull := s.pulls > 1 // their span is of whole-second Event times
	if !s.pullStart.IsZero() {
		excluded += s.pullEnd.Sub(s.pullStart)
	}
	coarseInit := false
	if p.hasInit && p.initialized {
		switch {
		case !s.initialized.IsZero() && s.initialized.After(schedule) && !s.initialized.After(p.initializedAt.Add(time.Second+sliMaxLag)):
			excluded += s.initialized.Sub(schedule)
			coarseInit = coarseSchedule
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
		{fragment.SLICreateToSchedule, create, schedule, coarseCreate || coarseSchedule},
		{fragment.SLIScheduleToRun, schedule, s.run, coarseSchedule},
		{fragment.SLIRunToWatch, s.run, s.watch, false},
		{fragment.SLIScheduleToWatch, schedule, s.watch, coarseSchedule},
		{fragment.SLIPodStartup, create, startupEnd, coarseCreate || coarseInit || coarsePull},
	}
	out := make([]fragmentSpan, 0, len(spans))
	for _, sp := range spans {
		h := underObject(head(st, fragment.LevelSLI, sp.name, sliService, sp.start, sp.end, fragment.TimeSourceWatch))
		h.spanID = fragment.SpanID(v.uid, sp.name, st.Trigger)
		part := &sliPart{createSource: createSource, scheduleSource: scheduleSource, secondPrecision: sp.coarse}
		if sp.name == fragment.SLIPodStartup {
			part.excluded, part.startup = excluded, true
		}
		out = append(out, fragmentSpan{spanHead: h, part: part})
	}
	return out
}
