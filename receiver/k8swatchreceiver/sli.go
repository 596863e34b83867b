package k8swatchreceiver

import (
	"time"

	"github.com/kubestitch/kubestitch/internal/fragment"
)

// sliScheduleWait is how long a pod seen running waits for the
// scheduler's Scheduled Event (a watch of its own, delivered on its own
// schedule) before its SLI spans take the PodScheduled condition instead.
const sliScheduleWait = 5 * time.Second

// maxEarlyScheduled bounds the Scheduled Events kept for pods not yet
// seen; earlyScheduledTTL is how long one is kept. A node agent sees every
// pod's Scheduled Event (the API cannot select Events by node) and its own
// pods only once bound, often after their Event: it keeps each a while in
// case the pod turns out to be its own. At 100 pods/s cluster-wide that is
// 3,000 entries.
const (
	maxEarlyScheduled = 8192
	earlyScheduledTTL = 30 * time.Second
)

// podSLI gathers the phases of clusterloader2's PodStartupLatency for one
// pod start, as clusterloader2 takes them: create is the creation
// timestamp, schedule the scheduler's Scheduled Event, run the last
// container's startedAt, watch the moment this watch delivered the pod in
// phase Running. The Event and the pod come by two watches in either
// order, so the spans go once both are in (or sliScheduleWait after the
// pod ran). It is not stored: a restart forgets the pods it was waiting
// on, and a pod first seen running (at a relist, or by a watcher started
// after it ran) is not measured: its watch time is not the moment it ran.
type podSLI struct {
	schedule, run, watch time.Time
	scheduleSource       string
	// pullStart and pullEnd span the pod's image pulls (the kubelet's
	// Pulled Events), which the SLI leaves out.
	pullStart, pullEnd time.Time
	sent               bool
}

// sliEligible says whether a pod start counts toward the SLI: a
// schedulable stateless pod (not a StatefulSet's) whose start this watch
// saw happen.
func sliEligible(v *objectView) bool {
	return v.pod != nil && v.ownerKind != "StatefulSet"
}

// sliSent marks a pod whose SLI spans went (or never will): its phases
// are dropped. Shared, never written.
var sliSent = &podSLI{sent: true}

// sliObserve arms the SLI of a pod seen before it runs (at the initial
// list too: its Running is still to be watched), records the watch phase
// when an armed pod is delivered in phase Running, and returns its SLI
// spans if the Scheduled Event is in. A pod first seen running is never
// measured: its watch time is not the moment it ran. Called under the
// tracker's lock.
func (t *tracker) sliObserve(st *objectState, at time.Time) []fragmentSpan {
	v := &st.view
	if !sliEligible(v) || st.Trigger != fragment.TriggerGeneration(1) {
		return nil
	}
	if !v.pod.running {
		if st.sli == nil {
			st.sli = &podSLI{}
		}
		return nil
	}
	s := st.sli
	if s == nil || s.sent || !s.watch.IsZero() {
		return nil
	}
	if early, ok := t.earlyScheduled[v.uid]; ok && s.schedule.IsZero() {
		s.schedule, s.scheduleSource = early, "event"
	}
	delete(t.earlyScheduled, v.uid)
	s.watch = at
	for i := range v.pod.containers {
		if c := &v.pod.containers[i]; c.startedAt.After(s.run) {
			s.run = c.startedAt
		}
	}
	if s.schedule.IsZero() {
		return nil
	}
	return t.sliSpans(st)
}

// sliEarly keeps the Scheduled Event of a pod not seen yet. Called under
// the lock.
func (t *tracker) sliEarly(ev eventView) {
	if ev.reason != "Scheduled" {
		return
	}
	if t.earlyScheduled == nil {
		t.earlyScheduled = map[string]time.Time{}
	}
	if len(t.earlyScheduled) >= maxEarlyScheduled {
		// Full within a TTL: a burst beyond the bound. Start over; the
		// pods whose Event went use the PodScheduled condition.
		clear(t.earlyScheduled)
	}
	t.earlyScheduled[ev.objectUID] = ev.at
}

// pruneEarly drops the early Scheduled Events older than the TTL at now.
// Called under the lock.
func (t *tracker) pruneEarly(now time.Time) {
	for uid, at := range t.earlyScheduled {
		if now.Sub(at) >= earlyScheduledTTL {
			delete(t.earlyScheduled, uid)
		}
	}
}

// sliEvent takes what the SLI needs from an Event about a pod: the
// scheduler's Scheduled, the kubelet's pulls. Called under the lock.
func (t *tracker) sliEvent(st *objectState, ev eventView) []fragmentSpan {
	s := st.sli
	if s == nil || s.sent {
		return nil
	}
	switch {
	case ev.reason == "Scheduled" && s.schedule.IsZero():
		s.schedule, s.scheduleSource = ev.at, "event"
	case ev.reason == "Pulled" && ev.duration > 0:
		start := ev.at.Add(-ev.duration)
		if s.pullStart.IsZero() || start.Before(s.pullStart) {
			s.pullStart = start
		}
		if ev.at.After(s.pullEnd) {
			s.pullEnd = ev.at
		}
		return nil
	default:
		return nil
	}
	if s.watch.IsZero() {
		return nil
	}
	return t.sliSpans(st)
}

// sliOverdue sends the SLI spans of a pod that ran more than
// sliScheduleWait ago without a Scheduled Event, with the PodScheduled
// condition's time. Called under the lock, by quiet's pass.
func (t *tracker) sliOverdue(st *objectState, now time.Time) []fragmentSpan {
	s := st.sli
	if s == nil || s.sent || s.watch.IsZero() || now.Sub(s.watch) < sliScheduleWait {
		return nil
	}
	if st.view.pod == nil || st.view.pod.scheduledAt.IsZero() {
		st.sli = sliSent // nothing truthful to measure from
		return nil
	}
	s.schedule, s.scheduleSource = st.view.pod.scheduledAt, "condition"
	return t.sliSpans(st)
}

// sliSpans renders the five transitions as children of the pod's object
// span. pod_startup ends early by what it leaves out (image pulls, init
// containers), so its duration is the SLI; the attribute says how much.
func (t *tracker) sliSpans(st *objectState) []fragmentSpan {
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
		f := fragmentSpan{
			traceID:     fragment.TraceID(v.uid, st.Trigger),
			spanID:      fragment.SpanID(v.uid, sp.name, st.Trigger),
			parentID:    fragment.ObjectSpanID(v.uid, v.kind, st.Trigger),
			name:        sp.name,
			level:       fragment.LevelSLI,
			service:     sliService,
			start:       sp.start,
			end:         notBefore(sp.end, sp.start),
			timeSource:  fragment.TimeSourceWatch,
			obj:         snapshot(v),
			trigger:     st.Trigger,
			triggerTime: st.TriggerTime,
			sli:         &sliDetail{scheduleSource: s.scheduleSource},
		}
		if sp.name == fragment.SLIPodStartup {
			f.sli.excluded = excluded
		}
		out = append(out, f)
	}
	return out
}

// sliService is the service.name of SLI spans: one lane, and one series
// per transition in span metrics whoever ran the pod.
const sliService = "kubestitch"

// sliDetail is what an SLI span says of how it was measured.
type sliDetail struct {
	scheduleSource string
	excluded       time.Duration
}
